#!/usr/bin/env bash
# run.sh - the newcomer's first command: install what is missing, build, and run vggserve.
#
#   scripts/run.sh                         classify a shipped photo with generated weights
#   scripts/run.sh --weights FILE ...      extra arguments go to `vggserve classify`
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec ./build/vggserve classify "$@" tests/data/images/chelsea.jpg
