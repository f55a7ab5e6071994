"""MGRB (methods/mgrb.py) against independent computations: the class-balanced weights, the KD and
L_MG terms (two-level and WordNet targets), α per phase, the per-class memory slices, the visual
hierarchy, the head init and the schedules; its configs against the README commands; one tiny run per
hierarchy kind, and a run killed in stage 1's warm-up and in stage 2 resuming bit for bit."""
import json
import math
import os
import signal
import types

import jax.numpy as jnp
import numpy as np
import pytest

from cil_jax.input_pipeline import scenario, wordnet
from cil_jax.methods import api, mgrb
from helpers import check_summary, load_config

WORDNET = os.path.exists('/usr/share/wordnet/data.noun')


def _log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _classes(base, step, t, num_classes):
  return api.Classes.for_task(scenario.Tasks(num_classes, base, step), t)


# --- weights and losses ------------------------------------------------------------------------

def test_class_balanced_weights_are_the_effective_number_formula():
  # CIFAR-100, phase 2 of 10/10: 20 old classes with 18 exemplars, 10 new with the nominal 500
  w = mgrb.class_balanced_weights(100, old=20, seen=30, n_old=18, n_new=500)
  eta = 0.99
  assert w[0] == pytest.approx(0.01 / (1 - eta ** 18)) and w[0] == pytest.approx(0.060428, rel=1e-4)
  assert w[25] == pytest.approx(0.01 / (1 - eta ** 500)) and w[25] == pytest.approx(0.010066, rel=1e-4)
  assert np.all(w[:20] == w[0]) and np.all(w[20:30] == w[25]) and np.all(w[30:] == 0)
  # CIFAR-10's 180 / 5000 (η = 0.9)
  w = mgrb.class_balanced_weights(10, 5, 6, 180, 5000)
  assert w[0] == pytest.approx(0.1 / (1 - 0.9 ** 180)) and w[5] == pytest.approx(0.1)


def test_stage1_loss_is_dscale_alpha_kd_plus_balanced_ce_plus_mg():
  """Phase 2 of 2 base + 1 per phase over 5 classes: α = 3/4 ... here task 2 -> old 3, seen 4."""
  rng = np.random.RandomState(0)
  b, c = 6, 5
  classes = _classes(2, 1, 2, c)
  old, seen = 3, 4
  z, zt = rng.randn(b, c) * 2, rng.randn(b, c) * 2
  y = np.array([0, 1, 2, 3, 3, 1])
  w = mgrb.class_balanced_weights(c, old, seen, 18, 500)
  s = np.zeros((c, c))
  s[:seen, :seen] = mgrb.two_level_logits(np.array([0, 0, 1, 1]), 20.0)
  x = api.LossInputs(out={'logits': jnp.asarray(z)}, teacher={'logits': jnp.asarray(zt)}, params={},
                     teacher_params=None, batch={'label': jnp.asarray(y)}, classes=classes,
                     state={'cb_weights': jnp.asarray(w), 'mg_logits': jnp.asarray(s)})
  T, dscale, scale = 2.0, 0.1, 0.5
  for cb, reduction in ((True, 'sum'), (True, 'mean'), (False, 'sum')):
    loss, m = mgrb.stage1_loss(x, temperature=T, dscale=dscale, mg_scale=scale, cb_loss=cb, reduction=reduction)
    # independent: numpy, the reference's formulas (etrain.py, cal_RB.py, cal_MG.py)
    alpha = old / seen
    pt = np.exp(_log_softmax(zt[:, :old] / T))
    kd = -np.mean(np.sum(pt * _log_softmax(z[:, :old] / T), 1)) * T * T
    ce = -_log_softmax(z[:, :seen])[np.arange(b), y]
    cls = (np.sum(w[y] * ce) if reduction == 'sum' else np.mean(w[y] * ce)) if cb else ce.mean()
    q = np.exp(_log_softmax(s[y][:, :seen]))
    mg = np.sum(q * (np.log(q) - _log_softmax(z[:, :seen]))) / b
    want = dscale * alpha * kd + (1 - alpha) * cls + scale * mg
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose([float(m['kd']), float(m['cls']), float(m['mg'])], [kd, cls, mg], rtol=1e-5)
  loss2, m2 = mgrb.stage2_loss(x, mg_scale=scale)
  np.testing.assert_allclose(float(loss2), (1 - alpha) * ce.mean() + scale * mg, rtol=1e-5)
  loss0, m0 = mgrb.stage1_loss(x, temperature=T, dscale=dscale, mg_scale=0.0, cb_loss=False, reduction='sum')
  assert 'mg' not in m0 and float(loss0) == pytest.approx(dscale * alpha * kd + (1 - alpha) * ce.mean(), rel=1e-5)


