"""Never downcast: losses and statistics compute in float32 or wider.

Under x64 (jax.enable_x64, scoped to each test so the rest of the session stays float32) float64
inputs give float64 outputs that match float64 numpy to rtol 1e-12, which a float32 step anywhere
would miss by ~1e-7 (the inputs are random doubles, all 53 bits used). bfloat16 activations give
float32 losses, as close to the reference as float32 allows; float32 stays float32.
"""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cil_jax import config_base
from cil_jax.methods.losses import blockwise_kd, cross_entropy
from cil_jax.models.precision import at_least_f32
from cil_jax.methods import bic, icarl, il2m, lucir, podnet, shared
from cil_jax.methods.api import Classes, LossInputs
from cil_jax.models import heads
from cil_jax.input_pipeline.scenario import Tasks

# base 3, step 2, 9 classes -> [0,3) [3,5) [5,7) [7,9); task 2: old [0,5), new [5,7), seen [0,7)
TASKS = Tasks(9, 3, 2)
RTOL = 1e-12
BF16 = jnp.bfloat16      # ml_dtypes, usable in numpy arrays


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def _check64(got, want, atol=0.0):
  want = np.asarray(want, np.float64)
  # the inputs carry more digits than float32 holds: a float32 result could not pass
  assert not np.allclose(want.astype(np.float32), want, rtol=RTOL, atol=0)
  assert got.dtype == np.float64, got.dtype
  np.testing.assert_allclose(np.asarray(got), want, rtol=RTOL, atol=atol)


def _check_bf16(got, want):
  """bfloat16 inputs: a float32 result, float32-close to the float64 formula on the rounded inputs
  (a bfloat16 computation would be off by ~1e-2)."""
  assert got.dtype == np.float32, got.dtype
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-5, atol=1e-6)


def _bf16(x):
  """(bfloat16 array, the same values in float64)."""
  b = np.asarray(x).astype(BF16)
  return jnp.asarray(b), b.astype(np.float64)


def np_normalize(x, axis=-1):
  return x / np.linalg.norm(x, axis=axis, keepdims=True)


def _config(name, **method_options):
  config = config_base.base_config()
  config_base.set_method(config, name, **method_options)
  config.scenario.base, config.scenario.step = 3, 2
  if name in ('lucir', 'podnet'):
    config.model.head, config.model.last_relu = {'lucir': 'cosine', 'podnet': 'lsc'}[name], False
  return config


# --- the helper --------------------------------------------------------------------------------

def test_at_least_f32_casts_up_only(x64):
  for dtype in (jnp.bfloat16, jnp.float16, jnp.int32, jnp.bool_, jnp.float32):
    assert at_least_f32(jnp.ones(3, dtype)).dtype == jnp.float32
  assert at_least_f32(jnp.ones(3, jnp.float64)).dtype == jnp.float64
  assert at_least_f32(np.ones(3, np.float64)).dtype == np.float64     # host arrays too
  assert at_least_f32(np.ones(3, BF16)).dtype == np.float32


def test_at_least_f32_without_x64_is_float32():
  assert at_least_f32(jnp.ones(3, jnp.bfloat16)).dtype == jnp.float32
  x = jnp.ones(3)
  assert at_least_f32(x).dtype == jnp.float32 and jax.jit(at_least_f32)(x).dtype == jnp.float32


# --- losses ------------------------------------------------------------------------------------

