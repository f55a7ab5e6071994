#!/usr/bin/env bash
# Issue 12's accelerator measurements in one command, without TensorFlow (the device machines have
# JAX, flax, optax, orbax and PyTorch only): the ResNet-18 224 px SS-IL step in bfloat16 and float32
# and the ResNet-32 CIFAR step, each against PyTorch eager and torch.compile on the same device
# (img/s, MFU, ratios), the ResNet-32 step at 8 steps per call, and the default experiment end to
# end on device-resident data (FMNIST given).
#
#   bash scripts/gpu_bench.sh OUT [WHEELS [FMNIST]]
#     OUT     folder for the logs and JSON results
#     WHEELS  folder of pure-Python wheels to import from (ml_collections, which configs need)
#     FMNIST  folder of the four Fashion-MNIST IDX .gz files (the default experiment's data)
#   QUICK=1 bash scripts/gpu_bench.sh OUT ...   # the same commands on tiny settings (a CPU check)
set -u
OUT=${1:?usage: bash scripts/gpu_bench.sh OUT [WHEELS [FMNIST]]}
WHEELS=${2:-}
FMNIST=${3:-}
mkdir -p "$OUT"
if [ -n "$WHEELS" ]; then
  for w in "$WHEELS"/*.whl; do PYTHONPATH="$w${PYTHONPATH:+:$PYTHONPATH}"; done
  export PYTHONPATH
fi
PY=${PYTHON:-python}
(nvidia-smi || true; $PY -c 'import jax, torch; print(jax.__version__, jax.devices(), torch.__version__)') \
  > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

run() {  # name, benchmark arguments...
  local name=$1; shift
  echo "== $name: python -m cil_jax.benchmark $*"
  timeout "${LIMIT:-300}" $PY -m cil_jax.benchmark "$@" --json "$OUT/$name.json" > "$OUT/$name.log" 2>&1
  echo "exit $?"; grep -E -A4 '^train_step|^error' "$OUT/$name.log"
}

experiment() {  # name, config, main.py arguments...: an experiment on Fashion-MNIST, timed end to end
  local name=$1 config=$2; shift 2
  [ -n "$FMNIST" ] || { echo "== $name: skipped (no FMNIST folder given)"; return; }
  echo "== $name: python main.py --config $config $* --config.dataset.root=FMNIST"
  rm -rf "$OUT/$name"
  local t0=$(date +%s%N)
  timeout "${LIMIT:-300}" $PY main.py --workdir "$OUT/$name" --config "$config" "$@" --config.dataset.root="$FMNIST" \
    > "$OUT/$name.log" 2>&1
  echo "exit $? in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  grep -E '^average incremental|^wall time|^error' "$OUT/$name.log"
}

if [ "${QUICK:-0}" = 1 ]; then
  run r18_bf16 --model small_convnet --num-classes 10 --num-tasks 5 --dtype bfloat16 --steps 2 --rounds 1 --compare torch
  run r32_k8 --model small_convnet --num-classes 10 --num-tasks 5 --steps 4 --steps-per-call 2
  experiment default configs/default.py:smoke
  exit 0
fi
run r18_bf16 --model resnet18 --method ssil --dtype bfloat16 --steps 30 --compare torch --profile /tmp/gpu_bench_trace
run r18_f32 --model resnet18 --method ssil --dtype float32 --steps 30 --compare torch
run r32_f32 --model resnet32_cifar --method ssil --num-classes 100 --steps 50 --compare torch
run r32_bf16 --model resnet32_cifar --method ssil --num-classes 100 --dtype bfloat16 --steps 50 --compare torch
run r32_k8 --model resnet32_cifar --method ssil --num-classes 100 --steps 48 --steps-per-call 8
experiment default configs/default.py
experiment default_k1 configs/default.py --config.train.steps_per_call=1
