#!/usr/bin/env bash
# run.sh - the newcomer's first command: install what is missing, build, start the service.
#
#   scripts/run.sh                                  generated weights, http://127.0.0.1:8080
#   scripts/run.sh --weights vgg16.safetensors      real weights; any `vggserve serve` flag works
#
# Builds without the tests (no python3 or node needed); BUILD_DIR overrides ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec "${BUILD_DIR:-build}/vggserve" serve "$@"
