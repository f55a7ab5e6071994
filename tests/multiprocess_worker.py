"""One of the processes of tests/test_multiprocess.py's slice test (python -m cil_jax launch runs it):
each process feeds its slice of every global batch of a plan, by each way the engine loads batches
(device-resident slots, numpy-gathered training and evaluation batches); the global arrays made
from the slices, gathered back, must be the plan's batches: every image once, in order.
Prints 'ok <batches checked>' on process 0."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update('jax_cpu_collectives_implementation', 'gloo')
env = os.environ
jax.distributed.initialize(env['CIL_JAX_COORDINATOR'], int(env['CIL_JAX_NUM_PROCESSES']), int(env['CIL_JAX_PROCESS_ID']))

from jax.experimental import multihost_utils  # noqa: E402

from cil_jax.engine import parallel   # noqa: E402
from cil_jax.input_pipeline.device_data import DeviceData  # noqa: E402
from cil_jax.input_pipeline import streams  # noqa: E402
from cil_jax.input_pipeline.base import Split  # noqa: E402

pi, pc = jax.process_index(), jax.process_count()
assert pc == 2 and jax.device_count() == 4, (pc, jax.device_count())
_, sharded = parallel.shardings(parallel.make_mesh())
n = 200
images = (np.arange(n) % 256).astype(np.uint8).reshape(n, 1, 1, 1) * np.ones((1, 2, 2, 1), np.uint8)
split = Split(labels=np.arange(n), images=images)
rng = np.random.RandomState(0)
plan = streams.Plan(rng.permutation(n)[:192].reshape(6, 32), rng.rand(6, 32) < 0.25, seed=7)


def gathered(local: dict) -> dict:
  """The global arrays made from every process's slice, back on every host."""
  return {k: np.asarray(multihost_utils.process_allgather(v, tiled=True))
          for k, v in parallel.to_global(local, sharded).items()}


checked = 0
for k, slots in enumerate(DeviceData.slots(plan, 0, pi, pc)):
  g = gathered(slots)
  np.testing.assert_array_equal(g['index'], plan.indices[k])
  np.testing.assert_array_equal(g['replay'], plan.replay[k])
  np.testing.assert_array_equal(g['position'], np.arange(k * 32, (k + 1) * 32))
  checked += 1
loader = streams.ImageLoader(split, np.arange(n), 'none', 2, pi, pc)
for k, b in enumerate(loader.train(plan).as_numpy_iterator()):
  g = gathered(b)
  np.testing.assert_array_equal(g['label'], plan.indices[k])
  np.testing.assert_array_equal(g['image'][:, 0, 0, 0], plan.indices[k] % 256)
  checked += 1
eval_idx, valid = streams.eval_plan(np.arange(n), 64)   # 200 = 3 batches of 64 and one padded
for k, b in enumerate(loader.eval(eval_idx, valid).as_numpy_iterator()):
  g = gathered(b)
  np.testing.assert_array_equal(g['label'], eval_idx[k])
  np.testing.assert_array_equal(g['valid'], valid[k])
  checked += 1
seen = np.concatenate([eval_idx[k][valid[k]] for k in range(len(eval_idx))])
np.testing.assert_array_equal(np.sort(seen), np.arange(n))   # the evaluation sees every image once
# 64 steps with a cross-process sum, dispatched with no wait but parallel.Throttle's (evaluation's
# pattern): without it, 50 steps in flight deadlock the devices' collectives
step = jax.jit(lambda total, x: total + x.sum(), out_shardings=parallel.shardings(parallel.make_mesh())[0])
total, throttle = jax.numpy.zeros((), jax.numpy.int32), parallel.Throttle()
for k in range(64):
  total = throttle(step(total, parallel.to_global({'x': np.full(16, k, np.int32)}, sharded)['x']))
assert int(total) == 32 * sum(range(64)), int(total)
checked += 1
if pi == 0:
  print('ok', checked, flush=True)