def test_cross_entropy_and_kd_follow_the_input_precision(x64):
  rng = np.random.RandomState(0)
  z, zt = rng.randn(6, 9) * 3, rng.randn(6, 9) * 3
  y = np.array([5, 6, 0, 4, 2, 6])
  seen = np.arange(9) < 7

  def np_logp(v):
    v = v - v.max(-1, keepdims=True)
    return v - np.log(np.exp(v).sum(-1, keepdims=True))

  def np_kd(a, b, t=2.0):
    p, lq, lp = np.exp(np_logp(b / t)), np_logp(a / t), np_logp(b / t)
    return t * t * (p * (lp - lq)).sum(-1)

  want_ce = -np_logp(z[:, :7])[np.arange(6), y]
  want_kd = np_kd(z[:, :3], zt[:, :3]) + np_kd(z[:, 3:5], zt[:, 3:5])
  blocks = Classes.for_task(TASKS, 2).old_blocks()
  _check64(cross_entropy(jnp.asarray(z), jnp.asarray(y), jnp.asarray(seen)), want_ce)
  _check64(blockwise_kd(jnp.asarray(z), jnp.asarray(zt), blocks, 2.0), want_kd)
  (zb, z64), (ztb, zt64) = _bf16(z), _bf16(zt)
  _check_bf16(cross_entropy(zb, jnp.asarray(y), jnp.asarray(seen)), -np_logp(z64[:, :7])[np.arange(6), y])
  _check_bf16(blockwise_kd(zb, ztb, blocks, 2.0),
              np_kd(z64[:, :3], zt64[:, :3]) + np_kd(z64[:, 3:5], zt64[:, 3:5]))


def test_lucir_less_forget(x64):
  rng = np.random.RandomState(1)
  f, g = rng.randn(8, 6), rng.randn(8, 6)
  want = 1 - (np_normalize(f) * np_normalize(g)).sum(-1)
  _check64(lucir.less_forget(jnp.asarray(f), jnp.asarray(g)), want)
  _check64(jax.jit(lucir.less_forget)(f, g), want)
  (fb, f64), (gb, g64) = _bf16(f), _bf16(g)
  _check_bf16(lucir.less_forget(fb, gb), 1 - (np_normalize(f64) * np_normalize(g64)).sum(-1))


def test_lucir_loss_is_float64_end_to_end(x64):
  rng = np.random.RandomState(2)
  f, g, w = rng.randn(8, 6), rng.randn(8, 6), rng.randn(6, 9)
  eta = 1.7123456789012345
  cos = np_normalize(f) @ np_normalize(w, axis=0)
  y = np.array([0, 4, 5, 6, 2, 3, 1, 6])
  out = {'logits': jnp.asarray(eta * cos), 'scale': jnp.asarray(eta), 'features': jnp.asarray(f)}
  x = LossInputs(out=out, teacher={'features': jnp.asarray(g)}, params={}, teacher_params=None,
                 batch={'label': jnp.asarray(y)}, classes=Classes.for_task(TASKS, 2), state={})
  loss, m = lucir.lucir_loss(x, 10.0, 0.5, 2)
  assert all(v.dtype == np.float64 for v in [loss, *m.values()])
  _check64(m['less_forget'], (1 - (np_normalize(f) * np_normalize(g)).sum(-1)).mean())


def _stages(rng):
  return [rng.randn(4, 6, 5, 3), rng.randn(4, 3, 3, 8)]


def np_pod_spatial(stages, old, concat):
  """The reference's computation in PyTorch's NCHW layout, in float64."""
  total = 0.0
  for h, g in zip(stages, old):
    h, g = np.transpose(h, (0, 3, 1, 2)) ** 2, np.transpose(g, (0, 3, 1, 2)) ** 2   # B C H W
    b = h.shape[0]
    pairs = [(h.sum(3).reshape(b, -1), g.sum(3).reshape(b, -1)), (h.sum(2).reshape(b, -1), g.sum(2).reshape(b, -1))]
    if concat:
      pairs = [tuple(np.concatenate([p[i] for p in pairs], 1) for i in (0, 1))]
    for s, t in pairs:
      total += np.linalg.norm(np_normalize(s) - np_normalize(t), axis=1).mean()
  return total


def test_podnet_pod_spatial(x64):
  rng = np.random.RandomState(3)
  st, old = _stages(rng), _stages(rng)
  for concat in (False, True):
    want = np_pod_spatial(st, old, concat)
    _check64(jax.jit(podnet.pod_spatial, static_argnums=2)(st, old, concat), want)
    pairs = [_bf16(s) for s in st], [_bf16(s) for s in old]
    got = podnet.pod_spatial([p[0] for p in pairs[0]], [p[0] for p in pairs[1]], concat)
    _check_bf16(got, np_pod_spatial([p[1] for p in pairs[0]], [p[1] for p in pairs[1]], concat))


