#!/usr/bin/env bash
# valgrind.sh - memcheck of `vggserve serve` under a short integration load.
#
#   tests/valgrind.sh [PATH/TO/vggserve]     (default build/vggserve; needs valgrind)
#
# Generates VGG11 weights natively (generating them under valgrind takes minutes), then runs
# the bad-input suite (tests/test_bad_inputs.py: every bad upload, the valid ones classified,
# health and metrics) and the auth tests against a server running under memcheck, which ends
# with SIGTERM. memcheck's --error-exitcode turns any invalid access or definite leak into a
# non-zero exit, which the tests check; the leak summary of each server is printed at the end.
# Takes 5-15 minutes on two cores. oneDNN picks its AVX2 kernels under valgrind (memcheck
# does not emulate AVX-512).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${1:-$root/build/vggserve}")
tmp=$(mktemp -d /tmp/vggserve-valgrind.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$bin" gen-weights --model vgg11 --seed 1 --out "$tmp/vgg11.safetensors" >/dev/null

export VGGSERVE_TEST_WRAPPER="valgrind --tool=memcheck --leak-check=full \
  --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=99 \
  --num-callers=30 --log-file=$tmp/memcheck.%p.log"
export VGGSERVE_TEST_FLAGS="--weights $tmp/vgg11.safetensors"
export VGGSERVE_TEST_READY_S=900
status=0
/usr/bin/python3 "$root/tests/test_bad_inputs.py" "$bin" || status=1
/usr/bin/python3 "$root/tests/test_security.py" "$bin" AuthTest || status=1
for log in "$tmp"/memcheck.*.log; do
  echo "== $(basename "$log")"
  grep -E "definitely lost|indirectly lost|possibly lost|ERROR SUMMARY|Invalid|uninitialised" "$log" || true
done
exit $status
