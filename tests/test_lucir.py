"""LUCIR: every loss term and the imprinting against independent numpy computations, what a train
step freezes, the phase layout, and a tiny end-to-end run."""
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cil_jax import config_base
from cil_jax.engine import train
from cil_jax.methods import lucir
from cil_jax.methods.api import Classes, LossInputs, Optimizer
from cil_jax.input_pipeline.scenario import Tasks
from helpers import check_summary as _check, fake_batch, load_config as _config, train_setup

from test_losses import np_log_softmax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# base 3, step 2, 9 classes -> [0,3) [3,5) [5,7) [7,9); task 2: old [0,5), new [5,7), seen [0,7)
TASKS = Tasks(9, 3, 2)
C2 = Classes.for_task(TASKS, 2)
RNG = np.random.RandomState(0)
D = 6
F = RNG.randn(8, D).astype(np.float32)          # student features
G = RNG.randn(8, D).astype(np.float32)          # teacher features
W = RNG.randn(D, 9).astype(np.float32)          # head weight [D, C]
ETA = np.float32(1.7)
Y = np.array([0, 4, 5, 6, 2, 3, 1, 6])          # 6 old-class samples, 2 new


def np_normalize(x, axis=-1):
  return x / np.linalg.norm(x, axis=axis, keepdims=True)


def np_cos():
  return np_normalize(F.astype(np.float64)) @ np_normalize(W.astype(np.float64), axis=0)


def _x(labels=Y, classes=C2, teacher=True, eta=ETA, cos=None):
  cos = np_cos() if cos is None else cos
  out = {'logits': jnp.asarray(eta * cos, jnp.float32), 'cosine': jnp.asarray(cos, jnp.float32),
         'scale': jnp.asarray(eta), 'features': jnp.asarray(F)}
  return LossInputs(out=out, teacher={'features': jnp.asarray(G)} if teacher else None, params={},
                    teacher_params=None, batch={'label': jnp.asarray(labels)}, classes=classes, state={})


def np_margin_ranking(cos, labels, m, e, margin, k):
  """As the reference: old-class rows, gt repeated K times vs the top-K new-class cosines, then
  PyTorch MarginRankingLoss(margin) with target 1 (mean over the n_old·K pairs)."""
  rows = np.flatnonzero(labels < m)
  if len(rows) == 0:
    return 0.0
  x1, x2 = [], []
  for i in rows:
    top = np.sort(cos[i, m:e])[::-1][:k]
    x1 += [cos[i, labels[i]]] * len(top)
    x2 += list(top)
  x1, x2 = np.array(x1), np.array(x2)
  return np.maximum(0.0, -(x1 - x2) + margin).mean()


def test_loss_terms_match_numpy():
  loss, m = lucir.lucir_loss(_x(), 10.0, 0.5, 2)
  cos = np_cos()
  ce = -np_log_softmax(ETA * cos[:, :7])[np.arange(8), Y].mean()
  lf = (1 - (np_normalize(F.astype(np.float64)) * np_normalize(G.astype(np.float64))).sum(-1)).mean()
  lam = 10.0 * np.sqrt(5 / 2)
  mr = np_margin_ranking(cos, Y, 5, 7, 0.5, 2)
  assert mr > 0
  np.testing.assert_allclose([float(m['ce']), float(m['less_forget']), float(m['margin_ranking']),
                              float(m['lambda'])], [ce, lf, mr, lam], rtol=1e-5)
  np.testing.assert_allclose(float(loss), ce + lam * lf + mr, rtol=1e-5)


def test_margin_ranking_counts_only_old_samples_and_available_negatives():
  cos = np_cos()
  # K = 3 with only 2 new classes: every new class is a negative, mean over n_old·2 pairs
  got = float(lucir.margin_ranking(jnp.asarray(cos, jnp.float32), jnp.asarray(Y), C2.old, C2.new, 0.5, 3))
  np.testing.assert_allclose(got, np_margin_ranking(cos, Y, 5, 7, 0.5, 3), rtol=1e-5)
  # K = 1 and a large margin: every pair active
  got = float(lucir.margin_ranking(jnp.asarray(cos, jnp.float32), jnp.asarray(Y), C2.old, C2.new, 5.0, 1))
  np.testing.assert_allclose(got, np_margin_ranking(cos, Y, 5, 7, 5.0, 1), rtol=1e-5)
  # no old-class sample in the batch: 0
  only_new = np.array([5, 6, 5, 6, 5, 6, 5, 6])
  _, m = lucir.lucir_loss(_x(labels=only_new), 10.0, 0.5, 2)
  assert float(m['margin_ranking']) == 0.0


