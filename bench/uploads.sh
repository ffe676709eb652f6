#!/usr/bin/env bash
# uploads.sh - what real uploads cost, before (stb_image decodes every JPEG pixel) and after
# (TurboJPEG with DCT scaling, libwebp), measured side by side in one run on this machine.
#
#   bench/uploads.sh [--before REV] [--seconds 10] [--clients "8 16"] [--iterations 20]
#                    [--modes "f32:direct int8:direct"] [--rounds 3]
#
# The uploads are bench/make_uploads.py's: a 12 MP phone JPEG with EXIF orientation 6, a 1080p
# web JPEG, a 1200x800 PNG and a 1600x1067 WebP. REV (default 7c44e7a, the last commit that
# decoded JPEG with stb_image) is built once into a worktree under /tmp; it has no WebP.
#
# Prints, per upload:
#   1. preprocess: bench_preprocess ms per image on one thread (min and median of --rounds
#      interleaved runs of --iterations images) and the peak RSS of one `vggserve preprocess`
#      of that file (/usr/bin/time), for before, after (decode_scaling auto) and after with
#      decode_scaling off;
#   2. served: img/s over loopback HTTP (wrk, --seconds per point) at each client count, for
#      before and after, in each mode, beside the engine alone (`vggserve bench`, batch 8) in
#      the same run; ratio = served / engine, and after / before.
# Needs: wrk, curl, /usr/bin/time (Debian packages wrk, curl, time), /usr/bin/python3 with
# python3-pil and python3-numpy. Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
before_rev=7c44e7a seconds=10 clients="8 16" iterations=20 modes="f32:direct int8:direct" rounds=3
while (($#)); do
  case $1 in
    --before) before_rev=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) sed -n 2,20p "$0"; exit 2 ;;
  esac
done
for tool in wrk curl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk curl time)" >&2; exit 1; }
done

after=$root/build
before=/tmp/vggserve-before-$before_rev
work=$(mktemp -d)
server=
. "$root/bench/common.sh"
cleanup() { bench_stop; rm -rf "$work"; }
trap cleanup EXIT

cmake --build "$after" --target vggserve bench_preprocess -j2 >/dev/null
if [[ ! -x $before/build/vggserve || ! -x $before/build/bench_preprocess ]]; then
  echo "== building $before_rev into $before (once)"
  [[ -d $before ]] || git worktree add --detach "$before" "$before_rev" >/dev/null
  cmake -S "$before" -B "$before/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$before/build" --target vggserve bench_preprocess -j2 >/dev/null
fi

uploads=$work/uploads
/usr/bin/python3 bench/make_uploads.py "$uploads" >/dev/null
files=(phone_4032x3024_o6.jpg web_1920x1080.jpg screenshot_1200x800.png web_1600x1067.webp)
content_type() {
  case $1 in *.jpg) echo image/jpeg ;; *.png) echo image/png ;; *.webp) echo image/webp ;; esac
}
has_webp() { [[ $1 != before ]]; }
bin_of() { [[ $1 == before ]] && echo "$before/build" || echo "$after"; }
scaling_of() { [[ $1 == after_off ]] && echo off || echo auto; }
stats() { sort -g | awk '{a[NR] = $1} END {printf "%.2f %.2f", a[1], a[int((NR + 1) / 2)]}'; }

echo "== preprocess: ms per image on one thread (min / median of $rounds x $iterations), peak RSS of one \`vggserve preprocess\`"
printf '%-26s %-10s %16s %12s\n' upload path ms_min/median peak_MB
for f in "${files[@]}"; do
  declare -A ms=()
  for _ in $(seq "$rounds"); do # interleaved, so drift hits every path alike
    for path in before after after_off; do
      [[ $f == *.webp ]] && ! has_webp $path && continue
      b=$(bin_of $path)
      flags=(); [[ $path != before ]] && flags=(--decode-scaling "$(scaling_of $path)")
      ms[$path]+="$("$b/bench_preprocess" --threads 1 --iterations "$iterations" "${flags[@]}" "$uploads/$f" |
        awk '/ms per image/ {print $2}') "
    done
  done
  for path in before after after_off; do
    [[ -z ${ms[$path]:-} ]] && { printf '%-26s %-10s %16s %12s\n' "$f" "$path" "no WebP" -; continue; }
    b=$(bin_of $path)
    flags=(); [[ $path != before ]] && flags=(--decode-scaling "$(scaling_of $path)")
    kb=$(/usr/bin/time -f %M "$b/vggserve" preprocess "${flags[@]}" "$uploads/$f" --out "$work/t.npy" 2>&1 >/dev/null | tail -n 1)
    printf '%-26s %-10s %16s %12.1f\n' "$f" "$path" "$(echo ${ms[$path]} | tr ' ' '\n' | stats | tr ' ' /)" "$(awk -v k="$kb" 'BEGIN {print k / 1024}')"
  done
  unset ms
done

start_server() { # BIN_DIR WEIGHTS PRECISION ALGO
  bench_serve "$work/server.log" "$1/vggserve" serve --weights "$2" --precision "$3" --algo "$4" \
    --max-batch-size 8 --queue-capacity 256
}
stop_server() { bench_stop; }
served() { # FILE CLIENTS -> img/s
  IMAGE="$uploads/$1" CONTENT_TYPE=$(content_type "$1") wrk -t 1 -c "$2" -d "${seconds}s" --timeout 60s \
    -s bench/post_image.lua "http://127.0.0.1:$port/classify" | tail -n 1 |
    sed 's/.*"req_per_s": \([0-9.]*\).*"non_2xx": \([0-9]*\).*/\1 \2/'
}

for mode in $modes; do
  precision=${mode%%:*} algo=${mode##*:}
  echo "== served over HTTP, $precision $algo (wrk ${seconds}s per point); ratio = served / engine-only at batch 8"
  declare -A weights=()
  for path in before after; do
    b=$(bin_of $path)
    weights[$path]=$work/w_$path.safetensors
    "$b/vggserve" gen-weights --seed 1 --out "${weights[$path]}" 2>/dev/null
    [[ $precision == int8 ]] && "$b/vggserve" calibrate --weights "${weights[$path]}" tests/data/images/*.jpg >/dev/null 2>&1
  done
  engine=$("$after/vggserve" bench --weights "${weights[after]}" --precision "$precision" --algo "$algo" --batch 8 \
    --seconds "$seconds" --json | sed 's/.*"img_per_s_median": \([0-9.]*\).*/\1/')
  echo "engine only, batch 8: $engine img/s"
  printf '%-26s %7s %14s %14s %10s %10s\n' upload clients before_img/s after_img/s after/before after/engine
  declare -A ips=()
  for path in before after; do
    start_server "$(bin_of $path)" "${weights[$path]}" "$precision" "$algo"
    for f in "${files[@]}"; do
      [[ $f == *.webp ]] && ! has_webp $path && continue
      for c in $clients; do
        read -r rate bad < <(served "$f" "$c")
        [[ $bad != 0 ]] && echo "warning: $path $f $c clients: $bad non-2xx answers" >&2
        ips[$path,$f,$c]=$rate
      done
    done
    stop_server
  done
  for f in "${files[@]}"; do
    for c in $clients; do
      b=${ips[before,$f,$c]:-} a=${ips[after,$f,$c]}
      printf '%-26s %7s %14s %14s %10s %10s\n' "$f" "$c" "${b:-no WebP}" "$a" \
        "$([[ -n $b ]] && awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}' || echo -)" \
        "$(awk -v a="$a" -v e="$engine" 'BEGIN {printf "%.3f", a / e}')"
    done
  done
  unset ips weights
done
