#!/usr/bin/env bash
# Runs one of the Fashion-MNIST tables of docs/results.md for seeds 0 1 2, then writes its report:
#   bash scripts/table.sh fmnist [runs/fmnist] [method ...]
#     every method on the shared Split Fashion-MNIST protocol (configs/<method>_fmnist.py; the seed draws
#     the model init, the streams and the class order); runs OUT/<method>_s<seed>
#   bash scripts/table.sh facil [runs/facil_fmnist] [config:variant ...]
#     every IIL-CLSF loss on FACIL's protocol (configs/lwf_fmnist.py, configs/lucir_facil.py:fmnist, each
#     variant; FACIL ties the class order and the validation split to the seed); runs OUT/<config>-<variant>_s<seed>
#   bash scripts/table.sh mgrb [runs/mgrb_fmnist] [name ...]
#     the MGRB ablation (configs/mgrb_fmnist.py: MGRB's CIFAR-10 protocol, 5 base classes then 1 per phase):
#     ont (full MGRB), none (without L_MG), nocb (without the CB loss), vis (the visual hierarchy); the
#     class order is MGRB's seed 1993; runs OUT/mgrb-<name>_s<seed>
#   SEEDS="1" bash scripts/table.sh fmnist     # a subset of the seeds (e.g. one process per core)
# Finished runs are skipped (re-running resumes unfinished ones). OUT is relative to the repository root;
# PYTHON names the interpreter (default .venv/bin/python). The report (<table>.md, .csv, .png) goes to
# OUT/report/, except for the default OUT: that is how the committed table is made, so its report replaces
# docs/results/<table>.{md,csv,png} (fmnist, facil_fmnist, mgrb_fmnist).
set -euo pipefail
cd "$(dirname "$0")/.."
TABLE=${1:-}
declare -A MGRB_ARGS=([ont]=ont [none]=none [nocb]=ont,cb_loss=false [vis]=vis)
declare -A FACIL_CONFIGS=([lwf]=configs/lwf_fmnist.py: [lucir_facil]=configs/lucir_facil.py:fmnist,)
# per table: the report's name (runs/NAME is the default OUT), the default runs, the report's workdirs
# (OUT/PREFIX*) and its --table
case "$TABLE" in
  fmnist) NAME=fmnist PREFIX= KIND=auto RUNS="ssil ft icarl il2m eeil bic lucir podnet joint ft_nomem" ;;
  facil) NAME=facil_fmnist PREFIX= KIND=facil
         RUNS="lwf:lwf lwf:s lwf:sr lwf:br lwf:br2 lwf:bsr lucir_facil:lucir lucir_facil:sr lucir_facil:bsr lucir_facil:br2" ;;
  mgrb) NAME=mgrb_fmnist PREFIX=mgrb- KIND=auto RUNS="ont none nocb vis" ;;
  *) echo "usage: bash scripts/table.sh fmnist|facil|mgrb [OUT] [run ...]" >&2; exit 2 ;;
esac
shift
DEFAULT_OUT=runs/$NAME
OUT=${1:-$DEFAULT_OUT}
OUT=${OUT%/}   # else a trailing slash shows in the report as runs/fmnist//ssil_s0
shift || true
RUNS=${*:-$RUNS}
PY=${PYTHON:-.venv/bin/python}

# One run of the table: its folder name (run_name) and its main.py flags (run_flags); false to skip it.
describe() {
  local run=$1 seed=$2
  case "$TABLE" in
    fmnist)
      [ -f "configs/${run}_fmnist.py" ] || { echo "no configs/${run}_fmnist.py, skipping" >&2; return 1; }
      run_name=$run
      run_flags=(--config "configs/${run}_fmnist.py" --config.seed="$seed" --config.scenario.seed="$seed") ;;
    facil)
      local cfg=${run%%:*} variant=${run#*:}
      [ -n "${FACIL_CONFIGS[$cfg]:-}" ] || { echo "no FACIL config $cfg (use: ${!FACIL_CONFIGS[*]}), skipping" >&2; return 1; }
      run_name=$cfg-$variant
      run_flags=(--config "${FACIL_CONFIGS[$cfg]}variant=$variant" --config.seed="$seed") ;;
    mgrb)
      [ -n "${MGRB_ARGS[$run]:-}" ] || { echo "unknown run $run (use: ${!MGRB_ARGS[*]})" >&2; exit 2; }
      run_name=mgrb-$run
      run_flags=(--config "configs/mgrb_fmnist.py:${MGRB_ARGS[$run]}" --config.seed="$seed") ;;
  esac
}

mkdir -p "$OUT"
# Compared as real paths, so that runs/fmnist/ or ./runs/fmnist is the default too.
if [ -d "$DEFAULT_OUT" ] && [ "$(cd "$OUT" && pwd -P)" = "$(cd "$DEFAULT_OUT" && pwd -P)" ]; then
  REPORT=docs/results/$NAME
else
  REPORT="$OUT/report/$NAME"
fi
for seed in ${SEEDS:-0 1 2}; do
  for run in $RUNS; do
    describe "$run" "$seed" || continue
    w="$OUT/${run_name}_s${seed}"
    if [ -f "$w/results.json" ] && "$PY" -c "import json,sys; r=json.load(open('$w/results.json')); sys.exit(r['tasks_done']!=r['num_tasks'])"; then
      continue
    fi
    "$PY" main.py "${run_flags[@]}" --workdir "$w" 2> "$w.log" || { echo "$run seed $seed failed, see $w.log" >&2; continue; }
  done
done
"$PY" -m cil_jax report "$OUT"/"$PREFIX"*_s[0-9] --table "$KIND" --out "$REPORT"
