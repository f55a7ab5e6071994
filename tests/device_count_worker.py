"""Runs a few SS-IL train steps (task 1: teacher, new + replay) on synthetic data with whatever
devices JAX sees, and writes the losses and final parameters to an .npz (see test_devices.py)."""
import sys

import jax
import jax.numpy as jnp
import numpy as np

from cil_jax import models
from cil_jax.engine import parallel
from cil_jax.config_base import base_config, set_method
from cil_jax.methods import ssil
from cil_jax.methods.api import Classes, Optimizer
from cil_jax.input_pipeline.scenario import Tasks
from cil_jax.engine.step import TrainState, make_optimizer, make_train_step, normalizer


def main(out_path):
  config = base_config()
  set_method(config, 'ssil')
  config.train.batch_size, config.train.replay_batch_size = 16, 8
  phase = ssil.make(config).phases(1)[0]
  model = models.create('small_convnet', 10)
  tx = make_optimizer(Optimizer(momentum=0.9, weight_decay=1e-4))
  replicated, sharded = parallel.shardings(parallel.make_mesh())
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
  params = {'model': variables['params'], 'method': {}}
  state = jax.device_put(TrainState(params, variables['batch_stats'], tx.init(params), ()), replicated)
  teacher = state.teacher_copy()
  step = make_train_step(model, phase.step, tx, normalizer((0.3,), (0.35,)), replicated, sharded)
  classes = Classes.for_task(Tasks(10, 2, 2), 1)
  rng = np.random.RandomState(0)
  losses = []
  for _ in range(4):
    batch = {'image': rng.randint(0, 255, (24, 28, 28, 1)).astype(np.uint8),
             'label': np.concatenate([rng.randint(2, 4, 16), rng.randint(0, 2, 8)]).astype(np.int32),
             'replay': np.arange(24) >= 16}
    state, metrics = step(state, teacher, parallel.to_global(batch, sharded), classes, jnp.float32(0.1), {})
    losses.append(float(metrics['loss']))
  leaves = [np.asarray(x) for x in jax.tree.leaves(state)]
  np.savez(out_path, losses=np.array(losses), devices=jax.device_count(), *leaves)


if __name__ == '__main__':
  main(sys.argv[1])