def test_podnet_pod_flat(x64):
  rng = np.random.RandomState(4)
  f, fo = rng.randn(5, 7), rng.randn(5, 7)
  want = ((np_normalize(f) - np_normalize(fo)) ** 2).sum() / 5
  _check64(podnet.pod_flat(jnp.asarray(f), jnp.asarray(fo)), want)
  _check64(jax.jit(podnet.pod_flat)(f, fo), want)
  (fb, f64), (fob, fo64) = _bf16(f), _bf16(fo)
  _check_bf16(podnet.pod_flat(fb, fob), ((np_normalize(f64) - np_normalize(fo64)) ** 2).sum() / 5)


# --- host statistics and the state that holds them ----------------------------------------------

def _class_means_reference(feats, labels, num_classes):
  fn = np_normalize(feats)
  return np.stack([fn[labels == c].mean(0) if (labels == c).any() else np.zeros(feats.shape[1])
                   for c in range(num_classes)])


def test_icarl_class_means_keep_the_input_precision():
  rng = np.random.RandomState(5)
  feats, labels = rng.randn(12, 4), np.array([0, 0, 1, 1, 1, 2, 3, 3, 4, 4, 4, 4])
  _check64(shared.class_means(feats, labels, 9), _class_means_reference(feats, labels, 9))
  assert shared.class_means(feats.astype(np.float32), labels, 9).dtype == np.float32


@pytest.mark.parametrize('name', ['icarl', 'podnet'])
def test_nme_state_is_float64_under_x64(x64, name):
  rng = np.random.RandomState(6)
  method = (icarl if name == 'icarl' else podnet).make(_config(name, nme=True))
  state = method.init_state(9, 4, 5)
  assert state['class_means'].dtype == np.float64
  feats = rng.randn(40, 5)
  train_labels = np.r_[np.repeat(np.arange(9), 4), [0, 1, 2, 2]]   # 4 images per class + 4 exemplars
  memory = types.SimpleNamespace(indices=np.arange(36, 40))
  ctx = types.SimpleNamespace(t=1, tasks=TASKS, method_state=state, train_labels=train_labels, memory=memory,
                              new_indices=lambda: np.arange(12, 20),
                              outputs=lambda idx, augment=False, stream=None, keys=None: {'features': feats[idx]})
  got = method.after_task(ctx)['class_means']
  idx = np.r_[12:20, 36:40]
  _check64(got, _class_means_reference(feats[idx], train_labels[idx], 9))
  scores = method.predict({'features': jnp.asarray(feats[:3])}, None, {'class_means': got},
                          Classes.for_task(TASKS, 1))
  want = -((np_normalize(feats[:3])[:, None] - np.asarray(got)[None]) ** 2).sum(-1)
  np.testing.assert_allclose(np.asarray(scores)[:, :5], want[:, :5], rtol=1e-9, atol=1e-12)


def test_nme_state_is_float32_without_x64():
  for mod, name in ((icarl, 'icarl'), (podnet, 'podnet')):
    assert mod.make(_config(name, nme=True)).init_state(9, 4, 5)['class_means'].dtype == np.float32


def test_il2m_statistics_are_float64_under_x64(x64):
  rng = np.random.RandomState(7)
  method = il2m.make(_config('il2m'))
  state = method.init_state(9, 4, 5)
  assert all(v.dtype == np.float64 for v in state.values())
  logits = rng.randn(16, 9) * 2
  train_labels = np.r_[np.repeat(np.arange(5), 2), [3, 4, 3], [0, 1, 1]]  # 10 + 3 new + 3 exemplars
  memory = types.SimpleNamespace(indices=np.arange(13, 16))
  new = np.r_[6:13]                                                        # labels 3, 3, 4, 4, 3, 4, 3
  ctx = types.SimpleNamespace(t=1, tasks=TASKS, method_state=state, train_labels=train_labels, memory=memory,
                              new_indices=lambda: new,
                              outputs=lambda idx, augment=False, stream=None, keys=None: {'logits': logits[idx]})
  got = method.after_task(ctx)
  idx = np.r_[new, 13:16]
  z = logits[idx, :5]
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  labels = train_labels[idx]
  cur = np.ones(9)
  for c in range(5):
    if (labels == c).any():
      cur[c] = p[labels == c, c].mean()
  init = np.r_[np.ones(3), cur[3:5], np.ones(4)]
  conf = np.r_[1.0, p[(labels >= 3) & (labels < 5)].max(1).mean(), 1.0, 1.0]
  for key, want in (('cur_mean', cur), ('init_mean', init), ('conf', conf)):
    _check64(got[key], want)


