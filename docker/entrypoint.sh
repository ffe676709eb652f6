#!/bin/sh
# entrypoint.sh - run vggserve in the container; serve mounted weights when there are some.
#
#   (no arguments) or `serve ...`   vggserve serve, with /models/<model>.safetensors if present
#   --flag value ...                the same: the flags go to `vggserve serve`
#   any other vggserve command      run as is (classify, healthcheck, summary, ...)
#
# Weights: VGGSERVE_WEIGHTS wins when set. Otherwise /models/$VGGSERVE_MODEL.safetensors
# (vgg16 by default) is used when it exists, and vggserve generates meaningless test weights
# when it does not (its log and /metrics say so).
set -eu

case "${1:-serve}" in
serve) [ "$#" -gt 0 ] && shift ;;
-*) ;;
*) exec vggserve "$@" ;;
esac

if [ -z "${VGGSERVE_WEIGHTS:-}" ]; then
    mounted="/models/${VGGSERVE_MODEL:-vgg16}.safetensors"
    if [ -f "$mounted" ]; then
        export VGGSERVE_WEIGHTS="$mounted"
    else
        echo "entrypoint: no $mounted mounted and VGGSERVE_WEIGHTS unset: generated weights" >&2
    fi
fi
exec vggserve serve "$@"
