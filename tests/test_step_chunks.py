"""K train steps per jitted call (lax.scan) compute what K single-step calls compute, and the
engine's chunking of an epoch is aligned so that a resumed run makes the same calls."""
import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.engine import parallel
from cil_jax.methods.api import Classes, Step
from cil_jax.methods.shared import seen_cross_entropy
from cil_jax.input_pipeline.scenario import Tasks
from cil_jax.engine.step import chunk_sharding, make_train_step
from cil_jax.engine.hooks import crossed as _crossed
from cil_jax.engine.train import _chunks
from helpers import fake_batch, train_setup


def test_scan_chunk_equals_single_steps():
  s = train_setup(Step(seen_cross_entropy))
  classes = Classes.for_task(Tasks(9, 3, 2), 2)
  batches = [fake_batch(seed) for seed in range(4)]
  lrs = np.array([0.1, 0.1, 0.05, 0.02], np.float32)      # a per-step lr (a warm-up, say)
  state, losses = jax.tree.map(jnp.copy, s.state), []
  for batch, lr in zip(batches, lrs):
    state, metrics = s.step(state, None, parallel.to_global(batch, s.sharded), classes, jnp.float32(lr), {})
    losses.append(float(metrics['loss']))
  chunked = make_train_step(s.model, Step(seen_cross_entropy), s.tx, s.normalize, s.replicated, s.sharded,
                            steps_per_call=4)
  stacked = parallel.to_global({k: np.stack([b[k] for b in batches]) for k in batches[0]},
                               chunk_sharding(s.sharded))
  state4, metrics4 = chunked(jax.tree.map(jnp.copy, s.state), None, stacked, classes, jnp.asarray(lrs), {})
  assert metrics4['loss'].shape == (4,)
  np.testing.assert_allclose(np.asarray(metrics4['loss']), losses, rtol=1e-6)
  assert losses[0] != losses[3]                            # the four steps did move the weights
  for a, b in zip(jax.tree.leaves(state4), jax.tree.leaves(state)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_chunks_are_aligned_to_the_epoch_start():
  def plan_of(start, steps, size):
    return [(k, n) for k, n, _ in _chunks(({'i': np.array([k])} for k in range(start, steps)), start, steps, size)]
  assert plan_of(0, 10, 4) == [(0, 4), (4, 4), (8, 1), (9, 1)]
  assert plan_of(5, 10, 4) == [(5, 1), (6, 1), (7, 1), (8, 1), (9, 1)]   # a resume inside a chunk
  assert plan_of(4, 10, 4) == [(4, 4), (8, 1), (9, 1)]                    # a resume at a boundary
  assert plan_of(0, 3, 1) == [(0, 1), (1, 1), (2, 1)]
  k, n, batch = next(_chunks(({'i': np.array([k, k])} for k in range(8)), 0, 8, 4))
  np.testing.assert_array_equal(batch['i'], [[0, 0], [1, 1], [2, 2], [3, 3]])   # stacked [n, ...]


def test_crossed_counts_multiples_inside_a_chunk():
  assert _crossed(4, 3, 5) and _crossed(4, 0, 4) and not _crossed(4, 4, 7) and not _crossed(0, 0, 9)
