"""A network that grows per task (api.Method.network / grow, as DER's backbone per task): the engine
builds task t's form at its start, carries the old weights over, runs the teacher with the network
from before the growth, and resumes a run stopped inside a grown task with the same results."""
import dataclasses
import json
import os
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cil_jax import methods
from cil_jax.engine import checkpoint as ckpt_lib
from cil_jax.engine import session, train
from cil_jax.engine.factory import carry_over
from cil_jax.methods import losses
from cil_jax.methods.api import Method, Step
from cil_jax.methods.shared import ce_phase
from cil_jax.models import resnet
from helpers import check_summary, load_config


class Branches(resnet.Model):
  """DER's network in miniature: `branches` small conv stacks side by side, their features concatenated
  under one head."""
  branches: int = 1

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = x.astype(self.dtype)
    outs = []
    for b in range(self.branches):
      y = nn.Conv(4, (3, 3), strides=(2, 2), name=f'branch{b}_conv')(x)
      outs.append(nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f'branch{b}_bn')(y)))
    y = jnp.concatenate(outs, axis=-1)
    return self.outputs(y, [y])


def make_grower(grown: list):
  """CE + KD from the teacher (the network before the task grew it), one more branch per task; the grow
  hook records what it was given and carries the weights over."""
  def make(config):
    def loss(x):
      ce = losses.cross_entropy(x.out['logits'], x.batch['label'], x.classes.seen).mean()
      if x.teacher is None:
        return ce, {'ce': ce}
      kd = losses.blockwise_kd(x.out['logits'], x.teacher['logits'], x.classes.old[None], 2.0).mean()
      return ce + kd, {'ce': ce, 'kd': kd}

    def phases(t):
      return [dataclasses.replace(ce_phase(config, t), step=Step(loss, teacher='task_start' if t else None))]

    def grow(ctx, old, new):
      variables = carry_over(old, new)
      grown.append((ctx.t, jax.device_get(old), jax.device_get(new), jax.device_get(variables)))
      return variables

    return Method('grower', phases, network=lambda t: {'branches': t + 1}, grow=grow)
  return make


@pytest.fixture
def grower(idx_dir, monkeypatch):
  grown = []
  monkeypatch.setitem(resnet.MODELS, 'small_convnet', Branches)   # the config's model name, grown
  monkeypatch.setattr(methods, 'get', lambda name: types.SimpleNamespace(make=make_grower(grown)))
  config = load_config('ft_fmnist.py', 'smoke', **{'dataset.root': idx_dir, 'scenario.base': 4,
                                                   'scenario.step': 3, 'train.epochs': 2})
  return config, grown


def _results(workdir):
  with open(os.path.join(workdir, 'results.json')) as f:
    r = json.load(f)
  r.pop('wall_time')   # the one field a stop and resume may change
  return r


def test_the_network_grows_at_each_task_start_and_keeps_what_it_had(grower, tmp_path):
  config, grown = grower
  check_summary(train.train_and_evaluate(config, str(tmp_path)), 3)
  assert [t for t, *_ in grown] == [1, 2]
  for t, old, new, variables in grown:
    assert {k for k in new['params'] if k.startswith('branch')} == {f'branch{b}_conv' for b in range(t + 1)} | {
        f'branch{b}_bn' for b in range(t + 1)}
    for b in range(t):   # the branches that were there keep their trained weights and statistics
      np.testing.assert_array_equal(variables['params'][f'branch{b}_conv']['kernel'],
                                    old['params'][f'branch{b}_conv']['kernel'])
      np.testing.assert_array_equal(variables['batch_stats'][f'branch{b}_bn']['mean'],
                                    old['batch_stats'][f'branch{b}_bn']['mean'])
    np.testing.assert_array_equal(variables['params'][f'branch{t}_conv']['kernel'],   # the new one is fresh
                                  new['params'][f'branch{t}_conv']['kernel'])
    assert not np.array_equal(old['params']['branch0_conv']['kernel'], new['params']['branch0_conv']['kernel'])
    # the head reads 4 more features: its shape changed, so it starts fresh (DER's grow widens it)
    assert variables['params']['head']['fc']['kernel'].shape[0] == 4 * (t + 1)
  meta = ckpt_lib.Checkpointer(os.path.join(str(tmp_path), 'checkpoints')).restore_meta(
      ckpt_lib.Checkpointer(os.path.join(str(tmp_path), 'checkpoints')).latest())
  assert meta['network'] == {'branches': 3}


def test_a_run_stopped_inside_a_grown_task_resumes_to_the_same_results(grower, tmp_path):
  config, _ = grower
  whole = str(tmp_path / 'whole')
  train.train_and_evaluate(config, whole)
  checkpoints = ckpt_lib.Checkpointer(os.path.join(whole, 'checkpoints'))
  total = checkpoints.restore_meta(checkpoints.latest())['global_step']
  checkpoints.close()
  stopped = str(tmp_path / 'stopped')
  config.debug.kill_at_step, config.debug.kill_signal = int(total * 0.8), 'TERM'   # inside the last task
  with pytest.raises(session.Stopped):
    train.train_and_evaluate(config, stopped)
  checkpoints = ckpt_lib.Checkpointer(os.path.join(stopped, 'checkpoints'))
  meta = checkpoints.restore_meta(checkpoints.latest())
  checkpoints.close()
  assert meta['cursor']['task'] == 2 and meta['cursor']['step'] > 0 and meta['network'] == {'branches': 3}
  assert meta['has_teacher'] and meta['teacher_network'] == {'branches': 2}
  config.debug.kill_at_step = -1
  train.train_and_evaluate(config, stopped)
  assert _results(stopped) == _results(whole)
