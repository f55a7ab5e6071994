"""iCaRL, IL2M, EEIL, BiC, joint: every loss, score and set function against independent numpy
computations, and what each extra stage trains, freezes and evaluates."""
import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.methods import bic, eeil, icarl, il2m, shared
from cil_jax.methods.api import Classes, LossInputs, Optimizer
from cil_jax.input_pipeline.scenario import Tasks
from helpers import fake_batch, train_setup

from test_losses import np_kl_batchmean, np_log_softmax


def _x(z, zt=None, labels=None, classes=None, params=None, teacher_params=None, state=None, features=None):
  out = {'logits': jnp.asarray(z)}
  if features is not None:
    out['features'] = jnp.asarray(features)
  return LossInputs(out=out, teacher=None if zt is None else {'logits': jnp.asarray(zt)}, params=params or {},
                    teacher_params=teacher_params, batch={'label': jnp.asarray(labels)}, classes=classes,
                    state=state or {})


# tasks: base 3, step 2, 9 classes -> [0,3) [3,5) [5,7) [7,9); task 2: old [0,5), new [5,7)
TASKS = Tasks(9, 3, 2)
C2 = Classes.for_task(TASKS, 2)
RNG = np.random.RandomState(0)
Z = RNG.randn(6, 9).astype(np.float32) * 2
ZT = RNG.randn(6, 9).astype(np.float32) * 2
Y = np.array([5, 6, 0, 4, 2, 6])


def test_icarl_ce_kd_loss():
  loss, m = shared.ce_kd_loss(_x(Z, ZT, Y, C2), 2.0)
  ce = -np_log_softmax(Z[:, :7])[np.arange(6), Y].mean()
  kd = np_kl_batchmean(ZT[:, 0:3], Z[:, 0:3], 2.0) + np_kl_batchmean(ZT[:, 3:5], Z[:, 3:5], 2.0)
  np.testing.assert_allclose([float(m['ce']), float(m['kd']), float(loss)], [ce, kd, ce + kd], rtol=1e-5)


def test_icarl_original_bce_loss():
  loss, _ = icarl.bce_loss(_x(Z, ZT, Y, C2))
  sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
  target = np.eye(9)[Y][:, :7]
  target[:, :5] = sig(ZT[:, :5])
  p = sig(Z[:, :7])
  want = -(target * np.log(p) + (1 - target) * np.log(1 - p)).mean()
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)


def test_nme_class_means_and_scores():
  feats = RNG.randn(10, 4).astype(np.float32)
  labels = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4, 4])
  means = shared.class_means(feats, labels, 9)
  fn = feats / np.linalg.norm(feats, axis=1, keepdims=True)
  for c in range(5):
    np.testing.assert_allclose(means[c], fn[labels == c].mean(0), rtol=1e-5)   # not re-normalised
  assert (means[5:] == 0).all()
  q = RNG.randn(3, 4).astype(np.float32)
  scores = np.asarray(shared.nme_scores({'features': jnp.asarray(q)}, None, {'class_means': jnp.asarray(means)},
                                       Classes.for_task(TASKS, 1)))
  qn = q / np.linalg.norm(q, axis=1, keepdims=True)
  want = -((qn[:, None] - means[None]) ** 2).sum(-1)
  np.testing.assert_allclose(scores[:, :5], want[:, :5], rtol=1e-4, atol=1e-5)
  assert (scores[:, 5:] < -1e29).all()


def test_il2m_statistics_and_rectification():
  # after task 1 of Tasks(9, 3, 2): seen [0, 5), new [3, 5)
  probs = np.array([[.7, .1, .1, .05, .05], [.2, .5, .1, .1, .1], [.1, .1, .1, .6, .1], [.1, .1, .1, .2, .5],
                    [.05, .05, .1, .4, .4]])
  labels = np.array([0, 1, 3, 4, 3])
  state = {'init_mean': np.full(9, 0.9), 'cur_mean': np.ones(9), 'conf': np.array([0.8, 1, 1, 1])}
  s = il2m.statistics(probs, labels, 1, 3, 5, state)
  np.testing.assert_allclose(s["cur_mean"][:5], [.7, .5, 1.0, (.6 + .4) / 2, .5])  # class 2: no sample, kept
  np.testing.assert_allclose(s['init_mean'][:5], [.9, .9, .9, .5, .5])             # frozen for old classes
  np.testing.assert_allclose(s['conf'][1], (.6 + .5 + .4) / 3)                     # max-prob of new samples
  # rectification: top-1 new -> old probabilities scaled; top-1 old -> unchanged
  c1 = Classes.for_task(TASKS, 1)
  logits = np.log(np.array([[.3, .1, .1, .4, .1] + [1e-9] * 4, [.5, .1, .1, .2, .1] + [1e-9] * 4]))
  init, cur = np.full(9, .8), np.full(9, .4)
  conf = np.array([.9, .6, 1, 1])
  got = np.asarray(il2m.rectified_probabilities(jnp.asarray(logits, jnp.float32), jnp.asarray(init),
                                                jnp.asarray(cur), jnp.asarray(conf), c1))
  p = np.exp(logits[:, :5]) / np.exp(logits[:, :5]).sum(1, keepdims=True)
  np.testing.assert_allclose(got[0, :3], p[0, :3] * (.8 / .4) * (.6 / .9), rtol=1e-5)
  np.testing.assert_allclose(got[0, 3:5], p[0, 3:5], rtol=1e-5)
  np.testing.assert_allclose(got[1, :5], p[1], rtol=1e-5)


