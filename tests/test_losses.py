"""Losses against independent numpy computations on random logits."""
import jax.numpy as jnp
import numpy as np

from cil_jax.methods.losses import blockwise_kd, cross_entropy
from cil_jax.methods import ssil
from cil_jax.methods.api import Classes, LossInputs
from cil_jax.methods.shared import seen_cross_entropy
from cil_jax.input_pipeline.scenario import Tasks


def _inputs(z, zt, batch, classes, state=None, params=None, teacher_params=None):
  return LossInputs(out={'logits': jnp.asarray(z)}, teacher=None if zt is None else {'logits': jnp.asarray(zt)},
                    params=params or {}, teacher_params=teacher_params, batch=batch, classes=classes,
                    state=state or {})


def np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_kl_batchmean(p_logits, q_logits, T):
  """torch F.kl_div(log_softmax(q/T), softmax(p/T), reduction='batchmean') * T**2."""
  logp = np_log_softmax(p_logits / T)
  logq = np_log_softmax(q_logits / T)
  return (np.exp(logp) * (logp - logq)).sum() / len(p_logits) * T * T


def test_cross_entropy_over_seen_matches_numpy():
  rng = np.random.RandomState(0)
  z = rng.randn(6, 10).astype(np.float32) * 3
  y = rng.randint(0, 7, 6)
  mask = np.arange(10) < 7
  want = -np_log_softmax(z[:, :7])[np.arange(6), y]
  np.testing.assert_allclose(cross_entropy(jnp.asarray(z), jnp.asarray(y), jnp.asarray(mask)), want, rtol=1e-5)


def test_ssil_loss_matches_numpy_with_base_not_equal_step():
  # base 3, step 2, 9 classes: tasks [0,3) [3,5) [5,7) [7,9); current task 2 -> old [0,5), new [5,7)
  tasks = Tasks(9, base=3, step=2)
  classes = Classes.for_task(tasks, 2)
  rng = np.random.RandomState(1)
  B, R, T = 5, 3, 2.0
  z = rng.randn(B + R, 9).astype(np.float32) * 2
  zt = rng.randn(B + R, 9).astype(np.float32) * 2
  y = np.concatenate([rng.randint(5, 7, B), rng.randint(0, 5, R)])
  replay = np.arange(B + R) >= B
  batch = {'label': jnp.asarray(y), 'replay': jnp.asarray(replay)}
  loss, metrics = ssil.ssil_loss(_inputs(z, zt, batch, classes), T)

  # independent computation, written like the reference: slices, y - m for new samples
  m, e = 5, 7
  ce_new = -np_log_softmax(z[:B, m:e])[np.arange(B), y[:B] - m].sum()
  ce_old = -np_log_softmax(z[B:, :m])[np.arange(R), y[B:]].sum()
  ce = (ce_new + ce_old) / (B + R)
  kd = np_kl_batchmean(zt[:, 0:3], z[:, 0:3], T) + np_kl_batchmean(zt[:, 3:5], z[:, 3:5], T)
  np.testing.assert_allclose(float(metrics['ce']), ce, rtol=1e-5)
  np.testing.assert_allclose(float(metrics['kd']), kd, rtol=1e-5)
  np.testing.assert_allclose(float(loss), ce + kd, rtol=1e-5)
  # future-class logits (7, 8) must not matter
  z2 = z.copy()
  z2[:, 7:] += 100
  loss2, _ = ssil.ssil_loss(_inputs(z2, zt, batch, classes), T)
  np.testing.assert_allclose(float(loss2), float(loss), rtol=1e-6)


def test_blockwise_kd_is_zero_for_identical_logits_and_for_no_old_task():
  rng = np.random.RandomState(2)
  z = jnp.asarray(rng.randn(4, 6).astype(np.float32))
  blocks = jnp.asarray(np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]], bool))
  np.testing.assert_allclose(blockwise_kd(z, z, blocks, 2.0), 0, atol=1e-6)
  empty = jnp.zeros((3, 6), bool)
  assert np.all(np.asarray(blockwise_kd(z, z + 1.0, empty, 2.0)) == 0)


def test_ft_loss_is_ce_over_all_seen_classes():
  tasks = Tasks(10, 4, 3)
  classes = Classes.for_task(tasks, 1)   # seen [0, 7)
  rng = np.random.RandomState(3)
  z = rng.randn(8, 10).astype(np.float32)
  y = rng.randint(0, 7, 8)
  loss, _ = seen_cross_entropy(_inputs(z, None, {'label': jnp.asarray(y)}, classes))
  np.testing.assert_allclose(float(loss), -np_log_softmax(z[:, :7])[np.arange(8), y].mean(), rtol=1e-5)


def test_old_blocks_follow_true_task_boundaries():
  classes = Classes.for_task(Tasks(10, base=4, step=3), 2)
  blocks = np.asarray(classes.old_blocks())
  np.testing.assert_array_equal(blocks[0], np.arange(10) < 4)
  np.testing.assert_array_equal(blocks[1], (np.arange(10) >= 4) & (np.arange(10) < 7))
  assert not blocks[2:].any()
