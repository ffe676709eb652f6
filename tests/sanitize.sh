#!/usr/bin/env bash
# sanitize.sh - the sanitizer build (ASan + UBSan, -DVGGSERVE_SANITIZE=ON) in build-asan, and
# the whole ctest suite against it: unit tests, the engine against the naive reference, parity
# with torchvision, every fuzz replay, and every black-box suite (CLI, service, bad inputs,
# faults, overload, security, KServe v2, OpenAPI, browser, monitoring, converters) driving the
# instrumented binary. Extra arguments go to ctest (e.g. -R server).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${ASAN_BUILD_DIR:-build-asan}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DVGGSERVE_SANITIZE=ON >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
# oneDNN and libgomp keep thread pools and JIT caches until exit: leaks there are theirs.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$PWD/tests/ubsan.supp
tests/ctest.sh "$build" --output-on-failure "$@"