def test_eeil_bft_loss_distills_the_new_block_only():
  loss, m = eeil.bft_loss(_x(Z, ZT, Y, C2), 2.0)
  ce = -np_log_softmax(Z[:, :7])[np.arange(6), Y].mean()
  kd = np_kl_batchmean(ZT[:, 5:7], Z[:, 5:7], 2.0)
  np.testing.assert_allclose([float(m['ce']), float(m['kd'])], [ce, kd], rtol=1e-5)


def test_eeil_balanced_set():
  memory = [np.arange(10, 16), np.arange(20, 24), np.arange(30, 35)]
  new = [np.arange(100, 150), np.arange(200, 230)]
  n, o = shared.balanced_set(memory, new)
  assert o.tolist() == [10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33]   # k = min = 4, first k
  assert n.tolist() == [100, 101, 102, 103, 200, 201, 202, 203]


def test_bic_loss_uses_the_bias_corrected_teacher_without_t_squared():
  bias = np.tile([[1.0, 0.0]], (4, 1)).astype(np.float32)
  bias[1] = [1.5, -0.3]                                      # the bias layer of task 1 = block [3, 5)
  params = {'method': {'bias': jnp.asarray(bias)}}
  loss, m = bic.bic_loss(_x(Z, ZT, Y, C2, teacher_params=params), 2.0)
  zt = ZT.copy()
  zt[:, 3:5] = 1.5 * zt[:, 3:5] - 0.3
  lam = 5 / 7
  kd = np_kl_batchmean(zt[:, :5], Z[:, :5], 2.0) / 4
  ce = -np_log_softmax(Z[:, :7])[np.arange(6), Y].mean()
  np.testing.assert_allclose(float(loss), lam * kd + (1 - lam) * ce, rtol=1e-5)


def test_bic_bias_loss_and_prediction_apply_the_newest_layer():
  bias = np.tile([[1.0, 0.0]], (4, 1)).astype(np.float32)
  bias[2] = [0.5, 1.0]
  params = {'method': {'bias': jnp.asarray(bias)}}
  z = Z.copy()
  z[:, 5:7] = 0.5 * z[:, 5:7] + 1.0
  loss, _ = bic.bias_loss(_x(Z, None, Y, C2, params=params))
  np.testing.assert_allclose(float(loss), -np_log_softmax(z[:, :7])[np.arange(6), Y].mean(), rtol=1e-5)
  scores = np.asarray(bic.predict({'logits': jnp.asarray(Z)}, params, {}, C2))
  np.testing.assert_allclose(scores[:, :7], z[:, :7], rtol=1e-6)


def test_bic_heldout_split():
  memory = [np.arange(c * 100, c * 100 + 20) for c in range(4)]     # 4 old classes x 20
  new = [np.arange(1000, 1300), np.arange(2000, 2300)]                # 2 new classes
  tr_new, tr_mem, val_new, val_mem = bic.heldout_split(memory, new, fraction=0.2)
  assert len(val_mem) == 8 and len(val_new) == 8                     # 20 % of the memory, half and half
  assert val_mem.tolist() == [18, 19, 118, 119, 218, 219, 318, 319]   # the last entries of each class
  assert val_new.tolist() == list(range(1296, 1300)) + list(range(2296, 2300))
  assert not set(val_new) & set(tr_new) and not set(val_mem) & set(tr_mem)
  assert len(tr_new) + len(val_new) == 600 and len(tr_mem) + len(val_mem) == 80


