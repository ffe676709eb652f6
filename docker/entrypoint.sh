#!/bin/sh
# entrypoint.sh - run vggserve in the container; serve what is mounted at /models.
#
#   (no arguments) or `serve ...`   vggserve serve, with what /models holds (below)
#   --flag value ...                the same: the flags go to `vggserve serve`
#   any other vggserve command      run as is (classify, healthcheck, summary, ...)
#
# What is served, the first that applies:
#   1. The user's own choice: VGGSERVE_WEIGHTS or VGGSERVE_MODEL_REPOSITORY (non-empty) in
#      the environment, --weights or --model-repository among the flags, or either key in the
#      --config file. The entrypoint adds nothing.
#   2. A model repository (unless VGGSERVE_MODEL_REPOSITORY is set empty): /models holds
#      NAME/VERSION/model.safetensors (VERSION a positive integer), or the control mode is
#      explicit (VGGSERVE_MODEL_CONTROL_MODE, the flag or the config file) and /models exists,
#      empty or not (models come later, through POST /v2/repository/models/NAME/load).
#      VGGSERVE_MODEL_REPOSITORY=/models.
#   3. One weights file: /models/$VGGSERVE_MODEL.safetensors (vgg16 by default).
#      VGGSERVE_WEIGHTS=that file.
#   4. Nothing: vggserve generates meaningless test weights (its log and /metrics say so).
# VGGSERVE_ENTRYPOINT_MODELS replaces /models (tests/docker/test_entrypoint.py uses it).
set -eu

case "${1:-serve}" in
serve) [ "$#" -gt 0 ] && shift ;;
-*) ;;
*) exec vggserve "$@" ;;
esac

models=${VGGSERVE_ENTRYPOINT_MODELS:-/models}

# config FLAGS...: the file --config names, or nothing.
config() {
    while [ "$#" -gt 0 ]; do
        case "$1" in
        --config) [ "$#" -gt 1 ] && echo "$2" && return ;;
        --config=*) echo "${1#--config=}" && return ;;
        esac
        shift
    done
}

# chosen FLAGS...: true when the flags, or the config file they name, choose the weights or
# the repository themselves.
chosen() {
    for a in "$@"; do
        case "$a" in
        --weights | --weights=* | --model-repository | --model-repository=*) return 0 ;;
        esac
    done
    file=$(config "$@")
    [ -n "$file" ] && [ -r "$file" ] && grep -Eq '"(weights|model_repository)"' "$file"
}

# explicit FLAGS...: true when the control mode is explicit (environment, flag or config file).
explicit() {
    [ "${VGGSERVE_MODEL_CONTROL_MODE:-}" = explicit ] && return 0
    prev=""
    for a in "$@"; do
        case "$prev $a" in
        "--model-control-mode explicit" | *" --model-control-mode=explicit") return 0 ;;
        esac
        prev=$a
    done
    file=$(config "$@")
    [ -n "$file" ] && [ -r "$file" ] && grep -Eq '"model_control_mode" *: *"explicit"' "$file"
}

# repository DIR: true when DIR holds a model folder with a version, as vggserve reads them.
repository() {
    for f in "$1"/*/*/model.safetensors; do
        [ -f "$f" ] || continue
        v=${f%/model.safetensors}
        case "${v##*/}" in
        "" | 0* | *[!0-9]*) ;;
        *) return 0 ;;
        esac
    done
    return 1
}

if [ -n "${VGGSERVE_WEIGHTS:-}" ] || [ -n "${VGGSERVE_MODEL_REPOSITORY:-}" ] || chosen "$@"; then
    :
elif [ -z "${VGGSERVE_MODEL_REPOSITORY+set}" ] &&
    { repository "$models" || { [ -d "$models" ] && explicit "$@"; }; }; then
    export VGGSERVE_MODEL_REPOSITORY="$models"
    echo "entrypoint: serving the model repository $models" >&2
else
    mounted="$models/${VGGSERVE_MODEL:-vgg16}.safetensors"
    if [ -f "$mounted" ]; then
        export VGGSERVE_WEIGHTS="$mounted"
    else
        echo "entrypoint: no model folders or $mounted in $models, VGGSERVE_WEIGHTS unset:" \
            "generated weights" >&2
    fi
fi
exec vggserve serve "$@"