def test_lambda_with_base_not_equal_step():
  tasks = Tasks(11, 3, 2)
  cos = np.clip(RNG.randn(8, 11), -1, 1)
  for t, (old, seen) in {1: (3, 5), 2: (5, 7), 4: (9, 11)}.items():
    labels = np.arange(8) % seen
    _, m = lucir.lucir_loss(_x(labels=labels, classes=Classes.for_task(tasks, t), cos=cos), 10.0, 0.5, 2)
    np.testing.assert_allclose(float(m['lambda']), 10.0 * np.sqrt(old / (seen - old)), rtol=1e-6)
    np.testing.assert_allclose(float(m['margin_ranking']), np_margin_ranking(cos, labels, old, seen, 0.5, 2),
                               rtol=1e-5)


def test_margin_ranking_gradient_reaches_eta_through_detached_division():
  """logits / stop_gradient(η): the value is cos, d/dη = Σ_active (cos_neg − cos_y) / (η · pairs)."""
  cos = np_cos()

  def mr_of(eta):
    x = _x(eta=eta)
    x = x.replace(out=dict(x.out, logits=eta * jnp.asarray(cos, jnp.float32), scale=eta))
    return lucir.lucir_loss(x, 10.0, 0.5, 2)[1]['margin_ranking']

  g = float(jax.grad(mr_of)(jnp.float32(ETA)))
  rows = np.flatnonzero(Y < 5)
  total, pairs = 0.0, 0
  for i in rows:
    for neg in np.sort(cos[i, 5:7])[::-1][:2]:
      pairs += 1
      if 0.5 - cos[i, Y[i]] + neg > 0:
        total += (neg - cos[i, Y[i]]) / ETA
  assert g != 0
  np.testing.assert_allclose(g, total / pairs, rtol=1e-4)


def test_task0_loss_is_ce_over_the_seen_classes():
  c0 = Classes.for_task(TASKS, 0)
  labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
  loss, m = lucir.lucir_loss(_x(labels=labels, classes=c0, teacher=False), 10.0, 0.5, 2)
  want = -np_log_softmax(ETA * np_cos()[:, :3])[np.arange(8), labels].mean()
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  assert set(m) == {'ce'}


def test_imprint_matches_numpy():
  feats = RNG.randn(20, D).astype(np.float32)
  labels = np.array([5] * 9 + [6] * 11)
  got = lucir.imprint(W, feats, labels, 5, 7)
  norm = np.mean([np.sqrt((W[:, c].astype(np.float64) ** 2).sum()) for c in range(5)])
  for c in (5, 6):
    fn = feats[labels == c] / np.sqrt((feats[labels == c] ** 2).sum(1, keepdims=True))
    mu = fn.mean(0)
    np.testing.assert_allclose(got[:, c], mu / np.sqrt((mu ** 2).sum()) * norm, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got[:, c]), norm, rtol=1e-5)
  np.testing.assert_array_equal(np.delete(got, [5, 6], axis=1), np.delete(W, [5, 6], axis=1))


def test_before_task_imprints_the_new_classes_from_their_training_images():
  config = _base_config()
  method = lucir.make(config)
  train_labels = np.repeat(np.arange(9), 4)
  train_by_class = [np.flatnonzero(train_labels == c) for c in range(9)]
  feats_of = RNG.randn(36, D).astype(np.float32)     # a fixed feature per training image
  calls = []

  def outputs(idx, augment=False, stream=None, keys=None):
    calls.append((np.asarray(idx).copy(), augment))
    return {'features': feats_of[idx], 'logits': np.zeros((len(idx), 9), np.float32)}

  params = {'model': {'head': {'weight': jnp.asarray(W), 'eta': jnp.float32(1.3)}, 'conv': {'k': jnp.ones(3)}},
            'method': {}}
  ctx = types.SimpleNamespace(t=2, tasks=TASKS, state=types.SimpleNamespace(params=params), method_state={},
                              train_labels=train_labels, train_by_class=train_by_class, outputs=outputs,
                              new_indices=lambda: np.concatenate(train_by_class[5:7]))
  new_params, state = method.before_task(ctx)
  assert state == {} and len(calls) == 1 and calls[0][1] is False
  assert sorted(train_labels[calls[0][0]].tolist()) == [5] * 4 + [6] * 4
  want = lucir.imprint(W, feats_of[calls[0][0]], train_labels[calls[0][0]], 5, 7)
  np.testing.assert_allclose(np.asarray(new_params['model']['head']['weight']), want, rtol=1e-6)
  assert float(new_params['model']['head']['eta']) == np.float32(1.3)
  # task 0: nothing changes
  ctx.t = 0
  assert method.before_task(ctx)[0] is params


