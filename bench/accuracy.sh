#!/usr/bin/env bash
# accuracy.sh - numerics of each fast mode against f32 direct on the same weights: the shipped
# photos plus deterministic variations of them (`vggserve accuracy`).
#
#   bench/accuracy.sh [--weights W.safetensors] [--random 200] [--threads T (0: all cores)] [--out DIR] [--quick]
#
# Modes: f32 winograd, bf16 direct, bf16 winograd (f32 Winograd where it beats bf16), int8
# direct. Without --weights it generates seed-1 weights in a temp dir; int8 needs
# W.int8.json, made with `vggserve calibrate` when missing.
# Prints one table (top-1 agreement, top-5 overlap, max abs probability difference, logit error
# relative to the logits' spread between classes, and the largest margin (p1 - p2) / p1 of f32's
# first class over the candidate's among the flipped inputs: how near a tie the flips were); with
# --out DIR also writes DIR/accuracy.jsonl and DIR/accuracy.txt. --quick: --random 8.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./build/vggserve
weights= random=200 threads=0 out=
while (($#)); do
  case $1 in
    --weights) weights=$2; shift 2 ;;
    --random) random=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) random=8; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "accuracy.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $bin ]] || { echo "accuracy.sh: $bin not built" >&2; exit 1; }
tmp=$(mktemp -d /tmp/vggserve-accuracy.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [[ -z $weights ]]; then
  weights=$tmp/vgg16-seed1.safetensors
  $bin gen-weights --seed 1 --out "$weights" >&2
fi
[[ -s $weights.int8.json ]] || $bin calibrate --weights "$weights" tests/data/images/*.jpg >&2

images=(tests/data/images/*.jpg tests/data/images/*.png)
jsonl=$tmp/accuracy.jsonl
: >"$jsonl"
for m in "f32 winograd" "bf16 direct" "bf16 winograd" "int8 direct"; do
  set -- $m
  echo "== $1 $2 vs f32 direct ($(( ${#images[@]} + random )) inputs)" >&2
  $bin accuracy --weights "$weights" --precision "$1" --algo "$2" --random "$random" \
    --threads "$threads" --json "${images[@]}" | grep '^{' | tee -a "$jsonl" >&2
done

table=$tmp/accuracy.txt
/usr/bin/python3 - "$jsonl" >"$table" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(f"{'mode (vs f32 direct)':<22} {'inputs':>6} {'top-1 agree':>11} {'top-5 overlap':>13} {'max |dp|':>9}"
      f" {'rel logit err':>13} {'largest flipped f32 margin':>26}")
print("-" * 106)
for r in rows:
    print(f"{r['precision'] + ' ' + r['algo']:<22} {r['inputs']:>6} {100 * r['top1_agreement']:>10.2f}%"
          f" {100 * r['top5_overlap']:>12.2f}% {r['max_abs_prob_diff']:>9.3g} {r['rel_logit_err']:>13.3g}"
          f" {r['max_flipped_margin']:>26.3g}")
if rows:
    print(f"f32's own margin between its first two classes, (p1 - p2) / p1, median over the inputs:"
          f" {rows[0]['median_f32_margin']:.3g}")
EOF
cat "$table"
if [[ -n $out ]]; then
  mkdir -p "$out"
  cp "$jsonl" "$table" "$out"/
  echo "wrote $out/accuracy.jsonl and $out/accuracy.txt" >&2
fi
