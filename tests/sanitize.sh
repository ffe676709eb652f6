#!/usr/bin/env bash
# sanitize.sh - the sanitizer build (ASan + UBSan, -DVGGSERVE_SANITIZE=ON) in build-asan, and
# the suites that exercise our own C code under it: the unit tests, the engine against the
# naive reference, the KServe v2 module, every fuzz replay, and the service black-box tests
# (the request path, bad inputs, faults). The slow numeric suites (parity, cli) run in the
# normal build only: under ASan they check nothing the others don't.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${ASAN_BUILD_DIR:-build-asan}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DVGGSERVE_SANITIZE=ON >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
# oneDNN and libgomp keep thread pools and JIT caches until exit: leaks there are theirs.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$PWD/tests/ubsan.supp
ctest --test-dir "$build" --output-on-failure \
  -R '^(units|api|engine_naive|kserve_v2_units|fuzz_replay_.*|server|bad_inputs|faults)$' "$@"
