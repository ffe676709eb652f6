#!/usr/bin/env bash
# run.sh - runs each libFuzzer harness for a bounded time (CI) or a number of executions.
#
#   tests/fuzz/run.sh [-t SECONDS_EACH] [-n RUNS_EACH] [HARNESS...]
#
# Defaults: 60 s each, every harness (one per tests/fuzz/corpus/<harness>/; the list itself is
# FUZZ_HARNESSES in tests/CMakeLists.txt), built by tests/fuzz/build.sh into $FUZZ_BUILD (default build-fuzz; built
# first when missing). The regression inputs (tests/fuzz/regress/<harness>/) are replayed
# first; then libFuzzer starts from the committed seeds (tests/fuzz/corpus/<harness>/) and
# writes what it finds under $FUZZ_BUILD/work/, never into the tree. A crash stops that
# harness, is kept as $FUZZ_BUILD/work/crashes/<harness>-crash-*, and makes the script exit 1:
# fix it, and copy the file into tests/fuzz/regress/<harness>/ so ctest replays it forever.
# One harness at a time, one process each: light on a shared machine.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
seconds=60
runs=-1
while getopts "t:n:" o; do
  case $o in
    t) seconds=$OPTARG ;;
    n) runs=$OPTARG ;;
    *) sed -n 2,14p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
  for d in "$root"/tests/fuzz/corpus/*/; do harnesses+=("$(basename "$d")"); done
fi
[[ -x $build/fuzz_${harnesses[0]} ]] || "$root/tests/fuzz/build.sh" "$build"

work=$build/work
mkdir -p "$work/crashes"
# Any UBSan report stops a harness (a crash), except the benign ones inside stb_image listed
# in tests/ubsan.supp; without these options UBSan would only print.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$root/tests/ubsan.supp
failed=0
summary=()
for h in "${harnesses[@]}"; do
  bin=$build/fuzz_$h
  regress=$root/tests/fuzz/regress/$h
  if compgen -G "$regress/*" >/dev/null && ! "$bin" "$regress"/* >"$work/$h.replay.log" 2>&1; then
    echo "FAIL $h: a regression input crashes again (see $work/$h.replay.log)" >&2
    failed=1
    summary+=("$h: regression replay FAILED")
    continue
  fi
  mkdir -p "$work/corpus/$h"
  log=$work/$h.log
  "$bin" -max_total_time="$seconds" -runs="$runs" -timeout=25 -rss_limit_mb=2048 \
         -print_final_stats=1 -artifact_prefix="$work/crashes/$h-" \
         "$work/corpus/$h" "$root/tests/fuzz/corpus/$h" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if ((rc != 0)); then
    failed=1
    summary+=("$h: CRASH after ${execs:-?} executions: $(ls -t "$work/crashes/$h-"* 2>/dev/null | head -1) (log $log)")
    grep -m3 -E "ERROR|runtime error|FUZZ_CHECK" "$log" >&2
  else
    summary+=("$h: ok, ${execs} executions (${rate}/s), ${cov}, corpus $(ls "$work/corpus/$h" | wc -l) new")
  fi
done
printf '%s\n' "${summary[@]}"
exit $failed