def test_task_data_adds_the_balanced_set_only_with_finetuning():
  memory = types.SimpleNamespace(size=6, indices=np.arange(100, 106),
                                 per_class=lambda: [np.arange(100, 103), np.arange(103, 105), np.arange(105, 107)])
  train_by_class = [np.arange(c * 10, c * 10 + 10) for c in range(9)]
  ctx = types.SimpleNamespace(t=1, tasks=TASKS, memory=memory, train_by_class=train_by_class, validation=None,
                              new_indices=lambda: np.concatenate(train_by_class[3:5]),
                              new_classes=lambda: train_by_class[3:5])
  plain = lucir.make(_base_config()).task_data(ctx)      # the default: new data + memory
  assert list(plain) == ['train'] and plain['train'][0].tolist() == list(range(30, 50))
  assert plain['train'][1].tolist() == list(range(100, 106))
  data = lucir.make(_base_config(class_balanced_finetuning=True)).task_data(ctx)
  new, old = data['balanced']
  assert new.tolist() == [30, 31, 40, 41] and old.tolist() == [100, 101, 103, 104, 105, 106]  # k = 2


def _base_config(**method_options):
  config = config_base.base_config()
  config_base.set_method(config, 'lucir', **method_options)
  config.model.head, config.model.last_relu = 'cosine', False
  config.scenario.base, config.scenario.step = 3, 2
  config.train.epochs, config.train.milestones = 40, (10, 20, 30)
  return config


def test_lucir_needs_the_cosine_head_without_last_relu_and_a_fresh_optimizer():
  """set_method sets them (lucir.REQUIRES); the config check refuses an override of any. Its main
  phase has its own optimizer, the run's SGD: fresh at the phase start, i.e. each task."""
  config_base.validate(_base_config())
  config = _base_config()
  config.model.head = 'linear'
  with pytest.raises(ValueError, match="model.head='cosine'"):
    config_base.validate(config)
  config = _base_config()
  config.model.last_relu = True
  with pytest.raises(ValueError, match='last_relu=False'):
    config_base.validate(config)
  config = _base_config()
  config.train.momentum, config.train.weight_decay, config.train.clip_norm = 0.5, 0.01, 3.0
  for t in (0, 1, 2):
    assert lucir.make(config).phases(t)[0].step.optimizer == Optimizer(momentum=0.5, weight_decay=0.01, clip_norm=3.0)


def _fake_params():
  return {'model': {'conv1': {'kernel': np.zeros((3, 3))}, 'head': {'weight': np.zeros((D, 9)), 'eta': np.zeros(())}},
          'method': {}}


def _columns(lo, hi):
  c = np.arange(9)
  return ((c >= lo) & (c < hi)).astype(np.float32)


def test_phase_layout_and_trainable_masks():
  config = _base_config()
  p0 = lucir.make(config).phases(0)
  assert [(p.name, p.step.teacher, p.data, p.schedule.epochs, p.schedule.lr0, p.schedule.milestones) for p in p0] == [
      ('base', None, 'train', 40, 0.1, (10, 20, 30))]
  for t, (lo, hi) in {1: (3, 5), 2: (5, 7), 3: (7, 9)}.items():
    phases = lucir.make(config).phases(t)
    assert [(p.name, p.step.teacher, p.data, p.step.bn_train, p.schedule.epochs, p.schedule.lr0, p.step.optimizer)
            for p in phases] == [
        ('train', 'task_start', 'train', True, 40, 0.1, Optimizer(momentum=0.9, weight_decay=1e-4))]  # lr not / (t + 1)
    mask = phases[0].step.trainable(_fake_params(), Classes.for_task(Tasks(9, 3, 2), t))
    np.testing.assert_array_equal(mask['model']['head']['weight'], _columns(lo, hi))
    assert mask['model']['head']['eta'] is True and mask['model']['conv1']['kernel'] is True
  # class-balanced fine-tuning: head weight columns of all seen classes, plain SGD lr 0.01, x0.1 at 10
  config = _base_config(class_balanced_finetuning=True)
  phases = lucir.make(config).phases(2)
  ft = phases[1]
  assert [p.name for p in phases] == ['train', 'balanced_ft']
  assert (ft.step.teacher, ft.data, ft.step.bn_train, ft.schedule.epochs, ft.schedule.lr0, ft.schedule.milestones,
          ft.schedule.gamma) == (
      None, 'balanced', True, 20, 0.01, (10,), 0.1)
  assert ft.step.optimizer == Optimizer(momentum=0.0, weight_decay=1e-4)
  mask = ft.step.trainable(_fake_params(), Classes.for_task(Tasks(9, 3, 2), 2))
  np.testing.assert_array_equal(mask['model']['head']['weight'], _columns(0, 7))
  assert mask['model']['head']['eta'] is False and mask['model']['conv1']['kernel'] is False
  assert len(lucir.make(config).phases(0)) == 1
  config.memory.size = 0
  assert len(lucir.make(config).phases(2)) == 1