def test_alpha_is_old_over_seen_in_every_phase():
  """The reference's lamdalst: (n + m·i) / (n + m·(i + 1)) for phase i + 1."""
  n, m, c = 10, 10, 100
  z = jnp.zeros((2, c))
  for t in range(1, 10):
    classes = _classes(n, m, t, c)
    x = api.LossInputs(out={'logits': z}, teacher=None, params={}, teacher_params=None,
                       batch={'label': jnp.array([0, 1])}, classes=classes, state={})
    loss, metrics = mgrb.stage2_loss(x, mg_scale=0.0)
    alpha = (n + m * (t - 1)) / (n + m * t)
    np.testing.assert_allclose(float(loss), (1 - alpha) * float(metrics['ce']), rtol=1e-6)


def test_two_level_targets_match_the_reference_loop():
  coarse = np.array([0, 1, 0, 2, 1])
  s = mgrb.two_level_logits(coarse, beta=20.0)
  for y in range(5):   # cal_MG.py: 0 on the label, −β/2 in its group, −β elsewhere
    want = [0 if j == y else (-10.0 if coarse[j] == coarse[y] else -20.0) for j in range(5)]
    assert s[y].tolist() == want


def test_wordnet_targets_on_a_hand_built_tree():
  """root -> {animal -> {dog -> {dalmatian}, fish}, tool}: depths differ, as WordNet's."""
  paths = [('r', 'animal', 'dog', 'dalmatian'), ('r', 'animal', 'fish'), ('r', 'tool')]
  d = wordnet.distance_matrix(paths)
  assert d.tolist() == [[0, 2, 3], [2, 0, 2], [3, 2, 0]]
  height = wordnet.tree_height(paths)
  assert height == 3
  s = mgrb.tree_logits(d, beta=30.0, height=height)
  np.testing.assert_allclose(s, -30.0 * np.array([[0, 2, 3], [2, 0, 2], [3, 2, 0]]) / 3)
  # a two-level tree gives the two-level targets
  two = [('r', 'a', 'x'), ('r', 'a', 'y'), ('r', 'b', 'z')]
  np.testing.assert_allclose(mgrb.tree_logits(wordnet.distance_matrix(two), 20.0, wordnet.tree_height(two)),
                             mgrb.two_level_logits(np.array([0, 0, 1]), 20.0))


@pytest.mark.skipif(not WORDNET, reason='WordNet 3.0 (Debian package wordnet-base) is not installed')
def test_wordnet_targets_on_real_imagenet_ids():
  """tench / goldfish share 'cyprinid' (their parent); dalmatian is 8 edges below the fishes' and its
  common ancestor 'vertebrate'; electric guitar meets them only at 'whole'."""
  ids = ['n01440764', 'n01443537', 'n02110341', 'n03272010']
  paths = [wordnet.hypernym_path(w) for w in ids]
  d = wordnet.distance_matrix(paths)
  assert d[0, 1] == 1 and d[0, 2] == 8 and d[0, 3] == 13
  assert wordnet.tree_height(paths) == 13     # from 'whole' down to the tench / goldfish
  s = mgrb.tree_logits(d, 50.0, 13)
  assert s[0, 1] == pytest.approx(-50 / 13) and s[0, 3] == pytest.approx(-50.0)


# --- protocol ------------------------------------------------------------------------------------

def test_class_order_seed_1993_is_mgrbs():
  m = scenario.label_map(10, 'facil', 1993)
  assert np.argsort(m).tolist() == [4, 2, 7, 6, 0, 3, 5, 8, 9, 1]   # dealcifar10.py's order


