#!/usr/bin/env bash
# run.sh - install what is missing, build, and run the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-test-deps
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure "$@"