def _step_setup(phase):
  s = train_setup(phase.step, last_relu=False, head='cosine')
  return s.state, s.step, fake_batch()


def test_train_step_freezes_old_columns_bit_identically():
  phase = lucir.make(_base_config()).phases(2)[0]
  state, step, batch = _step_setup(phase)
  before = jax.tree.map(np.asarray, state)
  teacher = state.teacher_copy()
  for _ in range(2):   # the second step has momentum from the first
    state, metrics = step(state, teacher, batch, C2, jnp.float32(0.1), {})
  assert float(metrics['margin_ranking']) >= 0 and float(metrics['less_forget']) > 0
  w0, w1 = before.params['model']['head']['weight'], np.asarray(state.params['model']['head']['weight'])
  np.testing.assert_array_equal(w1[:, :5], w0[:, :5])              # old: lr 0 and wd 0
  np.testing.assert_array_equal(w1[:, 7:], w0[:, 7:])              # future: untouched
  assert not np.allclose(w1[:, 5:7], w0[:, 5:7])                   # new columns train
  assert float(state.params['model']['head']['eta']) != float(before.params['model']['head']['eta'])
  kernel = np.asarray(state.params['model']['conv1']['kernel'])
  assert not np.allclose(kernel, before.params['model']['conv1']['kernel'])        # the backbone trains


def test_class_balanced_finetuning_step_moves_only_seen_columns():
  phase = lucir.make(_base_config(class_balanced_finetuning=True)).phases(2)[1]
  state, step, batch = _step_setup(phase)
  before = jax.tree.map(np.asarray, state)
  state, _ = step(state, None, batch, C2, jnp.float32(0.01), {})
  after = jax.tree.map(np.asarray, state.params['model'])
  w0, w1 = before.params['model']['head']['weight'], after['head']['weight']
  assert not np.allclose(w1[:, :5], w0[:, :5]) and not np.allclose(w1[:, 5:7], w0[:, 5:7])
  np.testing.assert_array_equal(w1[:, 7:], w0[:, 7:])
  assert after['head']['eta'] == before.params['model']['head']['eta']
  rest0 = {k: v for k, v in before.params['model'].items() if k != 'head'}
  jax.tree.map(np.testing.assert_array_equal, rest0, {k: v for k, v in after.items() if k != 'head'})
  # BatchNorm in train mode: its statistics keep updating
  assert not np.allclose(np.asarray(state.batch_stats['bn1']['mean']), before.batch_stats['bn1']['mean'])


# --- end to end ------------------------------------------------------------------------------------

def test_lucir_fmnist_smoke_end_to_end(idx_dir, tmp_path):
  """Base = step = 3: tasks of 3, 3, 3 and 1 classes; the last has fewer new classes than K = 2 (4
  tasks, not the default 5, to keep this file's time down: each task compiles its own step)."""
  c = _config('lucir_fmnist.py', 'smoke', **{'dataset.root': idx_dir, 'scenario.base': 3, 'scenario.step': 3})
  assert c.model.head == 'cosine' and not c.model.last_relu
  assert lucir.make(c).phases(1)[0].step.optimizer == Optimizer(momentum=0.9, weight_decay=1e-4)   # fresh each task
  _check(train.train_and_evaluate(c, str(tmp_path)), 4)
