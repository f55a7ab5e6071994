"""Helpers shared by the tests: load a config file the way main.py does, check a results summary."""
import importlib.util
import os

import numpy as np

from cil_jax import config_base

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(path, arg='smoke', **overrides):
  """configs/<path> with get_config(arg), then dotted overrides ('dataset.root': ...), validated."""
  spec = importlib.util.spec_from_file_location('cfg', os.path.join(ROOT, 'configs', path))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config(arg)
  for key, value in overrides.items():
    node = c
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = value
  config_base.validate(c)
  return c


def check_summary(summary, tasks):
  """A finished run's summary: one row per task, accuracies in range, the average as defined."""
  assert summary['tasks_done'] == tasks
  assert len(summary['top1']) == tasks and all(len(r) == k + 1 for k, r in enumerate(summary['top1']))
  for v in summary['top1_all']:
    assert 0 <= v <= 100
  np.testing.assert_allclose(summary['average_incremental_top1'], np.mean(summary['top1_all']))


def train_setup(spec, num_classes=9, head='linear', last_relu=True, main_optimizer=None, method_params=None):
  """The model -> train state -> jitted step setup of a step spec (api.Step) on the small conv net
  (28x28x1 inputs), by the engine's factory: the step's own optimizer (fresh phase state) or the
  main one (default api.Optimizer()). Returns a namespace: model, variables, tx, state, step,
  replicated, sharded, normalize."""
  import types

  from cil_jax.engine import parallel
  from cil_jax.engine.factory import Factory, ModelSpec
  from cil_jax.engine.step import normalizer
  from cil_jax.methods.api import Optimizer
  replicated, sharded = parallel.shardings(parallel.make_mesh())
  f = Factory(ModelSpec('small_convnet', num_classes, last_relu=last_relu, head=head), main_optimizer or Optimizer(),
              normalizer((0.3,), (0.3,)), replicated, sharded)
  v, _ = f.init_variables(0, (28, 28, 1))
  state = f.with_phase_optimizer(f.train_state(v, method_params or {}), spec)
  return types.SimpleNamespace(model=f.model, variables=v, tx=f.optimizer(spec), state=state, step=f.train_step(spec),
                               replicated=replicated, sharded=sharded, normalize=f.normalize)


def fake_batch(seed=0):
  """8 random 28x28x1 images, labels 5 6 0 1 2 3 4 6, no replay slot."""
  return {'image': np.random.RandomState(seed).randint(0, 255, (8, 28, 28, 1)).astype(np.uint8),
          'label': np.array([5, 6, 0, 1, 2, 3, 4, 6], np.int32), 'replay': np.zeros(8, bool)}