def test_bic_heldout_split_remainder_from_the_largest_classes():
  """Memory of 101 (34, 34, 33): size (101 // 10) * 2 = 20, half 10 = 3 per class + 1 remainder,
  taken from the largest class left (31, 31, 30 -> class 1, the higher label of the two)."""
  memory = [np.arange(0, 34), np.arange(100, 134), np.arange(200, 233)]
  new = [np.arange(1000, 1007), np.arange(2000, 2050)]                # uneven new classes
  tr_new, tr_mem, val_new, val_mem = bic.heldout_split(memory, new, fraction=0.2)
  assert val_mem.tolist() == [31, 32, 33, 130, 131, 132, 133, 230, 231, 232]
  assert val_new.tolist() == [1002, 1003, 1004, 1005, 1006] + list(range(2045, 2050))   # 10 // 2 = 5 each
  assert sorted(tr_mem.tolist() + val_mem.tolist()) == sorted(np.concatenate(memory).tolist())
  # The memory actually held sets the size, not M: 51 exemplars -> half 5 (5 // 2 = 2 per new class).
  _, _, val_new, val_mem = bic.heldout_split([m[:17] for m in memory], new, fraction=0.2)
  assert len(val_mem) == 5 and len(val_new) == 4


def test_bic_main_phases_leave_the_bias_layers_alone():
  """The main optimizer's weight decay must not shrink α before its bias stage (the reference gives
  the bias layers their own optimizer): every bias row stays (1, 0) through base and main steps."""
  from cil_jax.config_base import base_config, set_method
  from cil_jax.engine.step import make_train_step
  config = base_config()
  set_method(config, 'bic')
  method = bic.make(config)
  bias = jnp.tile(jnp.array([[1.0, 0.0]]), (4, 1))
  s = train_setup(method.phases(0)[0].step, main_optimizer=Optimizer(momentum=0.9, weight_decay=0.5),  # large
                  method_params={'bias': bias})                                                       # decay
  state, batch = s.state, fake_batch()
  before = jax.tree.map(np.array, state.params)                     # copies: the step donates state
  for phase in (method.phases(0)[0], method.phases(2)[0]):
    step = make_train_step(s.model, phase.step, s.tx, s.normalize, s.replicated, s.sharded)
    teacher = state.teacher_copy() if phase.step.teacher else None
    for _ in range(2):
      state, _ = step(state, teacher, batch, C2, jnp.float32(0.1), {})
  np.testing.assert_array_equal(np.asarray(state.params['method']['bias']), before['method']['bias'])
  moved = jax.tree.map(lambda a, b: not np.allclose(a, np.asarray(b)), before['model'], state.params['model'])
  assert all(jax.tree.leaves(moved))                                  # the network itself did train


def test_bias_correction_stage_trains_only_the_newest_bias_layer():
  """The BiC stage: backbone frozen (no change, BN statistics too), only bias row t moves."""
  from cil_jax.config_base import base_config, set_method
  config = base_config()
  set_method(config, 'bic')
  config.train.batch_size = 8
  phase = bic.make(config).phases(2)[1]
  assert phase.name == 'bias_correction' and not phase.step.bn_train and phase.data == 'heldout'
  assert phase.step.optimizer == Optimizer(momentum=0.0, weight_decay=0.0)
  s = train_setup(phase.step, method_params={'bias': jnp.tile(jnp.array([[1.0, 0.0]]), (4, 1))})
  state = s.state
  before = jax.tree.map(np.asarray, state)
  state, _ = s.step(state, None, fake_batch(), C2, jnp.float32(0.1), {})
  jax.tree.map(np.testing.assert_array_equal, before.params['model'], jax.tree.map(np.asarray, state.params['model']))
  jax.tree.map(np.testing.assert_array_equal, before.batch_stats, jax.tree.map(np.asarray, state.batch_stats))
  b = np.asarray(state.params['method']['bias'])
  assert not np.allclose(b[2], [1.0, 0.0])
  np.testing.assert_array_equal(np.delete(b, 2, axis=0), np.tile([[1.0, 0.0]], (3, 1)))


def test_stage_layout_of_each_method():
  from cil_jax.config_base import base_config, set_method
  from cil_jax import methods
  config = base_config()
  config.train.epochs, config.train.milestones = 40, (10, 20, 30)
  layouts = {
        'ft': [('train', None, 'train', True, 40, 0.05)],
        'il2m': [('train', None, 'train', True, 40, 0.05)],
        'joint': [('train', None, 'train', True, 40, 0.1)],
        'ssil': [('train', 'task_start', 'train', True, 40, 0.05)],
        'icarl': [('train', 'task_start', 'train', True, 40, 0.1)],
        'eeil': [('train', 'task_start', 'train', True, 40, 0.1),
                 ('balanced_ft', 'phase_start', 'balanced', True, 30, 0.01)],
        'bic': [('train', 'task_start', 'train', True, 40, 0.1),
                ('bias_correction', None, 'heldout', False, 80, 0.001)],
  }
  for name, want in layouts.items():
    set_method(config, name)
    phases = methods.get(name).make(config).phases(1)
    got = [(p.name, p.step.teacher, p.data, p.step.bn_train, p.schedule.epochs, round(p.schedule.lr0, 6))
           for p in phases]
    assert got == want, name
  set_method(config, 'bic')
  assert methods.get('bic').make(config).phases(1)[1].schedule.milestones == (21, 41, 61)