def test_il2m_statistics_are_float32_without_x64():
  method = il2m.make(_config('il2m'))
  assert all(v.dtype == np.float32 for v in method.init_state(9, 4, 5).values())


# --- imprinting and the method's own parameters --------------------------------------------------

def test_lucir_imprint_keeps_float64():
  rng = np.random.RandomState(8)
  w, feats = rng.randn(6, 9), rng.randn(20, 6)
  labels = np.array([5] * 9 + [6] * 11)
  got = lucir.imprint(w, feats, labels, 5, 7)
  norm = np.linalg.norm(w[:, :5], axis=0).mean()
  want = w.copy()
  for c in (5, 6):
    mu = np_normalize(feats[labels == c]).mean(0)
    want[:, c] = mu / np.linalg.norm(mu) * norm
  _check64(got, want)
  assert lucir.imprint(w.astype(np.float32), feats.astype(np.float32), labels, 5, 7).dtype == np.float32


def test_podnet_kmeans_imprint_keeps_float64():
  rng = np.random.RandomState(9)
  k, d = 3, 6
  proxies = rng.randn(9 * k, d) * 2
  # fewer images than K: the normalised features, repeated
  few = rng.randn(2, d)
  _check64(podnet.kmeans_proxies(few, 5, seed=0), np_normalize(few)[[0, 1, 0, 1, 0]])
  # K tight clusters per new class: the centres are the clusters' means
  feats, labels = [], []
  for c in (5, 6):
    for a in range(k):
      direction = np.eye(d)[a + 3 * (c - 5)]
      feats.append(direction * rng.uniform(1, 4, (8, 1)) + rng.randn(8, d) * 1e-3)
      labels += [c] * 8
  feats, labels = np.concatenate(feats), np.array(labels)
  out = podnet.imprint(proxies, feats, labels, range(5, 7), k, seed=0, t=2)
  assert out.dtype == np.float64
  norm = np.linalg.norm(proxies[:5 * k], axis=1).mean()
  fn = np_normalize(feats)
  for c in (5, 6):
    rows = out[c * k:(c + 1) * k]
    sel = labels == c
    want = np.stack([fn[sel][np.argmax(fn[sel], 1) == a + 3 * (c - 5)].mean(0) for a in range(k)]) * norm
    # sklearn sums in its own order: entries near 0 (cancellation) get an absolute tolerance
    _check64(rows[np.argmax(rows, 1).argsort()], want, atol=RTOL * norm)
  np.testing.assert_array_equal(np.delete(out, np.r_[15:21], 0), np.delete(proxies, np.r_[15:21], 0))
  assert podnet.imprint(proxies.astype(np.float32), feats.astype(np.float32), labels, range(5, 7), k, 0,
                        2).dtype == np.float32


def test_podnet_before_task_keeps_the_head_dtypes(x64):
  rng = np.random.RandomState(10)
  k, d = heads.LSCHead.proxies, 5
  method = podnet.make(_config('podnet'))
  proxies = rng.randn(9 * k, d)
  params = {'model': {'head': {'proxies': jnp.asarray(proxies), 'scale': jnp.asarray(2.5)}}, 'method': {}}
  feats = rng.randn(36, d)
  train_labels = np.repeat(np.arange(9), 4)               # 4 < K images per class: repeated features
  ctx = types.SimpleNamespace(t=2, tasks=TASKS, state=types.SimpleNamespace(params=params), method_state={},
                              train_labels=train_labels, new_indices=lambda: np.r_[20:28],
                              outputs=lambda idx, augment=False, stream=None, keys=None: {'features': feats[idx]})
  new_params, _ = method.before_task(ctx)
  head = new_params['model']['head']
  assert head['scale'].dtype == np.float64 and float(head['scale']) == 1.0
  norm = np.linalg.norm(proxies[:5 * k], axis=1).mean()
  want = proxies.copy()
  for c in (5, 6):
    want[c * k:(c + 1) * k] = np_normalize(feats[train_labels == c])[np.arange(k) % 4] * norm
  _check64(head['proxies'], want)


