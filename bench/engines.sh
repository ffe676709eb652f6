#!/usr/bin/env bash
# engines.sh - VGG16 engine-only throughput, vggserve against its peers, in one session on the
# same weights: ONNX Runtime (npm onnxruntime-node, CPU), PyTorch eager (Debian python3-torch),
# and vggserve in each mode (f32 direct, f32 winograd, bf16, int8). All runs are sequential.
#
#   bench/engines.sh [--rounds 3] [--seconds 5] [--batches "1 8 16"] [--threads 2] [--skip-torch]
#                    [--torch-tuned] [--modes "f32:direct f32:winograd bf16:direct bf16:winograd int8:direct"]
#                    [--out DIR] [--workdir DIR] [--quick]
#
#   --rounds R      run every engine R times, interleaved (ORT, each mode, ORT, each mode, ...)
#                   so that a slow spell of this shared machine hits every engine alike; the
#                   table gives the median of the per-round ratios and their range (default 3)
#   --seconds S     timed seconds per engine, batch size and round (each engine also makes at
#                   least --min-runs passes, default 3, after its warm-up)
#   --batches LIST  batch sizes (default "1 8 16")
#   --threads T     threads for every engine (default 2: ORT intra-op, torch, oneDNN)
#   --skip-torch    leave PyTorch out (it is the slowest part of the run; it runs in round 1
#                   only, as it is 5-20x behind and its ratio does not hinge on noise)
#   --torch-tuned   also run PyTorch under GLIBC_TUNABLES=glibc.malloc.mmap_max=0:
#                   glibc.malloc.trim_threshold=68719476736 (no page faults per forward)
#   --workdir DIR   keep weights, calibration and the ONNX export in DIR and reuse them on the
#                   next run (default: a temp dir, deleted at the end)
#   --out DIR       results (default bench/results/<date>_<time>/)
#   --quick         smoke run: 1 s, batches "1 2", 2 passes, fewer calibration images
#
# Steps: gen-weights (seed 1) -> calibrate int8 -> export to ONNX through torchvision (and check
# ORT's logits against torch's) -> install onnxruntime-node into bench/.ort (gitignored) ->
# measure ORT, vggserve per mode, PyTorch -> table (ratio = median / ORT median at the same
# batch), summary.md and engines.png (gnuplot-nox installed from Debian if no plotter exists).
# Output dir: raw.jsonl (every measurement), table.txt, summary.md, engines.png, log.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

rounds=3 seconds=5 batches="1 8 16" threads=2 min_runs=3 skip_torch=0 torch_tuned=0 quick=0
modes="f32:direct f32:winograd bf16:direct bf16:winograd int8:direct" out= workdir= calib_generated=32
ort_version=${ORT_VERSION:-1.30.0}
args_given="$*"
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --min-runs) min_runs=$2; shift 2 ;;
    --skip-torch) skip_torch=1; shift ;;
    --torch-tuned) torch_tuned=1; shift ;;
    --modes) modes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --quick) quick=1; rounds=1 seconds=1 batches="1 2" min_runs=2 calib_generated=4; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "engines.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
# --quick sets defaults; explicit --seconds/--batches given after it win (parsed in order).
batch_csv=$(echo "$batches" | tr -s ' ,' ',' | sed 's/^,//; s/,$//')

bin=$root/build/vggserve
py=/usr/bin/python3          # Debian's python with torch (the pyenv python3 on PATH has none)
[[ -x $bin ]] || { echo "engines.sh: $bin not built (cmake --build build)" >&2; exit 1; }
$py -c 'import torch, torchvision' 2>/dev/null ||
  { echo "engines.sh: $py lacks torch/torchvision (apt-get install python3-torchvision)" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "engines.sh: needs node and npm" >&2; exit 1; }

stamp=$(date +%Y-%m-%d_%H%M%S)
out=${out:-bench/results/$stamp}
mkdir -p "$out"
out=$(cd "$out" && pwd)
raw=$out/raw.jsonl log=$out/log.txt notes=$out/.notes.md
: >"$raw"; : >"$log"
if [[ -n $workdir ]]; then
  mkdir -p "$workdir"; work=$(cd "$workdir" && pwd); keep_work=1
else
  work=$(mktemp -d /tmp/vggserve-engines.XXXXXX); keep_work=0
fi
cleanup() { ((keep_work)) || rm -rf "$work"; }
trap cleanup EXIT

