#!/usr/bin/env bash
# The MGRB ablation on Fashion-MNIST (configs/mgrb_fmnist.py: MGRB's CIFAR-10 protocol, 5 base classes
# then 1 per phase, 180 + 20 images per class): full MGRB (ontology), without L_MG, without the CB loss,
# and the visual hierarchy, for seeds 0 1 2 (model init and streams; the class order is MGRB's seed 1993).
#   bash scripts/mgrb_fmnist_table.sh [runs/mgrb_fmnist] [name ...]      names: ont none nocb vis
#   SEEDS="1" bash scripts/mgrb_fmnist_table.sh                          # a subset of the seeds
# Finished runs are skipped (re-running resumes unfinished ones). Runs go to OUT/mgrb-<name>_s<seed>.
# The default OUT writes its report to docs/results/mgrb_fmnist.{md,csv,png}; another OUT to OUT/report/.
set -euo pipefail
cd "$(dirname "$0")/.."
DEFAULT_OUT=runs/mgrb_fmnist
OUT=${1:-$DEFAULT_OUT}
OUT=${OUT%/}
shift || true
NAMES=${*:-ont none nocb vis}
PY=${PYTHON:-.venv/bin/python}
declare -A ARGS=([ont]=ont [none]=none [nocb]=ont,cb_loss=false [vis]=vis)
mkdir -p "$OUT"
if [ -d "$DEFAULT_OUT" ] && [ "$(cd "$OUT" && pwd -P)" = "$(cd "$DEFAULT_OUT" && pwd -P)" ]; then
  REPORT=docs/results/mgrb_fmnist
else
  REPORT="$OUT/report/mgrb_fmnist"
fi
for seed in ${SEEDS:-0 1 2}; do
  for name in $NAMES; do
    [ -n "${ARGS[$name]:-}" ] || { echo "unknown run $name (use: ${!ARGS[*]})" >&2; exit 2; }
    w="$OUT/mgrb-${name}_s${seed}"
    if [ -f "$w/results.json" ] && "$PY" -c "import json,sys; r=json.load(open('$w/results.json')); sys.exit(r['tasks_done']!=r['num_tasks'])"; then
      continue
    fi
    "$PY" main.py --config "configs/mgrb_fmnist.py:${ARGS[$name]}" --config.seed="$seed" \
      --workdir "$w" 2> "$w.log" || { echo "$name seed $seed failed, see $w.log" >&2; continue; }
  done
done
"$PY" -m cil_jax.results.report "$OUT"/mgrb-*_s[0-9] --out "$REPORT"
