#!/usr/bin/env bash
# http_load.sh - end-to-end throughput and latency of `vggserve serve` over loopback HTTP,
# measured in the same run as the engine alone (`vggserve bench`), so the ratios compare like
# with like on this noisy machine.
#
#   bench/http_load.sh [--algo direct|winograd] [--precision f32|bf16|int8] [--seconds 15]
#                      [--concurrency "1 2 4 8 16"] [--bin PATH (default build/vggserve; for A/B runs)]
#
# Prints: engine img/s at batch 1 and max_batch; an idle single-request latency (median of
# sequential requests) against the engine's batch-1 time; then per concurrency the served
# img/s and p50/p99 latency from wrk, with the ratio to engine-only img/s at max_batch.
# Needs: wrk (Debian package), curl. Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./build/vggserve algo=direct precision=f32 seconds=15 conc="1 2 4 8 16" max_batch=8 image=tests/data/images/chelsea.jpg
while (($#)); do
  case $1 in
    --algo) algo=$2; shift 2 ;;
    --precision) precision=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --concurrency) conc=$2; shift 2 ;;
    --max-batch-size) max_batch=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
weights=$(mktemp --suffix=.safetensors)
log=$(mktemp)
server=
. bench/common.sh
cleanup() { bench_stop; rm -f "$weights" "$weights.int8.json" "$log"; }
trap cleanup EXIT
$bin gen-weights --seed 1 --out "$weights" 2>/dev/null
# int8 reads its activation clips from beside the weights
[[ $precision == int8 ]] && $bin calibrate --weights "$weights" tests/data/images/*.jpg >/dev/null 2>&1

echo "== engine only ($precision $algo, batch 1 and $max_batch)"
engine=$($bin bench --weights "$weights" --algo "$algo" --precision "$precision" --batch "1,$max_batch" --seconds "$seconds" --json)
echo "$engine"
e1_ms=$(echo "$engine" | sed -n 1p | sed 's/.*"ms_per_batch_median": \([0-9.]*\).*/\1/')
eB_ips=$(echo "$engine" | sed -n 2p | sed 's/.*"img_per_s_median": \([0-9.]*\).*/\1/')

bench_serve "$log" $bin serve --weights "$weights" --algo "$algo" --precision "$precision" \
  --max-batch-size "$max_batch" --queue-capacity 256 || exit 1

echo "== idle single requests (sequential, curl time_total)"
times=()
for _ in $(seq 1 21); do
  times+=("$(curl -s -o /dev/null -w '%{time_total}' -X POST --data-binary @"$image" \
    -H 'Content-Type: image/jpeg' "http://127.0.0.1:$port/classify")")
done
idle_ms=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]*1000}')
echo "median ${idle_ms} ms vs engine batch-1 ${e1_ms} ms: ratio $(awk -v a="$idle_ms" -v b="$e1_ms" 'BEGIN{printf "%.3f", a/b}')"

echo "== concurrency sweep (wrk, ${seconds}s each); ratio = served img/s / engine img/s at batch $max_batch"
printf '%6s %10s %10s %10s %10s %8s\n' clients img/s p50_ms p99_ms non_2xx ratio
for c in $conc; do
  out=$(IMAGE="$image" wrk -t 1 -c "$c" -d "${seconds}s" --timeout 60s -s bench/post_image.lua \
    "http://127.0.0.1:$port/classify" | tail -n 1)
  ips=$(echo "$out" | sed 's/.*"req_per_s": \([0-9.]*\).*/\1/')
  p50=$(echo "$out" | sed 's/.*"p50_ms": \([0-9.]*\).*/\1/')
  p99=$(echo "$out" | sed 's/.*"p99_ms": \([0-9.]*\).*/\1/')
  bad=$(echo "$out" | sed 's/.*"non_2xx": \([0-9]*\).*/\1/')
  printf '%6s %10s %10s %10s %10s %8s\n' "$c" "$ips" "$p50" "$p99" "$bad" \
    "$(awk -v a="$ips" -v b="$eB_ips" 'BEGIN{printf "%.3f", a/b}')"
done
echo "== batch sizes served"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^vggserve_batch_size_(bucket|count)'
