#!/usr/bin/env bash
# valgrind.sh - memcheck of `vggserve serve` under a short integration load.
#
#   tests/valgrind.sh [PATH/TO/vggserve]     (default build/vggserve; needs valgrind)
#
# Generates VGG11 weights natively (under valgrind that alone takes minutes), then starts the
# server under memcheck (full leak check, --error-exitcode=99) and runs tests/valgrind_load.py
# against it: every error path once, auth, metrics, vanishing clients, one classification,
# then SIGTERM. Passes when the server exits 0: no invalid access, no use of uninitialised
# memory, no definite leak. Slow: under memcheck the warm-up forward pass and the one
# classification take several minutes each (20-30 minutes in all on two cores); oneDNN
# runs its AVX2 kernels there (memcheck has no AVX-512).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(realpath "${1:-$root/build/vggserve}")
tmp=$(mktemp -d /tmp/vggserve-valgrind.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$bin" gen-weights --model vgg11 --seed 1 --out "$tmp/vgg11.safetensors" >/dev/null

export VGGSERVE_TEST_WRAPPER="valgrind --tool=memcheck --leak-check=full \
  --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=99 \
  --num-callers=30 --log-file=$tmp/memcheck.log"
status=0
/usr/bin/python3 "$root/tests/valgrind_load.py" "$bin" "$tmp/vgg11.safetensors" "$tmp" || status=1
grep -E "definitely lost|indirectly lost|possibly lost|ERROR SUMMARY" "$tmp/memcheck.log" || true
if ((status)); then
  echo "--- memcheck log (errors):"
  grep -E -A20 "Invalid|uninitialised|definitely lost in" "$tmp/memcheck.log" | head -200 || true
  echo "--- server stderr:"
  tail -20 "$tmp/memcheck.err" || true
fi
exit $status