def _ctx(t, memory, train_by_class, tasks):
  return types.SimpleNamespace(t=t, memory=memory, tasks=tasks,
                               new_classes=lambda: [train_by_class[k] for k in range(tasks.start(t), tasks.end(t))])


def test_per_class_memory_and_mgrbs_slices():
  """20 per class: images [0:2] balanced, [2:20] exemplars, [2:] the training data while new."""
  tasks = scenario.Tasks(4, 2, 1)
  train_by_class = [np.arange(100 * k, 100 * k + 50) for k in range(4)]
  mem = scenario.Memory.empty().update([train_by_class[0], train_by_class[1]], 20, 4, 'per_class')
  assert mem.counts.tolist() == [20, 20] and mem.indices[:20].tolist() == list(range(20))
  data, balanced = mgrb.split_memory(_ctx(1, mem, train_by_class, tasks), 2)
  new, old = data['train']
  assert new.tolist() == list(range(202, 250))
  assert old.tolist() == list(range(2, 20)) + list(range(102, 120))
  assert data['balanced'][0].tolist() == [200, 201] and data['balanced'][1].tolist() == [0, 1, 100, 101]
  assert [b.tolist() for b in balanced] == [[0, 1], [100, 101], [200, 201]]
  mem = mem.update([train_by_class[2]], 20, 4, 'per_class')      # never trimmed: 20 more
  assert mem.counts.tolist() == [20, 20, 20]
  data0, _ = mgrb.split_memory(_ctx(0, scenario.Memory.empty(), train_by_class, tasks), 2)
  assert data0['train'][0].tolist() == list(range(2, 50)) + list(range(102, 150)) and 'balanced' not in data0


def test_visual_hierarchy_matches_lloyds_algorithm():
  """Two well separated groups of class means: KMeans must find them (checked against a plain numpy
  Lloyd iteration from the same partition), whatever the features' scale."""
  rng = np.random.RandomState(3)
  centres = np.array([[0.0] * 8, [10.0] * 8])
  truth = np.array([0, 1, 1, 0, 1, 0])
  feats = [centres[g] + rng.randn(2, 8) * 0.3 for g in truth]
  groups = mgrb.visual_groups(feats, clusters=2)
  means = np.stack([f.mean(0) for f in feats])
  labels = (np.linalg.norm(means - means[0], axis=1) > 5).astype(int)   # seeded by class 0
  for _ in range(5):
    mu = np.stack([means[labels == k].mean(0) for k in range(2)])
    labels = np.argmin(((means[:, None] - mu[None]) ** 2).sum(-1), 1)
  same = groups[:, None] == groups[None]
  assert (same == (labels[:, None] == labels[None])).all() and (same == (truth[:, None] == truth[None])).all()
  assert len(set(mgrb.visual_groups(feats, clusters=50))) <= 6      # K is capped by the classes
  # unstructured means: the result must be a fixed point of Lloyd's algorithm (every class mean
  # nearest to its own group's centroid), and the same under a uniform scaling of the features
  feats = [rng.randn(3, 5) for _ in range(12)]
  groups = mgrb.visual_groups(feats, clusters=3)
  means = np.stack([f.mean(0) for f in feats])
  mu = np.stack([means[groups == k].mean(0) for k in range(3)])
  assert np.array_equal(np.argmin(((means[:, None] - mu[None]) ** 2).sum(-1), 1), groups)
  assert sorted(set(groups.tolist())) == [0, 1, 2]
  assert np.array_equal(mgrb.visual_groups([f * 3 for f in feats], 3), groups)


def test_new_head_is_xavier_normal_with_zero_bias():
  d, c, seen = 512, 100, 20
  params = {'model': {'head': {'fc': {'kernel': jnp.ones((d, c)), 'bias': jnp.ones((c,))}}}, 'method': {}}
  out = mgrb.xavier_normal_head(params, np.random.default_rng(0), seen)
  k = np.asarray(out['model']['head']['fc']['kernel'])
  assert np.all(np.asarray(out['model']['head']['fc']['bias']) == 0)
  assert k.std() == pytest.approx(math.sqrt(2 / (d + seen)), rel=0.02) and abs(k.mean()) < 0.002


