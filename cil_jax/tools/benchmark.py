"""Throughput benchmarks of the engine's two halves, measured separately.

train step (default): the engine's own jitted, sharded step (`step.make_train_step`) for one method
  and model, on a synthetic uint8 batch already on the devices, sharded over all of them like the
  engine does. The phase timed is task 1's (SS-IL: B new + R replay images and the frozen teacher's
  forward pass; FT: B mixed images), in a T-task split of --num-classes (base = step = C / T).
  compile = the first call (trace + compile + one step), waited for. Then --steps calls are
  dispatched back to back (no per-step sync, the state donated as in training) and waited for once
  with jax.block_until_ready: img/s = steps * (B + R) / time, ms/step = time / steps. FLOPs per step
  come from XLA's cost analysis of the compiled one-step program; MFU = FLOP/s / the device's peak
  (PEAK_TFLOPS; none for CPU). --steps-per-call K runs K steps per call (lax.scan) on K copies of
  the batch. --compare torch also times the same step in PyTorch (torch_reference.TorchStep), eager
  and torch.compile, on the same batch and device: the three take turns for --rounds rounds of
  --steps steps, the median round counts, and ratio = their time / ours. No TensorFlow is imported
  on this path (torch crashes next to it; the GPU machines have none).

input pipeline (--input MODE): the host-side tf.data stream alone (`streams.ImageLoader.train` over
  a `streams.make_plan('new+replay')` plan: B new + R exemplars per batch), no accelerator:
    memory          a synthetic in-memory uint8 split (N images of SxSx3), batched crop_flip
    files           an ImageNet-style folder tree --root/<class>/<image> (or --root/train/...),
                    decoded + random-resized-crop + flip ('imagenet' augmentation) at S = 224
    jpeg-synthetic  the same as files on N synthetic JPEGs first written to a temporary folder tree
                    (offline)
  The first batch is a warm-up (graph building, first reads); img/s is over the remaining batches.
  --compare torch also times the reference's pipeline on the same files in the same command (in a
  child process: torch's DataLoader crashes next to TensorFlow): a PyTorch DataLoader
  (num_workers = --cores, shuffled) over PIL images with torchvision's RandomResizedCrop(S) +
  RandomHorizontalFlip + ToTensor + Normalize, batches of B + R; ratio = ours / theirs. --cores N
  pins the process (and the DataLoader's workers) to N cores, so both pipelines get the same CPUs.
  torch and torchvision: `pip install -r requirements-bench.txt`.

  cil-jax benchmark --model resnet18 --method ssil --steps 20 [--dtype bfloat16]
  cil-jax benchmark --model resnet32_cifar --num-classes 100 --steps 10 --compare torch
  cil-jax benchmark --input jpeg-synthetic [--json results.json]
  cil-jax benchmark --input jpeg-synthetic --compare torch --cores 1
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from cil_jax import methods as methods_lib
from cil_jax import models
from cil_jax.engine import parallel
from cil_jax.config_base import base_config, set_method
from cil_jax.methods.api import Classes, Optimizer
from cil_jax.input_pipeline.scenario import Tasks
from cil_jax.engine.factory import Factory, ModelSpec
from cil_jax.engine.step import chunk_sharding, normalizer

INPUT_MODES = ('memory', 'files', 'jpeg-synthetic')


def default_image_shape(model: str) -> tuple[int, int]:
  """(side, channels) of the data each model is used with: ImageNet 224, CIFAR 32, Fashion-MNIST 28."""
  if model == 'small_convnet':
    return 28, 1
  return (32 if model.endswith('_cifar') else 224), 3


def _synthetic_batch(rng, tasks: Tasks, phase, side: int, channels: int) -> dict:
  """A task-1 batch: new-class labels in the new slots, old-class labels in the replay slots."""
  new, rep = phase.batch_size, phase.replay_batch_size
  if rep:  # separate stream: B new images, then R exemplars
    replay = np.arange(new + rep) >= new
    labels = np.where(replay, rng.randint(0, tasks.start(1), new + rep),
                      rng.randint(tasks.start(1), tasks.end(1), new + rep))
  else:    # one mixed stream over all seen classes
    labels = rng.randint(0, tasks.end(1), new)
    replay = labels < tasks.start(1)
  images = rng.randint(0, 256, (new + rep, side, side, channels), dtype=np.uint8)
  return {'image': images, 'label': labels.astype(np.int32), 'replay': replay}


# Dense peak TFLOP/s of common accelerators (vendor figures, no sparsity) by compute dtype; float32
# means TF32 tensor cores, which XLA's default precision uses for float32 convolutions and matmuls
# on these GPUs. Matched against jax's device_kind in this order. CPU: FLOP/s only.
PEAK_TFLOPS = (('H100 PCIe', {'bfloat16': 756.0, 'float32': 378.0}),
               ('H100', {'bfloat16': 989.0, 'float32': 495.0}),
               ('H200', {'bfloat16': 989.0, 'float32': 495.0}),
               ('A100', {'bfloat16': 312.0, 'float32': 156.0}),
               ('L4', {'bfloat16': 121.0, 'float32': 60.0}),
               ('A10', {'bfloat16': 125.0, 'float32': 62.5}),
               ('V100', {'float32': 15.7}))


def peak_flops(device_kind: str, dtype: str) -> float | None:
  for name, peaks in PEAK_TFLOPS:
    if name in device_kind:
      return peaks[dtype] * 1e12 if dtype in peaks else None
  return None


def compiled_flops(compiled) -> float | None:
  """FLOPs of one call from XLA's cost analysis of the compiled program (a multiply-add counts 2)."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):   # older jaxlib: one dict per program
    analysis = analysis[0] if analysis else {}
  flops = (analysis or {}).get('flops')
  return float(flops) if flops and flops > 0 else None


