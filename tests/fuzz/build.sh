#!/usr/bin/env bash
# build.sh - builds the libFuzzer harnesses with clang (ASan + UBSan + libFuzzer).
#
#   tests/fuzz/build.sh [OUT_DIR]        (default build-fuzz; needs clang and libclang-rt-dev)
#
# A CMake build with -DVGGSERVE_FUZZ=ON: the sources and the harness list are CMake's
# (CMakeLists.txt, tests/CMakeLists.txt FUZZ_HARNESSES); only the `fuzzers` target and what it
# links are compiled. The harnesses land in OUT_DIR/fuzz_<name>. Plain replays without libFuzzer
# are ctest targets of the ordinary build (replay_main.c).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build-fuzz}
cc=${CC_FUZZ:-$(command -v clang-14 || command -v clang)}
cxx=${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++)} # the gRPC front end's C++
# UBSan stays recoverable so that tests/ubsan.supp (benign UB inside stb_image, by function)
# can apply; run.sh sets UBSAN_OPTIONS=halt_on_error=1, so anything else stops the fuzzer.
cmake -S "$root" -B "$out" -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_BUILD_TYPE=Debug -DVGGSERVE_FUZZ=ON \
      -DVGGSERVE_BUILD_BENCH=OFF >/dev/null
cmake --build "$out" -j "$(nproc)" --target fuzzers >/dev/null
ls "$out"/fuzz_* | grep -v _replay | sed 's/^/built /'
