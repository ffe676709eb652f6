#!/usr/bin/env bash
# fetch-weights.sh - get the published VGG16 ImageNet weights as a .safetensors vggserve reads.
#
#   scripts/fetch-weights.sh [--source timm|torchvision|keras] [--out FILE] [--from FILE] [--keep]
#
#   timm (default)  timm's vgg16.tv_in1k model.safetensors: torchvision's weights, read as is
#   torchvision     vgg16-397923af.pth (SHA-256 must start with 397923af), converted by
#                   scripts/convert_torchvision.py (needs python3-torch)
#   keras           vgg16_weights_tf_dim_ordering_tf_kernels.h5 (MD5 as Keras checks it),
#                   converted by scripts/convert_keras.py (needs python3-h5py); these weights
#                   expect caffe preprocessing (`vggserve classify --mode caffe`)
#   --out FILE      default models/vgg16.safetensors (keras: models/vgg16-keras.safetensors);
#                   models/ is what docker/compose.yaml mounts at /models
#   --from FILE     use a file downloaded elsewhere (for machines without internet)
#   --keep          keep the downloaded .pth/.h5 next to the output
#
# Then the known-answer check: the shipped cat photo (tests/data/images/chelsea.jpg) must
# come out as a cat class (281 tabby, 282 tiger cat or 285 Egyptian cat) with build/vggserve
# (or $VGGSERVE_BIN). Exit status 0 only when the file is in place and the check passed.
set -euo pipefail
cd "$(dirname "$0")/.."

TIMM_URL=https://huggingface.co/timm/vgg16.tv_in1k/resolve/main/model.safetensors
TV_URL=https://download.pytorch.org/models/vgg16-397923af.pth
TV_SHA256_PREFIX=397923af
KERAS_URL=https://github.com/fchollet/deep-learning-models/releases/download/v0.1/vgg16_weights_tf_dim_ordering_tf_kernels.h5
KERAS_MD5=64373286793e3c8b2b4e3219cbf3544b

source=timm out="" from="" keep=""
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while (($#)); do
    case "$1" in
    --source) source=${2:?--source needs timm, torchvision or keras}; shift 2 ;;
    --out) out=${2:?--out needs a file}; shift 2 ;;
    --from) from=${2:?--from needs a file}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "fetch-weights: unknown argument '$1'" >&2; usage 2 >&2 ;;
    esac
done
case "$source" in
timm) url=$TIMM_URL mode=torchvision ;;
torchvision) url=$TV_URL mode=torchvision ;;
keras) url=$KERAS_URL mode=caffe ;;
*) echo "fetch-weights: --source must be timm, torchvision or keras, got '$source'" >&2; exit 2 ;;
esac
[[ -n "$out" ]] || { [[ $source == keras ]] && out=models/vgg16-keras.safetensors || out=models/vgg16.safetensors; }
mkdir -p "$(dirname "$out")"
say() { echo "fetch-weights: $*" >&2; }

# ---------------------------------------------------------------- download
download() {  # URL FILE
    local rc=0
    say "downloading $1"
    if command -v curl >/dev/null; then
        curl -fL --retry 2 --connect-timeout 15 -o "$2.part" "$1" || rc=$?
    elif command -v wget >/dev/null; then
        wget -O "$2.part" --timeout=15 --tries=3 "$1" || rc=$?
    else
        say "needs curl or wget (apt-get install curl)"; return 1
    fi
    if ((rc)); then
        rm -f "$2.part"
        say "could not download $1 (exit $rc): this machine may be offline, or the host blocked."
        say "Download that URL on a machine with internet, copy the file here, and run:"
        say "  scripts/fetch-weights.sh --source $source --from FILE${out:+ --out $out}"
        return 1
    fi
    mv "$2.part" "$2"
}

fetched=""
if [[ -n "$from" ]]; then
    [[ -f "$from" ]] || { say "--from $from: no such file"; exit 1; }
    src=$from
else
    src="$(dirname "$out")/$(basename "$url")"
    [[ $source == timm ]] && src="${out}.download"
    download "$url" "$src" || exit 1
    fetched=$src
fi

# ---------------------------------------------------------------- verify, convert
case "$source" in
timm)
    # No published checksum to compare with: the known-answer check below is the test.
    say "sha256 $(sha256sum "$src" | cut -c1-64)"
    if [[ "$src" != "$out" ]]; then
        if [[ -n "$fetched" ]]; then mv "$src" "$out"; else cp "$src" "$out"; fi
    fi
    fetched="" ;;
torchvision)
    sum=$(sha256sum "$src" | cut -c1-64)
    [[ $sum == "$TV_SHA256_PREFIX"* ]] || { say "$src: SHA-256 $sum does not start with $TV_SHA256_PREFIX: corrupt or another file"; exit 1; }
    say "SHA-256 $sum matches the file name's $TV_SHA256_PREFIX"
    /usr/bin/python3 -c 'import torch' 2>/dev/null || { say "converting needs PyTorch: apt-get install python3-torch"; exit 1; }
    /usr/bin/python3 scripts/convert_torchvision.py "$src" "$out" ;;
keras)
    sum=$(md5sum "$src" | cut -c1-32)
    [[ $sum == "$KERAS_MD5" ]] || { say "$src: MD5 $sum, Keras expects $KERAS_MD5: corrupt or another file"; exit 1; }
    say "MD5 $sum matches Keras's"
    /usr/bin/python3 -c 'import h5py' 2>/dev/null || { say "converting needs h5py: apt-get install python3-h5py"; exit 1; }
    /usr/bin/python3 scripts/convert_keras.py "$src" "$out" ;;
esac
if [[ -n "$fetched" && -z "$keep" ]]; then rm -f "$fetched"; fi
say "weights in $out"

# ---------------------------------------------------------------- known answer
bin=${VGGSERVE_BIN:-build/vggserve}
if [[ ! -x "$bin" ]]; then
    say "no $bin to check with: build it (scripts/setup.sh), then run"
    say "  $bin classify --weights $out --mode $mode --top-k 3 tests/data/images/chelsea.jpg"
    say "and expect 281 tabby, 282 tiger cat or 285 Egyptian cat first."
    exit 0
fi
answer=$("$bin" classify --weights "$out" --mode "$mode" --top-k 3 tests/data/images/chelsea.jpg)
say "chelsea.jpg -> $answer"
top1=$(/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["top_k"][0]["class_id"])' <<<"$answer")
case "$top1" in
281 | 282 | 285) say "known-answer check passed: the cat is a cat (class $top1)" ;;
*) say "known-answer check FAILED: top-1 class '$top1' is not 281/282/285 (tabby, tiger cat, Egyptian cat)"; exit 1 ;;
esac
