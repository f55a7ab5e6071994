#!/usr/bin/env bash
# Issue 12's accelerator measurements in one command, without TensorFlow (the device machines have
# JAX, flax, optax, orbax and PyTorch only): the ResNet-18 224 px SS-IL step in bfloat16 and float32
# and the ResNet-32 CIFAR step, each against PyTorch eager and torch.compile on the same device
# (img/s, MFU, ratios), the default experiment end to end on device-resident data (FMNIST given) at
# the automatic steps per call and at 1, the ResNet-32 step at 8 steps per call, and XLA's profile
# of the ResNet-18 step.
#
#   bash scripts/gpu_bench.sh OUT [WHEELS [FMNIST]]
#     OUT     folder for the logs and JSON results
#     WHEELS  folder of pure-Python wheels to import from (ml_collections, which configs need)
#     FMNIST  folder of the four Fashion-MNIST IDX .gz files (the default experiment's data)
#   QUICK=1 bash scripts/gpu_bench.sh OUT ...   # the same commands on tiny settings (a CPU check)
# The two folders, made on a machine with a package registry, then carried to the device:
#   pip download --no-deps ml_collections -d runs/wheels
#   mkdir -p runs/fmnist && cp /usr/share/datasets/fashion-mnist/*.gz runs/fmnist/   # the Debian package
# BUDGET (seconds, default 540) bounds the whole script: the runs go in order of importance, each
# under what is left of it (at most LIMIT, default 300), and a run with under 40 s left is skipped,
# so that a device call that runs out of time still returns everything measured before.
set -u
OUT=${1:?usage: bash scripts/gpu_bench.sh OUT [WHEELS [FMNIST]]}
WHEELS=${2:-}
FMNIST=${3:-}
mkdir -p "$OUT"
if [ -n "$WHEELS" ]; then
  for w in "$WHEELS"/*.whl; do PYTHONPATH="$w${PYTHONPATH:+:$PYTHONPATH}"; done
  export PYTHONPATH
fi
PY=${PYTHON:-$(command -v python3 || command -v python)}
DEADLINE=$(( $(date +%s) + ${BUDGET:-540} ))
# JAX takes 75 % of the GPU's memory at start by default; the PyTorch peers run in the same process.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.6}
(nvidia-smi || true; nproc; $PY -c 'import sys, jax, torch; print(sys.version.split()[0], jax.__version__, jax.devices(), torch.__version__)') \
  > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

left() {  # seconds this run may take: what is left of BUDGET, at most LIMIT; 0 when under 40 s are left
  local rest=$(( DEADLINE - $(date +%s) )) limit=${LIMIT:-300}
  if [ "$rest" -lt 40 ]; then echo 0; elif [ "$rest" -lt "$limit" ]; then echo "$rest"; else echo "$limit"; fi
}

run() {  # name, benchmark arguments...
  local name=$1; shift
  echo "== $name: python -m cil_jax benchmark $*"
  local limit=$(left)
  [ "$limit" -gt 0 ] || { echo "skipped: BUDGET spent"; return; }
  timeout "$limit" $PY -m cil_jax benchmark "$@" --json "$OUT/$name.json" > "$OUT/$name.log" 2>&1
  echo "exit $?"; grep -E -A4 '^train_step|^error' "$OUT/$name.log"
}

experiment() {  # name, config, main.py arguments...: an experiment on Fashion-MNIST, timed end to end
  local name=$1 config=$2; shift 2
  [ -n "$FMNIST" ] || { echo "== $name: skipped (no FMNIST folder given)"; return; }
  echo "== $name: python main.py --config $config $* --config.dataset.root=FMNIST"
  local limit=$(left)
  [ "$limit" -gt 0 ] || { echo "skipped: BUDGET spent"; return; }
  rm -rf "$OUT/$name"
  local t0=$(date +%s%N)
  timeout "$limit" $PY main.py --workdir "$OUT/$name" --config "$config" "$@" --config.dataset.root="$FMNIST" \
    > "$OUT/$name.log" 2>&1
  echo "exit $? in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  grep -E '^average incremental|^wall time|^error' "$OUT/$name.log"
}

if [ "${QUICK:-0}" = 1 ]; then
  run r18_bf16 --model small_convnet --num-classes 10 --num-tasks 5 --dtype bfloat16 --steps 2 --rounds 1 --compare torch
  run r32_k8 --model small_convnet --num-classes 10 --num-tasks 5 --steps 4 --steps-per-call 2
  run r18_bf16_profile --model small_convnet --num-classes 10 --num-tasks 5 --steps 2 --profile /tmp/gpu_bench_trace
  experiment default configs/default.py:smoke
  exit 0
fi
# In order of importance: the targets first, then the variants.
run r18_bf16 --model resnet18 --method ssil --dtype bfloat16 --steps 30 --compare torch
run r32_f32 --model resnet32_cifar --method ssil --num-classes 100 --steps 50 --compare torch
experiment default configs/default.py
run r18_f32 --model resnet18 --method ssil --dtype float32 --steps 30 --compare torch
run r32_bf16 --model resnet32_cifar --method ssil --num-classes 100 --dtype bfloat16 --steps 50 --compare torch
experiment default_k1 configs/default.py --config.train.steps_per_call=1
run r32_k8 --model resnet32_cifar --method ssil --num-classes 100 --steps 48 --steps-per-call 8
run r18_bf16_profile --model resnet18 --method ssil --dtype bfloat16 --steps 10 --profile /tmp/gpu_bench_trace  # the trace stays there: too large to return
