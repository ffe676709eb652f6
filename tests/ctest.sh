#!/usr/bin/env bash
# ctest.sh BUILD_DIR [CTEST_ARGS...] - ctest, then the skip policy. Every suite that skipped
# (exit 77, ctest's SKIP_RETURN_CODE) is listed with its reason: its first output line that
# starts with SKIP. With CI=true a skip fails the run unless the suite is named in
# VGGSERVE_ALLOWED_SKIPS, one "suite: reason" a line (.ci/run sets it). tests/run.sh and
# tests/sanitize.sh run ctest through this; skips inside a Python suite are
# service_util.main()'s, by the same list.
set -euo pipefail
build=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
ctest --test-dir "$build" "$@" | tee "$log" || rc=$?
# ctest's summary: "The following tests did not run:" then "  7 - NAME (Skipped)" lines.
skipped=$(sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) (Skipped)$/\1/p' "$log")
[ -n "$skipped" ] || exit "$rc"
allowed=$(printf '%s\n' "${VGGSERVE_ALLOWED_SKIPS:-}" | sed -n 's/^[[:space:]]*\([^:[:space:]]*\):.*/\1/p')
for t in $skipped; do
    reason=$(awk -v t="$t" '$0 ~ "^[0-9]+/[0-9]+ Testing: " t "$" {on = 1}
                            on && /^SKIP/ {print; exit}
                            index($0, "\"" t "\" end time") == 1 {on = 0}' \
             "$build/Testing/Temporary/LastTest.log" 2>/dev/null || true)
    if [ "${CI:-}" = true ] && ! grep -qxF "$t" <<<"$allowed"; then
        echo "ctest.sh: FAILED: $t skipped under CI=true and is not in VGGSERVE_ALLOWED_SKIPS (.ci/run): ${reason:-no reason printed}"
        rc=1
    else
        echo "ctest.sh: $t skipped: ${reason:-no reason printed}"
    fi
done
exit "$rc"
