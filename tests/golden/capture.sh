#!/usr/bin/env bash
# capture.sh OUTDIR [BUILD_DIR] - golden outputs of the CLI and the HTTP service, so that a
# refactor can be shown to leave every answer byte-identical: capture before, capture after,
# `diff -r` the two folders (no output: identical).
#
# OUTDIR/cli/   each fixed CLI command (classify, explain, summary, preprocess, every --help):
#               NAME.cmd (the command), NAME.rc, NAME.out, NAME.err and any file it wrote.
# OUTDIR/http/  each fixed request to `vggserve serve` (generated VGG11 weights, a free
#               loopback port, batches of one, one worker; a second server with a bearer
#               token): NNN-NAME.req (what was sent, bodies as a digest), NNN-NAME.head (status
#               line and headers) and NNN-NAME.body. Volatile values are normalised out
#               (tests/golden/capture.py says which).
#
# Deterministic on one machine (run it twice and diff); results depend on the CPU's ISA, so
# compare captures made on the same machine. OUTDIR must not exist or be empty.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: capture.sh OUTDIR [BUILD_DIR]}
build=$(cd "${2:-$root/build}" && pwd)
bin=$build/vggserve
[ -x "$bin" ] || { echo "capture.sh: no $bin (build first)" >&2; exit 2; }
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
    echo "capture.sh: $out is not empty" >&2
    exit 2
fi
mkdir -p "$out/cli" "$out/http"
out=$(cd "$out" && pwd)
images=$root/tests/data/images
work=$(mktemp -d /tmp/vggserve-golden.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Fixed thread counts: oneDNN's reductions may split differently with another count.
threads=2

# run NAME CMD... : runs vggserve CMD in $work/NAME (files it writes land there), keeps
# stdout, stderr and the exit status; paths under the tree and $work are written relative.
run() {
    local name=$1; shift
    local dir=$work/$name
    mkdir -p "$dir"
    echo "vggserve $*" | sed -e "s|$images/|IMAGES/|g" -e "s|$work/|WORK/|g" >"$out/cli/$name.cmd"
    local rc=0
    (cd "$dir" && env -u OMP_NUM_THREADS "$bin" "$@" >"$out/cli/$name.out" 2>"$out/cli/$name.err") || rc=$?
    echo "$rc" >"$out/cli/$name.rc"
    sed -i -e "s|$images/|IMAGES/|g" -e "s|$work/|WORK/|g" "$out/cli/$name.out" "$out/cli/$name.err"
    for f in "$dir"/*; do
        [ -e "$f" ] && cp "$f" "$out/cli/$name.$(basename "$f")"
    done
    return 0
}

run help --help
run no-command
run unknown-command frobnicate
for c in serve classify explain bench accuracy gen-weights calibrate preprocess summary healthcheck; do
    run "help-$c" "$c" --help
done
run gen-weights gen-weights --model vgg11 --seed 7 --out gen.safetensors
weights=$work/gen-weights/gen.safetensors
run summary-vgg16 summary
run summary-vgg11 summary --model vgg11
run summary-vgg19-dot summary --model vgg19 --dot
run summary-bad-model summary --model vgg12
run preprocess-jpeg preprocess "$images/chelsea.jpg" --out chelsea.npy
run preprocess-caffe preprocess --mode caffe "$images/coffee.jpg" --out coffee.npy
run preprocess-png-unnormalized preprocess --unnormalized "$images/chelsea_rgba.png" --out rgba.npy
run preprocess-no-out preprocess "$images/chelsea.jpg"
run preprocess-not-an-image preprocess "$root/tests/data/bad_inputs/text.txt" --out x.npy
run classify-generated classify --model vgg11 --threads $threads --top-k 3 "$images/chelsea.jpg" "$images/rocket.jpg"
run classify-weights classify --model vgg11 --weights "$weights" --threads $threads "$images/coffee.jpg" "$images/chelsea.png"
run classify-weights-wrong-model classify --weights "$weights" "$images/coffee.jpg"
run classify-all classify --model vgg11 --threads $threads --all "$images/camera.jpg"
run classify-tensor classify --model vgg11 --threads $threads --tensor "$work/preprocess-jpeg/chelsea.npy"
run classify-caffe-batch1 classify --model vgg11 --threads $threads --mode caffe --batch 1 "$images/astronaut.jpg" "$images/retina.jpg"
run classify-bf16 classify --model vgg11 --threads $threads --precision bf16 "$images/rocket.jpg"
run classify-missing-file classify --model vgg11 --threads $threads "$images/no-such.jpg"
run classify-bad-image classify --model vgg11 --threads $threads "$root/tests/data/bad_inputs/truncated.png"
run classify-bad-top-k classify --model vgg11 --top-k 0 "$images/chelsea.jpg"
run classify-no-images classify --model vgg11
run explain-top1 explain --model vgg11 --threads $threads "$images/chelsea.jpg" "$images/coffee.jpg"
run explain-class-png explain --model vgg11 --threads $threads --class-id 281 --png heat.png "$images/chelsea.jpg"
run explain-two-png explain --model vgg11 --weights "$weights" --threads $threads --png heat.png "$images/rocket.jpg" "$images/camera.jpg"
run explain-tensor explain --model vgg11 --threads $threads --tensor "$work/preprocess-jpeg/chelsea.npy"
run explain-int8 explain --model vgg11 --precision int8 "$images/chelsea.jpg"
run explain-bad-class explain --model vgg11 --class-id 1000 "$images/chelsea.jpg"

nice -n 0 /usr/bin/python3 "$here/capture.py" "$bin" "$out/http" "$work" "$root"
echo "capture.sh: $(find "$out" -type f | wc -l) files in $out"
