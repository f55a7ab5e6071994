#!/usr/bin/env bash
# The JPEG input pipeline against the reference's (torchvision + PIL in a DataLoader) on the same
# files, on 1 and on 2 cores, 3 alternating repetitions (the machines here are shared: take medians).
#   bash scripts/input_pipeline_bench.sh OUT [JPEG_ROOT] [BEFORE_CHECKOUT]
# JPEG_ROOT: a class-folder tree (default: 2048 synthetic 500 x 375 quality-90 JPEGs written to
# OUT/jpegs); BEFORE_CHECKOUT: another checkout of this project, timed too (its pipeline alone).
# Needs torch + torchvision (pip install -e '.[bench]').
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash scripts/input_pipeline_bench.sh OUT [JPEG_ROOT] [BEFORE_CHECKOUT]}
ROOT=${2:-}
BEFORE=${3:-}
PY=${PY:-$PWD/.venv/bin/python}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)                         # absolute: the BEFORE runs start in another folder
if [ -z "$ROOT" ]; then
  ROOT=$OUT/jpegs
  [ -d "$ROOT" ] || "$PY" -c "from cil_jax.tools import benchmark; benchmark.write_synthetic_jpegs('$ROOT/train', 2048)"
fi
ROOT=$(cd "$ROOT" && pwd)
# the BEFORE checkout's benchmark: `python -m cil_jax benchmark`, or cil_jax.benchmark before the package's tools/
BEFORE_BENCHMARK=(-m cil_jax benchmark)
[ -z "$BEFORE" ] || [ -f "$BEFORE/cil_jax/__main__.py" ] || BEFORE_BENCHMARK=(-m cil_jax.benchmark)
run() {  # the benchmark's stderr goes to OUT/log; a failure shows its last lines
  if ! "$@" 2>>"$OUT/log"; then tail -3 "$OUT/log" >&2; exit 1; fi
}
for rep in 1 2 3; do
  for cores in 1 2; do
    run "$PY" -m cil_jax benchmark --input files --root "$ROOT" --compare torch --cores $cores \
      --json "$OUT/ours_c${cores}_r$rep.json"
    if [ -n "$BEFORE" ]; then
      cpus=$(seq -s, 0 $((cores - 1)))
      (cd "$BEFORE" && run taskset -c "$cpus" "$PY" "${BEFORE_BENCHMARK[@]}" --input files --root "$ROOT" \
        --json "$OUT/before_c${cores}_r$rep.json")
    fi
  done
done
"$PY" - "$OUT" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
for cores in (1, 2):
  ours = [json.load(open(f)) for f in sorted(glob.glob(f'{out}/ours_c{cores}_r*.json'))]
  before = [json.load(open(f))['img_per_s'] for f in sorted(glob.glob(f'{out}/before_c{cores}_r*.json'))]
  med = lambda v: statistics.median(v) if v else float('nan')  # noqa: E731
  line = (f'cores={cores}: ours {med([r["img_per_s"] for r in ours]):.0f} img/s, torch '
          f'{med([r["torch"]["img_per_s"] for r in ours]):.0f} img/s, ratio {med([r["ratio"] for r in ours]):.2f}x '
          '(the median of the paired runs\' ratios)')
  if before:
    line += f', before {med(before):.0f} img/s'
  print(line + ', medians of 3')
PY