t_start=$(date +%s)
phase_log=()
say() { echo "== $*" | tee -a "$log" >&2; }
phase() {  # phase NAME CMD... : run, time it, keep stderr in the log
  local name=$1 t0=$SECONDS; shift
  say "$name"
  local rc=0
  "$@" 2>>"$log" || rc=$?
  local note=
  ((rc == 0)) || note=" (FAILED rc=$rc)"
  phase_log+=("$name: $((SECONDS - t0)) s$note")
  return $rc
}
failed=()
record() {  # record LABEL [ENGINE]: JSON lines on stdin -> raw.jsonl (+ label, round) and the terminal
  local label=$1 add="\"label\": \"$1\", \"round\": $round, "
  [[ -n ${2:-} ]] && add+="\"engine\": \"$2\", "
  grep '^{' | sed "s/^{/{$add/" | tee -a "$raw"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
round=0
say "output $out; work dir $work; rounds=$rounds seconds=$seconds batches=$batch_csv threads=$threads min_runs=$min_runs"

# 1. weights and int8 calibration ----------------------------------------------------------
W=$work/vgg16-seed1.safetensors
if [[ ! -s $W ]]; then
  phase "gen-weights" "$bin" gen-weights --seed 1 --out "$W" >>"$log"
fi
if [[ ! -s $W.int8.json ]]; then
  phase "calibrate int8" "$bin" calibrate --weights "$W" --generated "$calib_generated" \
    tests/data/images/*.jpg >>"$log"
fi

# 2. ONNX export through torchvision ---------------------------------------------------------
onnx=$work/vgg16-seed1.onnx
if [[ ! -s $onnx || $onnx -ot $W ]]; then
  phase "export ONNX (torchvision, opset 13, dynamic batch)" \
    $py bench/export_onnx.py --weights "$W" --out "$onnx" --check "$work/check"
fi

# 3. onnxruntime-node (CPU binaries ship in the package; skip its CUDA download) --------------
ortdir=$root/bench/.ort
if [[ $(node -p "try{require('$ortdir/node_modules/onnxruntime-node/package.json').version}catch(e){''}") != "$ort_version" ]]; then
  mkdir -p "$ortdir"
  phase "npm install onnxruntime-node@$ort_version into bench/.ort" \
    env ONNXRUNTIME_NODE_INSTALL_CUDA=skip ONNXRUNTIME_NODE_INSTALL=skip \
    npm install --prefix "$ortdir" --no-save --no-audit --no-fund "onnxruntime-node@$ort_version" >>"$log"
fi
export NODE_PATH=$ortdir/node_modules

# 4. measurements, one engine at a time --------------------------------------------------------
for ((round = 1; round <= rounds; round++)); do
  if ! phase "round $round/$rounds: ONNX Runtime $ort_version ($threads intra-op threads)" \
      node bench/ort_bench.js --model "$onnx" --check "$work/check" --batch "$batch_csv" \
        --seconds "$seconds" --min-runs "$min_runs" --threads "$threads" > >(record onnxruntime); then
    failed+=("onnxruntime (round $round)")
  fi
  wait  # let the process substitution flush before the next engine starts
  for m in $modes; do
    prec=${m%%:*} algo=${m#*:}
    label="vggserve $prec $algo"
    if ! phase "round $round/$rounds: $label" "$bin" bench --weights "$W" --precision "$prec" --algo "$algo" \
        --threads "$threads" --batch "$batch_csv" --seconds "$seconds" --min-runs "$min_runs" \
        --json > >(record "$label" vggserve); then
      failed+=("$label (round $round)")
    fi
    wait
  done
done
round=1

if ((!skip_torch)); then
  if ! phase "PyTorch eager f32 (default malloc)" $py bench/torch_bench.py --weights "$W" \
      --batch "$batch_csv" --seconds "$seconds" --min-runs "$min_runs" --threads "$threads" \
      > >(record "pytorch eager"); then
    failed+=("pytorch eager")
  fi
  wait
  if ((torch_tuned)); then
    if ! phase "PyTorch eager f32 (GLIBC_TUNABLES malloc)" \
        env GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \
        $py bench/torch_bench.py --weights "$W" --label glibc-tunables --batch "$batch_csv" \
          --seconds "$seconds" --min-runs "$min_runs" --threads "$threads" \
        > >(record "pytorch eager +GLIBC_TUNABLES"); then
      failed+=("pytorch eager +GLIBC_TUNABLES")
    fi
    wait
  fi
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# 5. plotter (Debian packages only), table, summary, plot ---------------------------------------
if ! command -v gnuplot >/dev/null && ! $py -c 'import matplotlib' 2>/dev/null; then
  say "installing gnuplot-nox (apt-get)"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox; }; } \
    >>"$log" 2>&1 || say "could not install gnuplot-nox: no plot (table still written)"
fi

total=$(( $(date +%s) - t_start ))
{
  echo "Date: $(date -u +'%Y-%m-%d %H:%M UTC'); vggserve $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo '+dirty');"\
       "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;"\
       "load average at start $load_start, at end $load_end."
  echo
  echo "Settings: $rounds rounds (every engine once per round, interleaved), $seconds s per measurement (at least $min_runs passes after warm-up), batches $batch_csv,"\
       "$threads threads for every engine; ONNX Runtime $ort_version (onnxruntime-node, CPU EP, graph"\
       "optimization all); PyTorch $($py -c 'import torch; print(torch.__version__)') eager float32"\
       "(Debian, reference BLAS for the linear layers); weights: gen-weights --seed 1, exported to ONNX"\
       "through torchvision (opset 13)."
  echo
  echo "Phases: $(IFS=';'; echo "${phase_log[*]}" | sed 's/;/; /g'); total $total s."
  ((${#failed[@]})) && echo && echo "FAILED: ${failed[*]} (see log.txt)."
} >"$notes"
cmd="bench/engines.sh${args_given:+ $args_given}"
say "results"
$py bench/report.py --raw "$raw" --out "$out" --command "$cmd" --notes "$notes" \
  --title "VGG16 engine-only img/s, $threads threads ($(date +%Y-%m-%d))"
rm -f "$notes"
echo "raw: $raw; table: $out/table.txt; summary: $out/summary.md; log: $log; total ${total} s" >&2
if ((${#failed[@]})); then
  echo "engines.sh: FAILED: ${failed[*]} (see $log)" >&2
  exit 1
fi
