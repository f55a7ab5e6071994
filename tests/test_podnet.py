"""PODNet: NCA, POD-spatial, POD-flat and KMeans imprinting against independent numpy computations,
what each phase trains and freezes (one real train step each), and a tiny end-to-end run."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cil_jax import config_base, models
from cil_jax.engine import parallel, train
from cil_jax.methods import podnet
from cil_jax.methods.api import Classes, LossInputs, Optimizer
from cil_jax.methods.schedules import Cosine
from cil_jax.input_pipeline.scenario import Tasks
from cil_jax.engine.step import TrainState, make_optimizer, make_train_step, normalizer
from helpers import check_summary as _check, load_config as _load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# base 3, step 2, 9 classes -> [0,3) [3,5) [5,7) [7,9); task 2: old [0,5), new [5,7), seen [0,7)
TASKS = Tasks(9, 3, 2)
C2 = Classes.for_task(TASKS, 2)
RNG = np.random.RandomState(0)
SCORE = -RNG.rand(6, 9).astype(np.float32) * 3     # LSC class scores are <= 0
Y = np.array([5, 6, 0, 4, 2, 6])


def np_nca(score, scale, y, seen, margin, shift=True):
  a = scale * (score[:, :seen] - margin)
  if shift:
    a = a - a.max(1, keepdims=True)
  out = []
  for i in range(len(y)):
    others = np.delete(a[i], y[i])
    out.append(-a[i, y[i]] + np.log(1 + np.exp(others).sum()))
  return np.mean(out)


def test_nca_loss_matches_numpy_and_the_max_shift_matters():
  got = podnet.nca_loss(jnp.asarray(SCORE), jnp.float32(1.7), jnp.asarray(Y), C2.seen, 0.6).mean()
  want = np_nca(SCORE.astype(np.float64), 1.7, Y, 7, 0.6)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  # the shifted and unshifted forms differ (the target's denominator term is exp(0) = 1) ...
  assert abs(want - np_nca(SCORE.astype(np.float64), 1.7, Y, 7, 0.6, shift=False)) > 1e-2
  # ... and the margin, subtracted from every class, has no effect
  other = podnet.nca_loss(jnp.asarray(SCORE), jnp.float32(1.7), jnp.asarray(Y), C2.seen, 0.0).mean()
  np.testing.assert_allclose(float(other), float(got), rtol=1e-6)
  # unseen classes take no part
  moved = SCORE.copy()
  moved[:, 7:] = 5.0
  np.testing.assert_allclose(float(podnet.nca_loss(jnp.asarray(moved), 1.7, jnp.asarray(Y), C2.seen, 0.6).mean()),
                             float(got), rtol=1e-6)


def _stages(rng, scale=1.0):
  return [rng.randn(4, 6, 5, 3).astype(np.float32) * scale, rng.randn(4, 3, 3, 8).astype(np.float32) * scale]


def np_pod_spatial(stages, old, concat=False):
  """The reference's computation in PyTorch's NCHW layout."""
  def nrm(v):
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
  total = 0.0
  for h, g in zip(stages, old):
    h, g = np.transpose(h, (0, 3, 1, 2)) ** 2, np.transpose(g, (0, 3, 1, 2)) ** 2   # B C H W
    b = h.shape[0]
    w_pool = (h.sum(3).reshape(b, -1), g.sum(3).reshape(b, -1))
    h_pool = (h.sum(2).reshape(b, -1), g.sum(2).reshape(b, -1))
    if concat:
      pairs = [(np.concatenate([w_pool[0], h_pool[0]], 1), np.concatenate([w_pool[1], h_pool[1]], 1))]
    else:
      pairs = [w_pool, h_pool]
    for s, t in pairs:
      total += np.linalg.norm(nrm(s) - nrm(t), axis=1).mean()
  return total


def test_pod_spatial_and_flat_match_numpy():
  rng = np.random.RandomState(1)
  st, old = _stages(rng), _stages(rng)
  for concat in (False, True):
    got = jax.jit(podnet.pod_spatial, static_argnums=2)(st, old, concat)
    np.testing.assert_allclose(float(got), np_pod_spatial(st, old, concat), rtol=1e-5)
  assert float(podnet.pod_spatial([jnp.asarray(s) for s in st], [jnp.asarray(s) for s in st])) == 0.0
  f, fo = rng.randn(5, 7).astype(np.float32), rng.randn(5, 7).astype(np.float32)
  fn, fon = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (f, fo))
  np.testing.assert_allclose(float(podnet.pod_flat(jnp.asarray(f), jnp.asarray(fo))),
                             ((fn - fon) ** 2).sum() / 5, rtol=1e-5)
  # no NaN gradient where student and teacher agree
  g = jax.jit(jax.grad(lambda s: podnet.pod_spatial([s], [jnp.asarray(st[0])])))(jnp.asarray(st[0]))
  assert np.isfinite(np.asarray(g)).all()


def test_podnet_loss_weights():
  rng = np.random.RandomState(2)
  st, old = _stages(rng), _stages(rng)
  f, fo = rng.randn(6, 8).astype(np.float32), rng.randn(6, 8).astype(np.float32)
  x = LossInputs(out={'logits': jnp.asarray(SCORE), 'scale': jnp.float32(1.3), 'features': jnp.asarray(f),
                      'stages': [jnp.asarray(s) for s in st]},
                 teacher={'features': jnp.asarray(fo), 'stages': [jnp.asarray(s) for s in old]},
                 params={}, teacher_params=None, batch={'label': jnp.asarray(Y)}, classes=C2, state={})
  fn, fon = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (f, fo))
  nca = np_nca(SCORE.astype(np.float64), 1.3, Y, 7, 0.6)
  spatial, flat = np_pod_spatial(st, old), ((fn - fon) ** 2).sum() / 6
  opts = dict(nca_margin=0.6, lambda_c=8.0, lambda_f=10.0, adaptive_weights=False, pod_spatial_concat=False)
  loss, m = podnet.podnet_loss(x, opts)
  np.testing.assert_allclose(float(loss), nca + 8.0 / 2 * spatial + 10.0 * flat, rtol=1e-5)  # 2 stages: λ_c/2
  loss, _ = podnet.podnet_loss(x, dict(opts, adaptive_weights=True))
  np.testing.assert_allclose(float(loss), nca + np.sqrt(7 / 2) * (4.0 * spatial + 10.0 * flat), rtol=1e-5)
  loss, m = podnet.podnet_loss(x.replace(teacher=None), opts)   # task 0: NCA only
  np.testing.assert_allclose(float(loss), nca, rtol=1e-5)


def test_kmeans_imprinting_layout():
  k, d = 3, 6
  rng = np.random.RandomState(3)
  proxies = rng.randn(9 * k, d).astype(np.float32) * 2
  dirs = np.eye(d, dtype=np.float32)
  feats, labels = [], []
  for c, axes in ((5, (0, 1, 2)), (6, (3, 4, 5))):   # each new class: K tight clusters, 12 points each
    for a in axes:
      feats.append(dirs[a] * rng.uniform(1, 4, (12, 1)) + rng.randn(12, d) * 1e-3)
      labels += [c] * 12
  feats.append(rng.randn(5, d))                         # an old class's images are ignored
  labels += [1] * 5
  feats, labels = np.concatenate(feats).astype(np.float32), np.array(labels)
  out = podnet.imprint(proxies, feats, labels, range(5, 7), k, seed=0, t=2)
  keep = np.r_[0:15, 21:27]
  np.testing.assert_array_equal(out[keep], proxies[keep])
  norm = np.linalg.norm(proxies[:15], axis=1).mean()      # mean norm of the old classes' proxies
  fn = feats / np.linalg.norm(feats, axis=1, keepdims=True)
  for c, axes in ((5, (0, 1, 2)), (6, (3, 4, 5))):
    rows = out[c * k:(c + 1) * k] / norm                    # class-major: rows c·K .. c·K + K − 1
    want = np.stack([fn[(labels == c) & (np.argmax(fn, 1) == a)].mean(0) for a in axes])
    order = np.argmax(rows, 1).argsort()
    np.testing.assert_allclose(rows[order], want, atol=1e-4)
  # fewer images than K: the normalised features, repeated
  few = podnet.kmeans_proxies(feats[:2], 5, seed=0)
  np.testing.assert_allclose(few, fn[[0, 1, 0, 1, 0]], rtol=1e-6)
  # seeded: the same result twice
  np.testing.assert_array_equal(podnet.imprint(proxies, feats, labels, range(5, 7), k, 0, 2), out)


def _config(**over):
  c = config_base.base_config()
  config_base.set_method(c, 'podnet')
  c.model.head, c.model.last_relu = 'lsc', False
  c.scenario.base, c.scenario.step = 3, 2
  c.train.lr, c.train.epochs, c.train.milestones, c.train.batch_size = 0.05, 90, (), 8
  for key, v in over.items():
    node = c
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = v
  return c


def test_phase_layout_and_config_checks():
  method = podnet.make(_config())
  (base,) = method.phases(0)
  assert (base.name, base.step.teacher, base.data, base.step.bn_train, base.schedule.epochs, base.step.optimizer) == \
      ('base', None, 'train', True, 90, Optimizer(momentum=0.9, weight_decay=1e-4))
  main, ft = method.phases(2)
  # the run's optimizer as the main phase's own: fresh each task
  assert (main.name, main.step.teacher, main.data, main.stream, main.step.bn_train, isinstance(main.schedule, Cosine),
          main.step.optimizer) == \
      ('train', 'task_start', 'train', 'mixed', True, True, Optimizer(momentum=0.9, weight_decay=1e-4))
  assert main.schedule.epochs == 90 and main.batch_size == 8
  np.testing.assert_allclose([main.schedule.lr(0), main.schedule.lr(45), main.schedule.lr(89)],
                             [0.05, 0.025, 0.05 * 0.5 * (1 + np.cos(np.pi * 89 / 90))])
  assert (ft.name, ft.step.teacher, ft.data, ft.step.bn_train, ft.schedule.epochs, ft.schedule.lr0,
          isinstance(ft.schedule, Cosine), ft.schedule.milestones) == \
      ('classifier_ft', None, 'balanced', True, 20, 0.01, False, ())
  assert ft.step.optimizer == Optimizer(momentum=0.0, weight_decay=1e-4)
  assert [p.name for p in podnet.make(_config(**{'memory.size': 0})).phases(2)] == ['train']
  with pytest.raises(ValueError, match="model.head='lsc', model.last_relu=False"):   # podnet.REQUIRES
    config_base.validate(_config(**{'model.head': 'linear'}))
  with pytest.raises(ValueError, match='last_relu=False'):
    config_base.validate(_config(**{'model.last_relu': True}))
  for name in ('podnet_imagenet.py', 'podnet_cifar100.py', 'podnet_fmnist.py'):
    c = _load(name, None)
    assert (c.model.head, c.model.last_relu, c.train.lr, c.train.batch_size) == ('lsc', False, 0.05, 64), name
    assert podnet.make(c).phases(1)[0].step.optimizer == Optimizer(momentum=0.9, weight_decay=1e-4), name
  imagenet = _load('podnet_imagenet.py', None)
  assert (imagenet.train.epochs, imagenet.memory.size, imagenet.scenario.base, imagenet.scenario.step) == \
      (90, 20000, 100, 100)


def _setup():
  model = models.create('small_convnet', 9, last_relu=False, head='lsc')
  v = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
  rep, sh = parallel.shardings(parallel.make_mesh())
  rng = np.random.RandomState(4)
  batch = {'image': rng.randint(0, 255, (8, 28, 28, 1)).astype(np.uint8),
           'label': np.array([5, 6, 0, 1, 2, 3, 4, 6], np.int32), 'replay': np.zeros(8, bool)}
  return model, v, rep, sh, batch


def _np(tree):
  return jax.tree.map(np.asarray, tree)


def test_train_steps_freeze_what_each_phase_says():
  model, v, rep, sh, batch = _setup()
  main, ft = podnet.make(_config()).phases(2)
  host = _np({'model': v['params'], 'method': {}})   # steps donate their state: build fresh copies
  fresh = lambda: jax.tree.map(jnp.asarray, host)     # noqa: E731
  teacher = {'params': fresh(), 'batch_stats': _np(v['batch_stats'])}
  norm = normalizer((0.3,), (0.3,))
  # main phase: old (and future) proxies frozen exactly, new ones, scale and backbone move
  assert main.step.optimizer == Optimizer(momentum=0.9, weight_decay=1e-4)   # the phase's own, fresh
  tx = make_optimizer(main.step.optimizer)
  state = TrainState(fresh(), jax.tree.map(jnp.asarray, teacher['batch_stats']), (), tx.init(fresh()))
  before = _np(state)
  lr = 0.05
  step = make_train_step(model, main.step, tx, norm, rep, sh)
  state, metrics = step(state, teacher, batch, C2, jnp.float32(lr), {})
  after = _np(state)
  p0, p1 = before.params['model']['head']['proxies'], after.params['model']['head']['proxies']
  np.testing.assert_array_equal(p1[:50], p0[:50])        # classes 0..4 (old), rows c·10 + k
  np.testing.assert_array_equal(p1[70:], p0[70:])        # classes 7, 8 (not seen yet)
  assert np.abs(p1[50:70] - p0[50:70]).max() > 1e-6
  assert after.params['model']['head']['scale'] != before.params['model']['head']['scale']
  assert np.abs(after.params['model']['conv1']['kernel'] - before.params['model']['conv1']['kernel']).max() > 0
  assert float(metrics['pod_spatial']) > 0 and float(metrics['pod_flat']) > 0
  # the new rows: one SGD step from a zero momentum buffer, p − lr·(g + wd·p), g by an independent grad
  def loss_of(proxies):
    p = dict(fresh()['model'], head=dict(fresh()['model']['head'], proxies=proxies))
    out, _ = model.apply({'params': p, 'batch_stats': teacher['batch_stats']}, norm(batch['image']), train=True,
                         mutable=['batch_stats'])
    t_out = model.apply({'params': teacher['params']['model'], 'batch_stats': teacher['batch_stats']},
                        norm(batch['image']), train=False)
    x = LossInputs(out=out, teacher=t_out, params=None, teacher_params=None, batch=batch, classes=C2, state={})
    return podnet.podnet_loss(x, dict(nca_margin=0.6, lambda_c=8.0, lambda_f=10.0, adaptive_weights=False,
                                      pod_spatial_concat=False))[0]
  g = np.asarray(jax.jit(jax.grad(loss_of))(jnp.asarray(p0)))
  np.testing.assert_allclose(p1[50:70], p0[50:70] - lr * (g[50:70] + 1e-4 * p0[50:70]), rtol=1e-4, atol=1e-6)

  # classifier fine-tuning: only the seen classes' proxies move; BN statistics still update
  tx = make_optimizer(ft.step.optimizer)
  state = TrainState(fresh(), jax.tree.map(jnp.asarray, teacher['batch_stats']), (), tx.init(fresh()))
  before = _np(state)
  state, metrics = make_train_step(model, ft.step, tx, norm, rep, sh)(state, None, batch, C2, jnp.float32(0.01), {})
  after = _np(state)
  assert set(metrics) == {'nca', 'loss'}
  p0, p1 = before.params['model']['head']['proxies'], after.params['model']['head']['proxies']
  assert all(np.abs(p1[c * 10:(c + 1) * 10] - p0[c * 10:(c + 1) * 10]).max() > 0 for c in range(7))
  np.testing.assert_array_equal(p1[70:], p0[70:])
  rest = lambda p: {k: val for k, val in p['model'].items() if k != 'head'}   # noqa: E731
  jax.tree.map(np.testing.assert_array_equal, rest(before.params), rest(after.params))
  assert after.params['model']['head']['scale'] == before.params['model']['head']['scale']
  assert np.abs(after.batch_stats['bn1']['mean'] - before.batch_stats['bn1']['mean']).max() > 0


def test_podnet_fmnist_smoke_end_to_end(idx_dir, tmp_path):
  # 2 tasks with base != step ([0,6) [6,10)) to keep it short and exercise uneven boundaries
  c = _load('podnet_fmnist.py', **{'dataset.root': idx_dir, 'scenario.base': 6, 'scenario.step': 4})
  _check(train.train_and_evaluate(c, str(tmp_path)), 2)
