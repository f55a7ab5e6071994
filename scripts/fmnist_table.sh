#!/usr/bin/env bash
# Runs every method on the shared Split Fashion-MNIST protocol (configs/<method>_fmnist.py) for
# seeds 0 1 2 (model init, streams and class order), then writes the comparison table.
#   bash scripts/fmnist_table.sh [runs/fmnist] [method ...]
#   SEEDS="1" bash scripts/fmnist_table.sh     # a subset of the seeds (e.g. one process per core)
# Finished runs are skipped (re-running resumes unfinished ones). Runs go to OUT/<method>_s<seed>
# (OUT is the first argument, relative to the repository root, default runs/fmnist). The report
# (fmnist.md, .csv, .png) goes to OUT/report/, except for the default OUT: that is how the committed
# table is made, so its report replaces docs/results/fmnist.{md,csv,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
DEFAULT_OUT=runs/fmnist
OUT=${1:-$DEFAULT_OUT}
OUT=${OUT%/}   # else a trailing slash shows in the report as runs/fmnist//ssil_s0
shift || true
METHODS=${*:-ssil ft icarl il2m eeil bic lucir podnet joint ft_nomem}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
# Compared as real paths, so that runs/fmnist/ or ./runs/fmnist is the default too.
if [ -d "$DEFAULT_OUT" ] && [ "$(cd "$OUT" && pwd -P)" = "$(cd "$DEFAULT_OUT" && pwd -P)" ]; then
  REPORT=docs/results/fmnist
else
  REPORT="$OUT/report/fmnist"
fi
for seed in ${SEEDS:-0 1 2}; do
  for m in $METHODS; do
    [ -f "configs/${m}_fmnist.py" ] || { echo "no configs/${m}_fmnist.py, skipping" >&2; continue; }
    w="$OUT/${m}_s${seed}"
    if [ -f "$w/results.json" ] && "$PY" -c "import json,sys; r=json.load(open('$w/results.json')); sys.exit(r['tasks_done']!=r['num_tasks'])"; then
      continue
    fi
    "$PY" main.py --config "configs/${m}_fmnist.py" --config.seed="$seed" --config.scenario.seed="$seed" \
      --workdir "$w" 2> "$w.log" || { echo "$m seed $seed failed, see $w.log" >&2; continue; }
  done
done
"$PY" -m cil_jax.results.report "$OUT"/*_s[0-9] --out "$REPORT"
