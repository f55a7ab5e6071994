"""Runs a small experiment whose method uses the engine's schedules and hooks (not a shipped method:
a probe of the engine), so tests can kill it anywhere and resume it.

  python tests/engine_worker.py <patience|warmup> <workdir> <idx_dir> [kill_at_step [checkpoint_every_steps]]

patience: FACIL's shape. 10 % of each class held out for the run (scenario.validation),
  the patience schedule (lr_patience 1, so decays, restores and an early stop happen within a few
  epochs), plain SGD with gradient clipping.
warmup: MGRB's shape. AdamW, a fresh xavier-normal head at every phase start (on_start, seeded by
  ctx.rng), a linear warm-up over the first epoch on the backbone only (PerGroup lr), class-balanced
  batches.
"""
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from cil_jax import methods   # noqa: E402
from cil_jax.engine import train
from cil_jax.methods.api import Method, Optimizer, Phase, Step  # noqa: E402
from cil_jax.methods.shared import seen_cross_entropy, with_head  # noqa: E402
from cil_jax.methods.schedules import Patience, PerGroup, StepDecay, WarmUp  # noqa: E402


def head_or_backbone(params):
  return {'model': {k: jax.tree.map(lambda _: 'head' if k == 'head' else 'backbone', v)
                    for k, v in params['model'].items()}, 'method': {}}


def fresh_head(ctx):
  """xavier-normal kernel over all classes, zero bias (MGRB's new Linear head each phase)."""
  fc = ctx.state.params['model']['head']['fc']
  d, c = fc['kernel'].shape
  kernel = ctx.rng('head_init').normal(0.0, np.sqrt(2.0 / (d + c)), (d, c)).astype(np.float32)
  return with_head(ctx.state.params, fc={'kernel': jnp.asarray(kernel), 'bias': jnp.zeros_like(fc['bias'])}), \
      ctx.method_state


def make_probe(kind):
  def make(config):
    batch = int(config.train.batch_size)

    if kind == 'patience':
      step = Step(seen_cross_entropy, optimizer=Optimizer(momentum=0.0, weight_decay=0.0, clip_norm=1.0))
      phases = lambda t: [Phase('train', step, Patience(lr0=0.5, epochs=8, lr_factor=3.0, lr_patience=1,  # noqa: E731
                                                        lr_min=0.02), stream='mixed', batch_size=batch,
                                validation='validation')]
      return Method('probe', phases)   # the config holds 10 % out (scenario.validation)
    step = Step(seen_cross_entropy, groups=head_or_backbone,
                optimizer=Optimizer(kind='adamw', weight_decay=0.05, clip_norm=10000.0))
    sched = PerGroup((('backbone', WarmUp(StepDecay(lr0=1e-3, epochs=3, milestones=(2,)), warmup_epochs=1)),
                      ('head', StepDecay(lr0=1e-3, epochs=3, milestones=(2,)))))
    phases = lambda t: [Phase('train', step, sched, stream='class_balanced', batch_size=batch,  # noqa: E731
                              on_start=fresh_head)]
    return Method('probe', phases)
  return make


def config_for(idx_dir, kill_at=-1, every_steps=2, validation=0.1):
  """FT's Fashion-MNIST smoke config in 2 tasks of 5 classes (FT's name is replaced by the probe)."""
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
  from helpers import load_config
  return load_config('ft_fmnist.py', 'smoke', **{'dataset.root': idx_dir, 'scenario.base': 5, 'scenario.step': 5,
                                                 'checkpoint.every_steps': every_steps, 'debug.kill_at_step': kill_at,
                                                 'scenario.validation': validation})


def main(kind, workdir, idx_dir, kill_at=-1, every_steps=2):
  methods.get = lambda name: types.SimpleNamespace(make=make_probe(kind))   # the probe instead of FT
  validation = 0.1 if kind == 'patience' else 0.0   # only the patience probe holds images out
  train.train_and_evaluate(config_for(idx_dir, int(kill_at), int(every_steps), validation), workdir)


if __name__ == '__main__':
  main(*sys.argv[1:])
