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