def test_balanced_batch_keeps_the_reference_step_count():
  for n, want in ((40, 40), (128, 128), (140, 70), (200, 100), (257, 85), (10, 10)):
    b = mgrb.balanced_batch(n, 128)
    assert b == want and n // b == math.ceil(n / 128)


def _fmnist_ctx(t, config_arg='ont', wnids=None, outputs=None, **overrides):
  """A TaskContext of the Fashion-MNIST config (5 base classes + 1 per phase, 200 per class, 20 of
  them balanced) for task t, with made-up training indices: class k owns 1000k .. 1000k + 299."""
  from cil_jax.input_pipeline.base import ClassInfo
  c = load_config('mgrb_fmnist.py', config_arg, **overrides)
  method = mgrb.make(c)
  tasks = scenario.Tasks(10, 5, 1)
  label_map = scenario.label_map(10, 'facil', 1993)
  train_by_class = [np.arange(1000 * k, 1000 * k + 300 - k) for k in range(10)]   # class 0 is the largest
  mem = scenario.Memory.empty()
  for s in range(t):
    mem = mem.update([train_by_class[k] for k in range(tasks.start(s), tasks.end(s))], 200, 10, 'per_class')
  info = ClassInfo(original=np.argsort(label_map), names=('',) * 10, wnids=wnids, coarse=None, coarse_names=None)
  params = {'model': {'conv1': {'kernel': jnp.ones((3, 3))},
                      'head': {'fc': {'kernel': jnp.ones((64, 10)), 'bias': jnp.ones((10,))}}}, 'method': {}}
  ctx = api.TaskContext(t=t, tasks=tasks, config=c, memory=mem, train_by_class=train_by_class,
                        train_labels=np.zeros(0, np.int64), label_map=label_map, class_info=info, validation=None,
                        state=types.SimpleNamespace(params=params),
                        method_state={'cb_weights': jnp.zeros(10), 'mg_logits': jnp.zeros((10, 10))},
                        _outputs=outputs)
  return method, ctx, c


def test_before_task_sets_the_head_the_weights_and_the_dataset_hierarchy():
  method, ctx, c = _fmnist_ctx(2)
  params, state = method.before_task(ctx)
  assert np.all(np.asarray(params['model']['head']['fc']['bias']) == 0)
  assert np.all(np.asarray(params['model']['conv1']['kernel']) == 1)          # the backbone is kept
  assert np.asarray(params['model']['head']['fc']['kernel']).std() == pytest.approx(math.sqrt(2 / (64 + 7)), rel=0.1)
  # 6 old classes with 180 exemplars, 1 new one with the largest class's 300 images (η = 0.9)
  w = np.asarray(state['cb_weights'])
  np.testing.assert_allclose(w[:6], 0.1 / (1 - 0.9 ** 180), rtol=1e-6)
  np.testing.assert_allclose(w[6], 0.1 / (1 - 0.9 ** 300), rtol=1e-6)
  assert np.all(w[7:] == 0)
  # the config's groups are by original class (tops 0, footwear 1, rest 2); order 4,2,7,6,0,3,5,...
  coarse = np.array([0, 0, 1, 0, 0, 2, 1])     # coat pullover sneaker shirt T-shirt dress sandal
  s = np.asarray(state['mg_logits'])
  np.testing.assert_allclose(s[:7, :7], mgrb.two_level_logits(coarse, 20.0))
  assert np.all(s[7:] == 0) and np.all(s[:, 7:] == 0)
  _, state0 = method.before_task(_fmnist_ctx(0)[1])
  assert np.all(np.asarray(state0['cb_weights']) == 0)     # phase 0: plain CE, no hierarchy


