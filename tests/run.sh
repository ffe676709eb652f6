#!/usr/bin/env bash
# run.sh - install what is missing, build, and run the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-test-deps
# ctest through tests/ctest.sh: skipped suites are listed with their reasons (and with CI=true
# fail unless .ci/run allows them).
tests/ctest.sh "${BUILD_DIR:-build}" --output-on-failure "$@"
