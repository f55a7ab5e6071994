"""The PyTorch peer of the benchmark (cil_jax/tools/torch_reference.py) computes the same step: its losses
equal this project's on the same logits, its models have the same parameters. Skipped where torch
is not installed (it is an optional benchmark dependency: the package's bench extra).

torch crashes in a process where TensorFlow is loaded, which other test files do in the same pytest
worker: each test runs its `_check_*` function in a fresh Python process (TensorFlow-free)."""
import importlib.util
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cil_jax import models
from cil_jax.methods.api import Classes, LossInputs
from cil_jax.methods.shared import ce_kd_loss
from cil_jax.methods.ssil import ssil_loss
from cil_jax.input_pipeline.scenario import Tasks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(importlib.util.find_spec('torch') is None,
                                reason='torch is not installed (the bench extra)')

TASKS = Tasks(12, 4, 4)    # task 2 (t = 2): old [0, 8) in two blocks, new [8, 12)


def _torch():
  import torch
  from cil_jax.tools import torch_reference
  return torch, torch_reference


def _logits(batch, seed):
  rng = np.random.RandomState(seed)
  return rng.normal(0, 3, (batch, 12)).astype(np.float32), rng.normal(0, 3, (batch, 12)).astype(np.float32)


def _inputs(z, zt, labels, replay):
  return LossInputs(out={'logits': jnp.asarray(z)}, teacher={'logits': jnp.asarray(zt)}, params={},
                    teacher_params={}, batch={'label': jnp.asarray(labels), 'replay': jnp.asarray(replay)},
                    classes=Classes.for_task(TASKS, 2), state={})


def _check_ssil_loss_equals_this_projects():
  torch, tr = _torch()
  z, zt = _logits(10, 0)
  labels = np.array([8, 9, 11, 10, 8, 9, 0, 5, 7, 3])     # 6 new rows, then 4 exemplars
  replay = np.arange(10) >= 6
  ours = float(ssil_loss(_inputs(z, zt, labels, replay), 2.0)[0])
  theirs = tr.ssil_loss(torch.from_numpy(z), torch.from_numpy(zt), torch.from_numpy(labels), 6,
                        [(0, 4), (4, 8)], (8, 12)).item()
  np.testing.assert_allclose(theirs, ours, rtol=1e-5)


def _check_icarl_loss_equals_this_projects():
  torch, tr = _torch()
  z, zt = _logits(8, 1)
  labels = np.array([8, 0, 11, 4, 9, 7, 10, 2])
  ours = float(ce_kd_loss(_inputs(z, zt, labels, labels < 8), 2.0)[0])
  theirs = tr.icarl_loss(torch.from_numpy(z), torch.from_numpy(zt), torch.from_numpy(labels), [(0, 4), (4, 8)],
                         12).item()
  np.testing.assert_allclose(theirs, ours, rtol=1e-5)


def _check_models_have_the_same_parameters():
  for name, size, channels in (('small_convnet', 28, 1), ('resnet32_cifar', 32, 3), ('resnet18', 64, 3)):
    _same_parameters(name, size, channels)


def _same_parameters(name, size, channels):
  torch, tr = _torch()
  model = models.create(name, 100)
  v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, channels)), train=False))
  ours = sorted(x.size for x in jax.tree.leaves(v['params']))
  peer = tr.make_model(name, 100, channels)
  assert sorted(p.numel() for p in peer.parameters()) == ours
  out = peer(torch.zeros(2, channels, size, size))
  assert tuple(out.shape) == (2, 100)


def _check_torch_step_trains():
  torch, tr = _torch()
  step = tr.TorchStep('ssil', 'small_convnet', 12, [(0, 4), (4, 8), (8, 12)], 6, channels=1)
  rng = np.random.RandomState(0)
  images, labels = step.to_device(rng.randint(0, 256, (10, 28, 28, 1), dtype=np.uint8),
                                  np.array([8, 9, 11, 10, 8, 9, 0, 5, 7, 3]))
  first = step.run(images, labels, 1)[1]
  seconds, last = step.run(images, labels, 20)
  assert seconds > 0 and last < first     # the same batch, 20 SGD steps: the loss falls
  with pytest.raises(ValueError, match='no PyTorch peer for method'):
    tr.TorchStep('podnet', 'small_convnet', 12, [(0, 4)], 6)


def _in_fresh_process(check: str):
  code = f'import sys; sys.path.insert(0, "tests"); import test_torch_reference as t; t.{check}()'
  done = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize('check', ['_check_ssil_loss_equals_this_projects', '_check_icarl_loss_equals_this_projects',
                                   '_check_models_have_the_same_parameters', '_check_torch_step_trains'])
def test_torch_reference(check):
  _in_fresh_process(check)
