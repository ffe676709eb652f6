#!/usr/bin/env bash
# build.sh - builds the libFuzzer harnesses with clang (ASan + UBSan + libFuzzer).
#
#   tests/fuzz/build.sh [OUT_DIR]        (default build-fuzz; needs clang and libclang-rt-dev)
#
# The project's pure modules (api/, config/, the model's parsers and stb_image) are compiled
# once with coverage instrumentation into OUT_DIR/libfuzztarget.a; each fuzz_*.c links
# against it with -fsanitize=fuzzer. Plain replays without libFuzzer are ctest targets
# (tests/CMakeLists.txt, replay_main.c).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build-fuzz}
mkdir -p "$out/obj"
cc=${CC_FUZZ:-$(command -v clang-14 || command -v clang)}
# UBSan stays recoverable so that tests/ubsan.supp (benign UB inside stb_image, by function)
# can apply; run.sh sets UBSAN_OPTIONS=halt_on_error=1, so anything else stops the fuzzer.
flags=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
       -D_GNU_SOURCE -std=c11 -Wall -Wextra -Wno-sign-compare -Wno-unused-parameter
       -I"$root/api" -I"$root/config" -I"$root/model" -I"$root/tests/fuzz")

# Labels compiled in, as CMake does it.
cmake -DLABELS="$root/model/data/imagenet_classes.txt" -DWNIDS="$root/model/data/imagenet_wnids.txt" \
      -DOUT="$out/labels_data.c" -P "$root/model/embed_labels.cmake"

sources=(api/errors.c api/multipart.c api/responses.c api/classify_request.c api/auth.c api/image_check.c
         api/kserve_v2.c
         config/config.c model/preprocess.c model/image_decode.c model/safetensors.c
         model/vgg_weights.c model/vgg_config.c model/labels.c model/topk.c)
objs=()
for s in "${sources[@]}"; do
  o="$out/obj/$(basename "${s%.c}").o"
  "$cc" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$root/$s" -o "$o"
  objs+=("$o")
done
"$cc" "${flags[@]}" -c "$out/labels_data.c" -o "$out/obj/labels_data.o"
objs+=("$out/obj/labels_data.o")
rm -f "$out/libfuzztarget.a"
ar rcs "$out/libfuzztarget.a" "${objs[@]}"

libs=$(pkg-config --libs jansson)
for h in multipart safetensors preprocess config classify_request kserve_v2; do
  "$cc" "${flags[@]}" -fsanitize=fuzzer "$root/tests/fuzz/fuzz_$h.c" "$out/libfuzztarget.a" \
        $libs -lm -o "$out/fuzz_$h"
  echo "built $out/fuzz_$h"
done