class JaxStep:
  """The engine's jitted, sharded train step for task 1 of `method` on a synthetic batch already on
  the devices, built as the engine builds it. `run(steps)` times steps dispatched back to back."""

  def __init__(self, method: str, model: str, image_size: int, num_classes: int, batch_size: int,
               replay_batch_size: int, dtype: str, num_tasks: int, seed: int = 0, steps_per_call: int = 1):
    config = base_config()
    set_method(config, method)
    config.train.batch_size, config.train.replay_batch_size = batch_size, replay_batch_size
    config.model.name, config.model.dtype = model, dtype
    if batch_size < 1 or replay_batch_size < 0:
      raise ValueError(f'--batch-size={batch_size} and --replay-batch-size={replay_batch_size}: the batch needs '
                       'one new image at least, and the replay batch cannot be negative')
    self.method_obj = methods_lib.get(method).make(config)
    phase = self.method_obj.phases(1)[0]
    self.phase = phase
    self.global_batch = phase.batch_size + phase.replay_batch_size
    parallel.check_batch(self.global_batch, 'batch size + replay batch size')
    if num_tasks < 2 or num_classes % num_tasks:
      raise ValueError(f'--num-tasks={num_tasks} does not split --num-classes={num_classes} into equal tasks '
                       '(base = step = classes / tasks, two tasks at least)')
    step_size = num_classes // num_tasks
    if step_size < 2:   # SS-IL's separated softmax over one new class is a loss of 0: not a real step
      fits = [str(d) for d in range(2, num_classes // 2 + 1) if num_classes % d == 0]
      use = f'use --num-tasks {", ".join(fits[:8])}' + (', ...' if len(fits) > 8 else '') if fits else \
          'use more --num-classes'
      raise ValueError(f'--num-tasks={num_tasks} leaves one class per task, where a task-wise softmax has '
                       f'nothing to separate; {use}')
    self.tasks = tasks = Tasks(num_classes, step_size, step_size)
    side, channels = default_image_shape(model)
    self.side, self.channels = image_size or side, channels
    side = self.side

    replicated, sharded = parallel.shardings(parallel.make_mesh())
    if steps_per_call < 1:
      raise ValueError(f'--steps-per-call={steps_per_call} must be >= 1')
    self.steps_per_call = steps_per_call
    factory = Factory(ModelSpec(model, num_classes, dtype=dtype),
                      Optimizer.of_train_config(config.train),
                      normalizer((0.5,) * channels, (0.25,) * channels), replicated, sharded)
    self.step_fn = factory.train_step(phase.step, steps_per_call=steps_per_call)
    state, self.method_state = factory.init_state(seed, (side, side, channels), self.method_obj, tasks.num_tasks)
    self.state = factory.with_phase_optimizer(state, phase.step)
    self.teacher = self.state.teacher_copy() if phase.step.teacher is not None else None
    self.classes = Classes.for_task(tasks, 1)
    lr = np.float32(0.01) if steps_per_call == 1 else np.full(steps_per_call, 0.01, np.float32)
    self.lr = jax.device_put(lr, replicated)
    rng = np.random.RandomState(seed + jax.process_index())
    self.local_batch = _synthetic_batch(rng, tasks, phase, side, channels)
    per = self.global_batch // jax.process_count()   # each process feeds its slice of the global batch
    local = {k: v[:per] for k, v in self.local_batch.items()}
    if steps_per_call > 1:   # the same batch K times, as one chunk
      local = {k: np.stack([v] * steps_per_call) for k, v in local.items()}
    self.batch = parallel.to_global(local, sharded if steps_per_call == 1 else chunk_sharding(sharded))
    t0 = time.perf_counter()
    # FLOPs from the one-step program: XLA's cost analysis counts a loop's body once
    single = factory.train_step(phase.step)
    one_batch = jax.tree.map(lambda x: x[0], self.batch) if steps_per_call > 1 else self.batch
    self.flops = compiled_flops(single.jitted.lower(self.state, self.teacher, one_batch, self.classes,
                                                    jnp.float32(0.01), self.method_state, ()).compile())
    self.run(steps_per_call)   # the jit cache's own compile (the same program) and one call
    self.compile_s = time.perf_counter() - t0

  def compiled(self):
    """The compiled program that run() calls."""
    return self.step_fn.jitted.lower(self.state, self.teacher, self.batch, self.classes, self.lr,
                                     self.method_state, ()).compile()

  def run(self, steps: int) -> tuple[float, float]:
    """(seconds for `steps` steps, the last loss): no per-step sync, the state donated as in training."""
    if steps % self.steps_per_call:
      raise ValueError(f'--steps={steps} is not a multiple of --steps-per-call={self.steps_per_call}')
    jax.block_until_ready(self.state)
    t0 = time.perf_counter()
    for _ in range(steps // self.steps_per_call):
      self.state, metrics = self.step_fn(self.state, self.teacher, self.batch, self.classes, self.lr,
                                         self.method_state)
    jax.block_until_ready((self.state, metrics))
    elapsed = time.perf_counter() - t0
    loss = float(np.asarray(metrics['loss']).reshape(-1)[-1])
    if not math.isfinite(loss):
      raise FloatingPointError(f'the benchmarked step produced loss={loss}')
    return elapsed, loss


def check_torch(modules: tuple[str, ...] = ('torch',)) -> None:
  """--compare torch: a missing torch (or torchvision) is said at once, before anything is built or
  compiled. Looked up, not imported: the input benchmark imports torch in a child process only."""
  import importlib.util
  missing = [m for m in modules if importlib.util.find_spec(m) is None]
  if missing:
    raise ValueError(f'--compare torch needs {" and ".join(missing)}, which {"is" if len(missing) == 1 else "are"} '
                     'not installed: pip install -r requirements-bench.txt')


def _torch_peers(jax_step: JaxStep, method: str, model: str, dtype: str, seed: int) -> dict:
  """The PyTorch eager and torch.compile steps on the same batch and device (torch_reference.py)."""
  try:
    import torch
    from cil_jax.tools import torch_reference
  except ImportError as e:
    raise ValueError(f'--compare torch needs torch ({e}); pip install -r requirements-bench.txt') from None
  platform = jax.devices()[0].platform
  device = 'cuda' if platform == 'gpu' else 'cpu'
  if device == 'cuda':
    torch.backends.cuda.matmul.allow_tf32 = True   # as XLA's default precision (cuDNN convs already do)
  else:
    torch.set_num_threads(len(os.sched_getaffinity(0)))
  tasks = jax_step.tasks
  bounds = [(tasks.start(s), tasks.end(s)) for s in range(2)]
  peers = {}
  for name, compile_ in (('torch_eager', False), ('torch_compile', True)):
    peer = torch_reference.TorchStep(method, model, tasks.num_classes, bounds, jax_step.phase.batch_size,
                                     jax_step.channels, device, dtype, compile_, seed)
    images, labels = peer.to_device(jax_step.local_batch['image'], jax_step.local_batch['label'])
    t0 = time.perf_counter()
    peer.run(images, labels, 2)   # warm-up (torch.compile: trace + compile)
    peers[name] = (peer, images, labels, time.perf_counter() - t0)
  return peers


def bench_train_step(method: str = 'ssil', model: str = 'resnet18', image_size: int = 0,
                     num_classes: int = 1000, batch_size: int = 128, replay_batch_size: int = 32,
                     steps: int = 20, dtype: str = 'float32', num_tasks: int = 10, seed: int = 0,
                     compare: str = '', rounds: int = 3, steps_per_call: int = 1, profile_dir: str = '') -> dict:
  """img/s of the engine's step; compare='torch': also PyTorch eager and compiled, timed in turns
  (`rounds` rounds of `steps` steps each, the median round counts) so that a noisy machine slows
  all of them alike. profile_dir: then `steps` more steps of ours under XLA's profiler, the trace
  written there and summarized (xla_profile.py)."""
  if steps < 1:
    raise ValueError(f'--steps={steps} must be >= 1')
  if rounds < 1:
    raise ValueError(f'--rounds={rounds} must be >= 1')
  if compare == 'torch':
    check_torch()
  ours = JaxStep(method, model, image_size, num_classes, batch_size, replay_batch_size, dtype, num_tasks, seed,
                 steps_per_call)
  contenders = {'jax': ours.run}
  peers = {}
  if compare == 'torch':
    peers = _torch_peers(ours, method, model, dtype, seed)
    for name, (peer, images, labels, _) in peers.items():
      contenders[name] = lambda n, peer=peer, images=images, labels=labels: peer.run(images, labels, n)
  times = {name: [] for name in contenders}
  losses = {}
  for _ in range(rounds if peers else 1):
    for name, run in contenders.items():
      elapsed, losses[name] = run(steps)
      times[name].append(elapsed)
  median = {name: float(np.median(t)) for name, t in times.items()}
  device_kind = jax.devices()[0].device_kind
  result = {'kind': 'train_step', 'method': method, 'model': model, 'dtype': dtype,
            'batch_size': ours.phase.batch_size, 'replay_batch_size': ours.phase.replay_batch_size,
            'image_shape': [ours.side, ours.side, ours.channels], 'num_classes': num_classes,
            'devices': jax.device_count(), 'device_kind': device_kind, 'steps': steps, 'rounds': len(times['jax']),
            'steps_per_call': steps_per_call,
            'compile_s': ours.compile_s, 'img_per_s': steps * ours.global_batch / median['jax'],
            'ms_per_step': 1000.0 * median['jax'] / steps, 'loss': losses['jax'], 'flops_per_step': ours.flops}
  if ours.flops:
    result['tflop_per_s'] = ours.flops / (median['jax'] / steps) / 1e12
    peak = peak_flops(device_kind, dtype)
    if peak:
      result['mfu'] = ours.flops / (median['jax'] / steps) / (peak * jax.device_count())
  for name, (_, _, _, warm_s) in peers.items():
    result[name] = {'img_per_s': steps * ours.global_batch / median[name], 'ms_per_step': 1000.0 * median[name] / steps,
                    'warmup_s': warm_s, 'loss': losses[name]}
    result[f'ratio_{name}'] = median[name] / median['jax']
  if profile_dir:
    from cil_jax.tools import xla_profile
    try:
      result['profile'] = xla_profile.profile(lambda n: ours.run(n)[0], ours.compiled(), steps, profile_dir)
    except Exception as e:   # the timing above stands without the trace (e.g. no CUPTI on the device)
      result['profile_error'] = f'{type(e).__name__}: {e}'
  return result


def write_synthetic_jpegs(root: str, num_images: int, num_classes: int = 10, size=(500, 375),
                          seed: int = 0) -> str:
  """root/class_XXX/img_XXXXXX.JPEG at quality 90: random colour fields with mid-frequency detail and
  pixel noise, so the files are as large as ImageNet's (about 105 KB at 500 x 375; ImageNet's 1.28 M
  training JPEGs average about 110 KB), which is what decoding time depends on."""
  from PIL import Image
  rng = np.random.RandomState(seed)
  w, h = size
  for c in range(num_classes):
    os.makedirs(os.path.join(root, f'class_{c:03d}'), exist_ok=True)
  for i in range(num_images):  # one file each: PIL encodes one image at a time
    coarse = Image.fromarray(rng.randint(0, 256, (12, 16, 3), dtype=np.uint8)).resize(size, Image.BILINEAR)
    detail = Image.fromarray(rng.randint(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)).resize(size, Image.BILINEAR)
    pixels = (np.asarray(coarse, np.float32) + 0.5 * (np.asarray(detail, np.float32) - 128)
              + rng.normal(0, 16, (h, w, 3)))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image.save(os.path.join(root, f'class_{i % num_classes:03d}', f'img_{i:06d}.JPEG'), quality=90)
  return root


def bench_input(mode: str = 'memory', root: str = '', num_images: int = 0, image_size: int = 0,
                batch_size: int = 128, replay_batch_size: int = 32, seed: int = 0, compare: str = '') -> dict:
  """Host-side img/s of one epoch of the new+replay stream (10% of the images are the memory);
  compare='torch' also the reference pipeline's on the same files (bench_torch_input)."""
  if compare == 'torch':
    check_torch(('torch', 'torchvision'))
  from cil_jax.errors import one_line
  from cil_jax.input_pipeline import image_checks, image_folders, streams
  from cil_jax.input_pipeline.base import DataError, Split
  streams.tensorflow()   # as the engine: quietly, tf.data only (no accelerators)
  if mode not in INPUT_MODES:
    raise ValueError(f'--input={mode!r} is unknown; choose one of {INPUT_MODES}')
  with tempfile.TemporaryDirectory(prefix='cil_bench_') as tmp:
    if mode == 'memory':
      num_images, image_size, augment = num_images or 20000, image_size or 32, 'crop_flip'
      rng = np.random.RandomState(seed)
      split = Split(labels=rng.randint(0, 100, num_images).astype(np.int64),
                    images=rng.randint(0, 256, (num_images, image_size, image_size, 3), dtype=np.uint8))
    else:
      if mode == 'jpeg-synthetic':
        root = write_synthetic_jpegs(tmp, num_images or 2048, seed=seed)
      elif not root:
        raise ValueError('--input files needs --root DIR (DIR/<class>/<image>, or DIR/train/<class>/<image>)')
      elif os.path.isdir(os.path.join(root, 'train')):
        root = os.path.join(root, 'train')
      split, _ = image_folders.read_split(root)
      num_images, image_size, augment = len(split), image_size or 224, 'imagenet'
    everything = np.arange(len(split))
    memory = everything[::10]
    plan = streams.make_plan('new+replay', everything, memory, batch_size, replay_batch_size, seed)
    if plan.steps < 2:
      more = f'--num-images {2 * batch_size}' if mode == 'jpeg-synthetic' else \
          f'a folder of at least {2 * batch_size} images'
      raise ValueError(f'{len(split)} images make {plan.steps} batch(es) of {batch_size} new images; the benchmark '
                       f'needs at least 2 (one warm-up): use {more}, or '
                       f'--batch-size {max(1, len(split) // 4)} --replay-batch-size {max(1, len(split) // 40)}')
    if compare and mode == 'memory':
      raise ValueError('--compare torch times JPEG decoding: use --input files or --input jpeg-synthetic')
    loader = streams.ImageLoader(split, split.labels, augment, image_size)
    it = loader.train(plan).as_numpy_iterator()
    try:
      next(it)                                 # warm-up batch
      t0 = time.perf_counter()
      batches = sum(1 for _ in it)
      elapsed = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - tf.data's errors are named; the rest pass through
      if not streams.is_data_error(e):
        raise
      problem = image_checks.find_bad_image(split, everything)
      raise DataError(f'{problem}; remove or replace it' if problem else
                      f'reading the images failed: {one_line(e)}') from None
    global_batch = batch_size + replay_batch_size
    result = {'kind': 'input', 'mode': mode, 'augment': augment, 'num_images': int(num_images),
              'image_size': image_size, 'batch_size': batch_size, 'replay_batch_size': replay_batch_size,
              'cores': len(os.sched_getaffinity(0)), 'batches': batches, 'img_per_s': batches * global_batch / elapsed,
              'ms_per_batch': 1000.0 * elapsed / batches}
    if compare == 'torch':
      # in a fresh process: torch's DataLoader crashes in a process where TensorFlow runs
      import concurrent.futures
      import multiprocessing
      with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn')) as pool:
        theirs = pool.submit(bench_torch_input, [str(f) for f in split.files], image_size, global_batch,
                             result['cores'], True, seed).result()
      result['torch'] = theirs
      result['ratio'] = result['img_per_s'] / theirs['img_per_s']
  return result


def pin_cores(cores: int) -> list[int]:
  """Restricts this process (and the processes it starts) to its first `cores` CPUs; before
  TensorFlow starts, so tf.data sizes its thread pools to them."""
  allowed = sorted(os.sched_getaffinity(0))
  if cores < 1 or cores > len(allowed):
    raise ValueError(f'--cores={cores}: this process may use {len(allowed)} cores; choose 1..{len(allowed)}')
  os.sched_setaffinity(0, allowed[:cores])
  return allowed[:cores]


class _TorchFiles:
  """A map-style dataset as the reference's: PIL-decoded files through a torchvision transform."""

  def __init__(self, files, transform):
    self.files, self.transform = files, transform

  def __len__(self):
    return len(self.files)

  def __getitem__(self, i):
    from PIL import Image
    with open(self.files[i], 'rb') as f:   # as torchvision's pil_loader
      image = Image.open(f).convert('RGB')
    return self.transform(image), 0


def bench_torch_input(files: list[str], image_size: int, batch: int, workers: int, normalize: bool,
                      seed: int = 0) -> dict:
  """The reference pipeline: torchvision transforms on PIL images in a DataLoader, one epoch."""
  try:
    import torch
    from torchvision import transforms
  except ImportError as e:
    raise ValueError(f'--compare torch needs torch and torchvision ({e}); pip install -r requirements-bench.txt') \
        from None
  steps = [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
  if normalize:
    steps.append(transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
  torch.manual_seed(seed)
  loader = torch.utils.data.DataLoader(_TorchFiles(files, transforms.Compose(steps)), batch_size=batch,
                                       shuffle=True, num_workers=workers, drop_last=True,
                                       multiprocessing_context='fork')
  it = iter(loader)
  next(it)                                 # warm-up: the workers start
  t0 = time.perf_counter()
  batches = sum(1 for _ in it)
  elapsed = time.perf_counter() - t0
  return {'batches': batches, 'img_per_s': batches * batch / elapsed, 'ms_per_batch': 1000.0 * elapsed / batches}


def format_result(r: dict) -> str:
  batch = f"{r['batch_size']}+{r['replay_batch_size']}"
  if r['kind'] == 'train_step':
    shape = 'x'.join(map(str, r['image_shape']))
    line = (f"train_step method={r['method']} model={r['model']} batch={batch} devices={r['devices']} "
            f"({r['device_kind']}) dtype={r['dtype']} image={shape} classes={r['num_classes']} "
            f"steps/call={r.get('steps_per_call', 1)}: "
            f"{r['img_per_s']:.1f} img/s, {r['ms_per_step']:.1f} ms/step, compile {r['compile_s']:.1f} s")
    if r.get('tflop_per_s'):
      line += f", {r['flops_per_step'] / 1e9:.2f} GFLOP/step = {r['tflop_per_s']:.3g} TFLOP/s"
    if r.get('mfu'):
      line += f", MFU {100 * r['mfu']:.1f} %"
    for name in ('torch_eager', 'torch_compile'):
      if name in r:
        line += (f"\n  {name.replace('_', ' ')}: {r[name]['img_per_s']:.1f} img/s, {r[name]['ms_per_step']:.1f} ms/step; "
                 f"jax / {name.split('_')[1]} = {r['ratio_' + name]:.2f}x")
    if 'torch_eager' in r:
      line += f"\n  (median of {r['rounds']} rounds of {r['steps']} steps, taken in turns)"
    if 'profile' in r:
      from cil_jax.tools import xla_profile
      line += '\n' + xla_profile.format_profile(r['profile'])
    if 'profile_error' in r:
      line += f"\n  no profile: {r['profile_error']}"
    return line
  line = (f"input mode={r['mode']} augment={r['augment']} images={r['num_images']} size={r['image_size']} "
          f"batch={batch} cores={r['cores']}: {r['img_per_s']:.1f} img/s, {r['ms_per_batch']:.1f} ms/batch "
          f"over {r['batches']} batches")
  if 'torch' in r:
    line += (f"\n  torch DataLoader + PIL ({r['cores']} workers): {r['torch']['img_per_s']:.1f} img/s; "
             f"ratio {r['ratio']:.2f}x")
  return line


def main(argv=None, prog='cil-jax benchmark') -> dict:
  p = argparse.ArgumentParser(prog=prog, description=__doc__.split('\n')[0])
  p.add_argument('--method', default='ssil', choices=methods_lib.names())
  p.add_argument('--model', default='resnet18', choices=models.NAMES)
  p.add_argument('--image-size', type=int, default=0, help='0: the model\'s (224 / 32 / 28) or the input mode\'s')
  p.add_argument('--num-classes', type=int, default=1000)
  p.add_argument('--num-tasks', type=int, default=10, help='T: base = step = num-classes / T')
  p.add_argument('--batch-size', type=int, default=128)
  p.add_argument('--replay-batch-size', type=int, default=32)
  p.add_argument('--steps', type=int, default=20, help='timed train steps after the compile call')
  p.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
  p.add_argument('--steps-per-call', type=int, default=1, help='K steps per jitted call (lax.scan, '
                 'train.steps_per_call); --steps must be a multiple of K')
  p.add_argument('--input', choices=INPUT_MODES, help='benchmark the input pipeline instead')
  p.add_argument('--root', default='', help='--input files: the class-folder tree')
  p.add_argument('--num-images', type=int, default=0, help='memory: 20000, jpeg-synthetic: 2048')
  p.add_argument('--compare', choices=('torch',), help='also time the PyTorch peer: the same step in eager '
                 'and torch.compile modes, or with --input, the reference DataLoader + PIL pipeline')
  p.add_argument('--rounds', type=int, default=3, help='--compare: timed rounds per contender, in turns')
  p.add_argument('--profile', default='', metavar='DIR', help='then trace --steps more of our steps with XLA\'s '
                 'profiler into DIR (TensorBoard / Perfetto) and print where the time goes')
  p.add_argument('--cores', type=int, default=0, help='pin the process to this many cores (0: all it may use)')
  p.add_argument('--json', default='', help='also write the result to this file')
  a = p.parse_args(argv)
  from cil_jax.input_pipeline.base import DataError
  try:
    if a.cores:
      pin_cores(a.cores)
    if a.input:
      result = bench_input(a.input, a.root, a.num_images, a.image_size, a.batch_size, a.replay_batch_size,
                           compare=a.compare or '')
    else:
      result = bench_train_step(a.method, a.model, a.image_size, a.num_classes, a.batch_size,
                                a.replay_batch_size, a.steps, a.dtype, a.num_tasks, compare=a.compare or '',
                                rounds=a.rounds, steps_per_call=a.steps_per_call, profile_dir=a.profile)
  except (ValueError, DataError) as e:  # a setting to change, not a bug: one line
    raise SystemExit(f'error: {e}') from None
  if jax.process_index() == 0:
    print(format_result(result), flush=True)
    if a.json:
      with open(a.json, 'w') as f:
        json.dump(result, f, indent=1)
  return result


if __name__ == '__main__':
  main(sys.argv[1:])
