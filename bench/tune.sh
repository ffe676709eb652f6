#!/usr/bin/env bash
# tune.sh - measure the serving knobs side by side in one run, to choose defaults from data:
#   workers x threads_per_worker, OpenMP thread pinning, max_queue_delay_us, and RSS with 1, 2
#   and 4 workers (the weights must not be duplicated per worker).
#
#   bench/tune.sh [--seconds 15] [--clients 8] [--precision f32] [--algo direct]
#
# Each configuration: start `vggserve serve` on a free loopback port, wait for /readyz, run wrk
# with --clients connections posting a photo, read RSS from /metrics, stop. Needs wrk, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=15 clients=8 precision=f32 algo=direct image=tests/data/images/chelsea.jpg
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --precision) precision=$2; shift 2 ;;
    --algo) algo=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bin=./build/vggserve
work=$(mktemp -d)
server=
. bench/common.sh
cleanup() { bench_stop; rm -rf "$work"; }
trap cleanup EXIT
weights=$work/w.safetensors
$bin gen-weights --seed 1 --out "$weights" 2>/dev/null
[[ $precision == int8 ]] && $bin calibrate --weights "$weights" tests/data/images/*.jpg 2>/dev/null
ncores=$(nproc)

start() { # ENV=VALUE... -- SERVE_FLAG...; sets $port and $server in this shell
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  bench_serve "$work/log" env "${envs[@]}" "$bin" serve --weights "$weights" \
    --precision "$precision" --algo "$algo" --queue-capacity 256 "$@"
}
stop() { bench_stop; }
rss_mb() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^process_resident_memory_bytes/ {printf "%.0f", $2/1048576}'; }
load() { # port -> "img/s p50 p99"
  IMAGE=$image wrk -t 1 -c "$clients" -d "${seconds}s" --timeout 60s -s bench/post_image.lua \
    "http://127.0.0.1:$1/classify" | tail -n 1 |
    python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("%.2f %.0f %.0f" % (r["req_per_s"], r["p50_ms"], r["p99_ms"]))'
}
row() { printf '%-44s %8s %8s %8s %8s\n' "$@"; }

echo "vggserve tuning: $precision $algo, $clients clients, ${seconds}s per point, $ncores cores, $(date -u +%FT%TZ)"
row configuration img/s p50_ms p99_ms rss_mb
shapes=("1 $ncores")  # workers x threads: one pool, two halves, one thread each (no repeats)
((ncores >= 2)) && shapes+=("2 $((ncores / 2))")
((ncores > 2)) && shapes+=("$ncores 1")
for wt in "${shapes[@]}"; do
  set -- $wt
  for bind in none close; do
    envs=(OMP_PROC_BIND=false)
    [[ $bind == close ]] && envs=(OMP_PROC_BIND=close OMP_PLACES=cores)
    start "${envs[@]}" -- --workers "$1" --threads-per-worker "$2" || { echo "start failed"; continue; }
    read -r ips p50 p99 < <(load "$port")
    row "workers=$1 threads=$2 pin=$bind" "$ips" "$p50" "$p99" "$(rss_mb "$port")"
    stop
  done
done
for delay in 0 1000 5000 20000; do
  start OMP_PROC_BIND=false -- --max-queue-delay-us "$delay"
  read -r ips p50 p99 < <(load "$port")
  row "max_queue_delay_us=$delay" "$ips" "$p50" "$p99" "$(rss_mb "$port")"
  stop
done
echo "RSS when ready, by workers (1 thread each; weights shared):"
for w in 1 2 4; do
  start OMP_PROC_BIND=false -- --workers "$w" --threads-per-worker 1
  echo "  workers=$w rss_mb=$(rss_mb "$port")"
  stop
done