def test_bic_bias_layers_follow_the_default_float():
  init = bic.make(_config('bic')).init_params
  assert init(9, 4)['bias'].dtype == np.float32
  np.testing.assert_array_equal(init(9, 4)['bias'], np.tile([[1.0, 0.0]], (4, 1)))
  with jax.enable_x64(True):
    assert init(9, 4)['bias'].dtype == np.float64


def test_cosine_head_weight_follows_the_default_float():
  key = jax.random.PRNGKey(0)
  bound = 1.0 / jnp.sqrt(6)
  w = heads.torch_uniform(6)(key, (6, 9))
  assert w.dtype == jnp.float32     # unchanged without x64, to the bit
  np.testing.assert_array_equal(w, jax.random.uniform(key, (6, 9), jnp.float32, -bound, bound))
  with jax.enable_x64(True):
    x = jnp.asarray(np.random.RandomState(11).randn(2, 6))
    variables = heads.CosineHead(9).init(key, x)
    assert variables['params']['weight'].dtype == np.float64
    out = heads.CosineHead(9).apply(variables, x)
    want = np_normalize(np.asarray(x)) @ np_normalize(np.asarray(variables['params']['weight']), axis=0)
    _check64(out['cosine'], want)


def test_bfloat16_training_keeps_float32_masters_and_follows_the_float32_loss_curve():
  """model.dtype=bfloat16: convolutions and activations in bfloat16; parameters, optimizer state and
  BN statistics stay float32 (master weights), the loss is float32. Over 40 SGD steps on 2 fixed
  batches (2.19 down to 0.35), the bfloat16 loss curve stays within 0.02 + 2 % of the float32 one (bfloat16 keeps 8
  bits of mantissa: ~0.4 % per rounding)."""
  from cil_jax import models
  from cil_jax.engine import parallel
  from cil_jax.methods.api import Optimizer, Step
  from cil_jax.methods.shared import seen_cross_entropy
  from cil_jax.engine.step import TrainState, make_optimizer, make_train_step, normalizer
  replicated, sharded = parallel.shardings(parallel.make_mesh())
  rng = np.random.RandomState(0)
  batches = [parallel.to_global({'image': rng.randint(0, 255, (32, 28, 28, 1)).astype(np.uint8),
                                 'label': rng.randint(0, 9, 32).astype(np.int32), 'replay': np.zeros(32, bool)},
                                sharded) for _ in range(2)]
  classes = Classes.for_task(Tasks(9, 9, 1), 0)
  curves, states = {}, {}
  for dtype in ('float32', 'bfloat16'):
    model = models.create('small_convnet', 9, dtype=dtype)
    v = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
    tx = make_optimizer(Optimizer())
    params = {'model': v['params'], 'method': {}}
    state = TrainState(params, v['batch_stats'], tx.init(params), ())
    step = make_train_step(model, Step(seen_cross_entropy), tx, normalizer((0.3,), (0.3,)), replicated, sharded)
    losses = []
    for i in range(40):
      state, metrics = step(state, None, batches[i % 2], classes, jnp.float32(0.1), {})
      assert metrics['loss'].dtype == jnp.float32
      losses.append(float(metrics['loss']))
    curves[dtype], states[dtype] = np.asarray(losses), state
    if dtype == 'bfloat16':
      out = model.apply(state.variables, jnp.zeros((2, 28, 28, 1)), train=False)
      assert out['stages'][0].dtype == jnp.bfloat16 and out['logits'].dtype == jnp.float32
  for leaf in jax.tree.leaves((states['bfloat16'].params, states['bfloat16'].batch_stats,
                               states['bfloat16'].opt_state)):
    assert leaf.dtype == jnp.float32, leaf.dtype
  f32, bf16 = curves['float32'], curves['bfloat16']
  assert f32[-1] < 0.5 * f32[0]                       # it learns: the curve has a shape to follow
  np.testing.assert_array_less(np.abs(bf16 - f32), 0.02 + 0.02 * f32)   # measured: at most 0.006
  assert not np.array_equal(bf16, f32)                # the bfloat16 run did compute in bfloat16
