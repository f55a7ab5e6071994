#!/usr/bin/env bash
# Runs every IIL-CLSF loss on FACIL's protocol on Split Fashion-MNIST (configs/lwf_fmnist.py and
# configs/lucir_facil_fmnist.py, each variant) for seeds 0 1 2 (model init, streams, class order,
# validation split: FACIL ties them to the one seed), then writes the FACIL table.
#   bash scripts/facil_fmnist_table.sh [runs/facil_fmnist] [config:variant ...]
#   SEEDS="1" bash scripts/facil_fmnist_table.sh     # a subset of the seeds
# Finished runs are skipped (re-running resumes unfinished ones). Runs go to OUT/<config>-<variant>_s<seed>.
# The default OUT writes its report to docs/results/facil_fmnist.{md,csv,png}; another OUT to OUT/report/.
set -euo pipefail
cd "$(dirname "$0")/.."
DEFAULT_OUT=runs/facil_fmnist
OUT=${1:-$DEFAULT_OUT}
OUT=${OUT%/}
shift || true
RUNS=${*:-lwf:lwf lwf:s lwf:sr lwf:br lwf:br2 lwf:bsr lucir_facil:lucir lucir_facil:sr lucir_facil:bsr lucir_facil:br2}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
if [ -d "$DEFAULT_OUT" ] && [ "$(cd "$OUT" && pwd -P)" = "$(cd "$DEFAULT_OUT" && pwd -P)" ]; then
  REPORT=docs/results/facil_fmnist
else
  REPORT="$OUT/report/facil_fmnist"
fi
for seed in ${SEEDS:-0 1 2}; do
  for run in $RUNS; do
    cfg=${run%%:*}; variant=${run#*:}
    [ -f "configs/${cfg}_fmnist.py" ] || { echo "no configs/${cfg}_fmnist.py, skipping" >&2; continue; }
    w="$OUT/${cfg}-${variant}_s${seed}"
    if [ -f "$w/results.json" ] && "$PY" -c "import json,sys; r=json.load(open('$w/results.json')); sys.exit(r['tasks_done']!=r['num_tasks'])"; then
      continue
    fi
    "$PY" main.py --config "configs/${cfg}_fmnist.py:variant=${variant}" --config.seed="$seed" \
      --workdir "$w" 2> "$w.log" || { echo "$run seed $seed failed, see $w.log" >&2; continue; }
  done
done
"$PY" -m cil_jax.results.report "$OUT"/*_s[0-9] --table facil --out "$REPORT"