def test_before_task_builds_the_visual_hierarchy_from_the_balanced_set():
  asked = []

  def outputs(idx, augment, seed, keys):
    asked.append((idx.copy(), augment))
    group = np.isin(idx // 1000, [0, 2, 5]).astype(np.float64)     # incremental classes 0, 2, 5 together
    return {'features': np.stack([group * 10 + (idx % 7) * 0.01, np.ones(len(idx))], 1)}
  method, ctx, _ = _fmnist_ctx(2, 'vis', outputs=outputs)
  _, state = method.before_task(ctx)
  (idx, augment), = asked
  assert not augment                                      # the test transform, as the reference's loader
  want = np.concatenate([np.arange(1000 * k, 1000 * k + 20) for k in range(7)])
  assert np.array_equal(idx, want)                        # [0:20] of every seen class, in label order
  coarse = np.array([1, 0, 1, 0, 0, 1, 0])
  np.testing.assert_allclose(np.asarray(state['mg_logits'])[:7, :7], mgrb.two_level_logits(coarse, 20.0))


@pytest.mark.skipif(not WORDNET, reason='WordNet 3.0 (Debian package wordnet-base) is not installed')
def test_before_task_builds_the_wordnet_targets_of_the_seen_classes():
  ids = ('n01440764', 'n01443537', 'n02110341', 'n03272010', 'n02084071', 'n01530575', 'n03063599',
         'n04254680', 'n02123045', 'n07747607')
  method, ctx, _ = _fmnist_ctx(1, 'wordnet', wnids=ids)
  _, state = method.before_task(ctx)
  paths = [wordnet.hypernym_path(w) for w in ids[:6]]
  want = mgrb.tree_logits(wordnet.distance_matrix(paths), 20.0, wordnet.tree_height(paths))
  np.testing.assert_allclose(np.asarray(state['mg_logits'])[:6, :6], want)
  with pytest.raises(ValueError, match='WordNet ids'):
    method.before_task(_fmnist_ctx(1, 'wordnet')[1])


# A hand-built tree for 6 seen classes (made-up ids): the distances below are worked out by hand as
# max(depth) − common prefix; the tree's height below the common root is 4 (class 4's 5 nodes − 1).
HAND_PATHS = [('r', 'a', 'x', 'x0'), ('r', 'a', 'x', 'x1'), ('r', 'a', 'y'), ('r', 'b'), ('r', 'a', 'x', 'x0', 'x00'),
              ('r', 'b', 'z')]
HAND_D = np.array([[0, 1, 2, 3, 1, 3], [1, 0, 2, 3, 2, 3], [2, 2, 0, 2, 3, 2], [3, 3, 2, 0, 4, 1],
                   [1, 2, 3, 4, 0, 4], [3, 3, 2, 1, 4, 0]])


@pytest.mark.parametrize('norm', ['height', 'reference'])
def test_wordnet_targets_of_each_stage_by_hand(norm, monkeypatch):
  """height: s = −β·d/4 in both stages (the default). reference: etrain.py's −β·d/(max_depth − 1) with
  max_depth 2 in stage 1 (s = −β·d) and 18 in stage 2 (s = −β·d/17)."""
  ids = tuple(f'n0000000{k}' for k in range(10))
  monkeypatch.setattr(wordnet, 'hypernym_path', lambda w: (HAND_PATHS + [('r', 'c')] * 4)[int(w[1:])])
  method, ctx, c = _fmnist_ctx(1, f'wordnet,wordnet_norm={norm}', wnids=ids)
  beta, scale = c.method.beta, c.method.mg_scale
  assert (beta, scale) == (20.0, 0.5)
  assert np.array_equal(wordnet.distance_matrix(HAND_PATHS), HAND_D) and wordnet.tree_height(HAND_PATHS) == 4
  stage1_s, stage2_s = (-20.0 * HAND_D / 4, -20.0 * HAND_D / 4) if norm == 'height' else (-20.0 * HAND_D,
                                                                                          -20.0 * HAND_D / 17)
  _, state = method.before_task(ctx)
  np.testing.assert_allclose(np.asarray(state['mg_logits'])[:6, :6], stage1_s, rtol=1e-6)
  assert float(state['mg_logits'][3, 4]) == (-20.0 if norm == 'height' else -80.0)
  # the two stages' L_MG on a batch: numpy against the phases' own losses
  rng = np.random.RandomState(0)
  z, y = rng.randn(5, 10) * 3, np.array([0, 3, 4, 5, 2])
  x = api.LossInputs(out={'logits': jnp.asarray(z)}, teacher={'logits': jnp.asarray(rng.randn(5, 10))}, params={},
                     teacher_params=None, batch={'label': jnp.asarray(y)}, classes=_classes(5, 1, 1, 10), state=state)
  stage1, stage2 = (ph.step.loss for ph in method.phases(1))
  for loss, s in ((stage1, stage1_s), (stage2, stage2_s)):
    q = np.exp(_log_softmax(s[y]))
    want = np.sum(q * (np.log(q) - _log_softmax(z[:, :6]))) / 5
    np.testing.assert_allclose(float(loss(x)[1]['mg']), want, rtol=1e-5)
  if norm == 'reference':
    with pytest.raises(ValueError, match='wordnet_norm=reference sets the reference.s divisors .* leave it at 0'):
      _fmnist_ctx(1, 'wordnet,wordnet_norm=reference,wordnet_depth=3')
    with pytest.raises(ValueError, match=r"method.wordnet_norm='tree' is unknown; choose one of \['height', 'reference'\]"):
      _fmnist_ctx(1, 'wordnet,wordnet_norm=tree')


def test_a_missing_hierarchy_input_fails_before_the_first_phase():
  method, ctx, _ = _fmnist_ctx(0, 'wordnet')
  with pytest.raises(ValueError, match='WordNet ids'):
    method.before_task(ctx)
  method, ctx, _ = _fmnist_ctx(0, 'ont', **{'method.coarse_groups': ()})
  with pytest.raises(ValueError, match='coarse labels'):
    method.before_task(ctx)


def test_stage2_moves_the_head_only_and_keeps_the_bn_statistics():
  import jax
  from helpers import fake_batch, train_setup
  c = load_config('mgrb_fmnist.py', 'ont')
  stage2 = mgrb.make(c).phases(1)[1].step
  s = train_setup(stage2, num_classes=9)
  classes = _classes(5, 1, 2, 9)
  method_state = {'cb_weights': jnp.zeros(9), 'mg_logits': jnp.asarray(-10.0 * (1 - np.eye(9)))}
  before = jax.tree.map(np.asarray, {'params': s.state.params, 'bn': s.state.batch_stats})
  new, metrics = s.step(s.state, None, fake_batch(), classes, jnp.float32(0.01), method_state)
  after = jax.tree.map(np.asarray, {'params': new.params, 'bn': new.batch_stats})
  jax.tree.map(np.testing.assert_array_equal, before['bn'], after['bn'])
  jax.tree.map(np.testing.assert_array_equal, {k: v for k, v in before['params']['model'].items() if k != 'head'},
               {k: v for k, v in after['params']['model'].items() if k != 'head'})
  assert not np.array_equal(before['params']['model']['head']['fc']['kernel'], after['params']['model']['head']['fc']['kernel'])
  assert float(metrics['mg']) > 0


def test_schedules_warm_up_the_backbone_and_decay_one_epoch_after_each_milestone():
  c = load_config('mgrb_cifar100.py', 'ont')
  m = mgrb.make(c)
  base, = m.phases(0)
  train, balanced = m.phases(1)
  steps = 10
  for ph in (base, train):
    lr = ph.schedule.lr
    assert lr(0, 0, steps) == {'backbone': pytest.approx(1e-3 / steps), 'head': 1e-3}   # WarmUpLR before batch 1
    assert lr(0, 9, steps)['backbone'] == pytest.approx(1e-3 * 10 / (10 + 1e-8))
    # etrain.py: scheduler.step(epoch) after epochs >= 1, so milestone 70 takes effect at epoch 71 (0-based)
    assert lr(70, 0, steps) == {'backbone': 1e-3, 'head': 1e-3}
    assert lr(71, 0, steps) == {'backbone': pytest.approx(1e-4), 'head': pytest.approx(1e-4)}
    assert lr(211, 0, steps)['head'] == pytest.approx(1e-6)
    assert ph.schedule.epochs == 250 and ph.step.optimizer.kind == 'adamw' and ph.step.optimizer.weight_decay == 0.05
  s2 = balanced.schedule
  assert (s2.epochs, s2.lr(15), s2.lr(16)) == (40, 1e-3, pytest.approx(1e-4))
  assert balanced.data == 'balanced' and not balanced.augment and not balanced.step.bn_train
  assert balanced.batch_size == 2 * 20 and train.step.teacher == 'task_start'
  params = {'model': {'conv1': {'kernel': 0}, 'head': {'fc': {'kernel': 0, 'bias': 0}}}, 'method': {}}
  mask = balanced.step.trainable(params, None)
  assert mask['model']['conv1']['kernel'] is False and mask['model']['head']['fc']['kernel'] is True


# --- configs -----------------------------------------------------------------------------------

@pytest.mark.parametrize('config,arg,want', [
    # -n 10 -m 10 --cbloss -beta 20 -dscale 0.1 (ontology); --vis_hier -cluster 5
    ('mgrb_cifar100.py', 'ont', dict(split=(10, 10), hierarchy='dataset', beta=20.0, dscale=0.1, mg_scale=1.0)),
    ('mgrb_cifar100.py', 'vis', dict(split=(10, 10), hierarchy='visual', clusters=5, dscale=0.1)),
    ('mgrb_cifar100.py', 'vis,50/5', dict(split=(50, 5), hierarchy='visual')),
    # -n 5 -m 1 -beta 20 -dscale 1.0 -scale 0.5; the code's K = 2 for CIFAR-10
    ('mgrb_cifar10.py', 'sem', dict(split=(5, 1), hierarchy='dataset', beta=20.0, dscale=1.0, mg_scale=0.5,
                                    memory=200, balanced=20)),
    ('mgrb_cifar10.py', 'vis', dict(split=(5, 1), hierarchy='visual', clusters=2)),
    # -n 50 -m 10 -beta 50 -cluster -2 (WordNet); --vis_hier -cluster 10
    ('mgrb_miniimagenet.py', 'wordnet', dict(split=(50, 10), hierarchy='wordnet', beta=50.0, stage2=30)),
    ('mgrb_miniimagenet.py', 'vis', dict(split=(50, 10), hierarchy='visual', clusters=10)),
    ('mgrb_imagenet100.py', 'vis', dict(split=(50, 10), hierarchy='visual')),
])
def test_configs_follow_the_readme_commands(config, arg, want):
  c = load_config(config, arg)
  got = dict(split=(c.scenario.base, c.scenario.step), hierarchy=c.method.hierarchy, beta=c.method.beta,
             dscale=c.method.dscale, mg_scale=c.method.mg_scale, clusters=c.method.clusters,
             memory=c.memory.size, balanced=c.method.balanced_per_class, stage2=c.method.stage2_epochs)
  assert {k: got[k] for k in want} == want
  assert (c.scenario.seed, c.memory.policy, c.memory.selection) == (1993, 'per_class', 'file_order')
  order = np.random.RandomState(1993).permutation(100)
  if config == 'mgrb_imagenet100.py':   # wnids.txt (LUCIR's order) shuffled again by divideimagenet100.py
    assert c.scenario.class_order == ','.join(str(order[o]) for o in order)
    assert c.dataset.augment == 'imagenet_rotate' and c.method.balanced_augment
  else:
    assert c.scenario.class_order == 'facil'
    assert c.method.balanced_augment == (config == 'mgrb_miniimagenet.py')
  assert (c.train.lr, c.train.weight_decay, c.train.batch_size) == (1e-3, 0.05, 128)
  epochs = {'mgrb_cifar100.py': 250, 'mgrb_cifar10.py': 200, 'mgrb_miniimagenet.py': 160, 'mgrb_imagenet100.py': 120}
  assert c.train.epochs == epochs[config]
  _, balanced = mgrb.make(c).phases(1)
  assert balanced.augment == c.method.balanced_augment   # the train transform on the balanced set (M11)


def test_config_errors_name_the_fix(tmp_path):
  with pytest.raises(ValueError, match='one hierarchy'):
    load_config('mgrb_cifar100.py', 'ont,vis')
  with pytest.raises(ValueError, match='n/m'):
    load_config('mgrb_cifar100.py', 't5')
  with pytest.raises(ValueError, match="'onto' is unknown; MGRB configs take a hierarchy"):
    load_config('mgrb_cifar100.py', 'onto')
  with pytest.raises(ValueError, match='balanced_per_class'):
    mgrb.make(load_config('mgrb_cifar100.py', 'ont,balanced_per_class=20'))
  from cil_jax.engine import train
  from cil_jax.input_pipeline.base import DataError
  for config, match in (('mgrb_miniimagenet.py', 'miniimagenet needs dataset.root'),
                        ('mgrb_imagenet100.py', 'dataset.root is unset and tfds')):
    with pytest.raises(DataError, match=match):
      train.train_and_evaluate(load_config(config, 'smoke', **{'dataset.data_dir': str(tmp_path / 'tfds')}),
                               str(tmp_path / config))


# --- runs --------------------------------------------------------------------------------------

def test_ontology_run(idx_dir, tmp_path):
  from cil_jax.engine import train
  c = load_config('mgrb_fmnist.py', 'ont,8/1,smoke', **{'dataset.root': idx_dir})
  summary = train.train_and_evaluate(c, str(tmp_path))
  check_summary(summary, 3)


@pytest.fixture(scope='module')
def wordnet_imagenet(tmp_path_factory):
  """ImageNet folders named by real WordNet ids (tench, goldfish, dalmatian, electric guitar)."""
  from PIL import Image
  d = tmp_path_factory.mktemp('imagenet_wnids')
  rng = np.random.RandomState(4)
  for split, n in (('train', 10), ('val', 2)):
    for c, wnid in enumerate(('n01440764', 'n01443537', 'n02110341', 'n03272010')):
      (d / split / wnid).mkdir(parents=True)
      for i in range(n):
        img = np.clip(rng.normal(40 + 50 * c, 20, (36, 40, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / split / wnid / f'{wnid}_{i}.JPEG', quality=90)
  return str(d)


@pytest.mark.skipif(not WORDNET, reason='WordNet 3.0 (Debian package wordnet-base) is not installed')
def test_wordnet_run(wordnet_imagenet, tmp_path):
  from cil_jax.engine import train
  c = load_config('mgrb_fmnist.py', 'wordnet,2/1,smoke', **{
      'dataset.name': 'imagenet', 'dataset.root': wordnet_imagenet, 'dataset.num_classes': 4,
      'dataset.image_size': 32, 'dataset.augment': 'imagenet'})
  summary = train.train_and_evaluate(c, str(tmp_path))
  check_summary(summary, 3)


VIS = 'configs/mgrb_fmnist.py:vis,8/1,smoke'


def test_visual_run_killed_in_warm_up_and_in_stage_2_resumes_exactly(idx_dir, tmp_path):
  """8 base classes, then 1 and 1 (46 new images + 4 exemplars per old class, batch 16; stage 2: 18
  balanced images in 2 batches of 9). Global steps: task 1 1-23; task 2 stage 1 24-27 (its warm-up
  epoch), stage 2 28-31 (two epochs of two steps); task 3 32-36, 37-40. Checkpoints every 2 steps.
  Killed at 25 (warm-up) and at 29 (inside stage 2's first epoch), it ends as the run that was
  never killed."""
  from test_resume import _assert_same_run, _run
  extra = ('--config.method.stage2_epochs=2',)
  ref = tmp_path / 'ref'
  r = _run(ref, idx_dir, *extra, config=VIS)
  assert r.returncode == 0, r.stderr[-3000:]
  killed = tmp_path / 'killed'
  r = _run(killed, idx_dir, *extra, '--config.debug.kill_at_step=25', config=VIS)
  assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
  r = _run(killed, idx_dir, *extra, '--config.debug.kill_at_step=29', config=VIS)
  assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
  assert 'resumed from checkpoint' in r.stderr and 'task 2/3, train epoch' in r.stderr
  r = _run(killed, idx_dir, *extra, config=VIS)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'task 2/3, balanced epoch' in r.stderr
  _assert_same_run(ref, killed)
  assert json.load(open(ref / 'results.json'))['top1_all'] == json.load(open(killed / 'results.json'))['top1_all']
