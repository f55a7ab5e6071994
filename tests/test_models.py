"""Model layouts and initialisation match torchvision / PyTorch."""
import jax
import jax.numpy as jnp
import numpy as np

from cil_jax import models


def _init(name, size, channels=3, classes=1000, **kw):
  model = models.create(name, classes, **kw)
  variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, size, size, channels)), train=False))(
      jax.random.PRNGKey(0))
  return model, variables


def test_resnet18_matches_torchvision_parameter_count_and_init():
  model, v = _init('resnet18', 64)
  n = sum(x.size for x in jax.tree.leaves(v['params']))
  assert n == 11_689_512  # torchvision.models.resnet18(num_classes=1000)
  k = np.asarray(v['params']['conv1']['kernel'])            # kaiming normal, fan_out = 7*7*64
  np.testing.assert_allclose(k.std(), np.sqrt(2.0 / (7 * 7 * 64)), rtol=0.05)
  w = np.asarray(v['params']['head']['fc']['kernel'])        # PyTorch Linear: U(-1/sqrt(512), 1/sqrt(512))
  assert np.abs(w).max() <= 1 / np.sqrt(512) and np.abs(w).max() > 0.9 / np.sqrt(512)
  out = model.apply(v, jnp.zeros((2, 64, 64, 3)), train=False)
  assert out['logits'].shape == (2, 1000) and out['features'].shape == (2, 512)
  assert [s.shape[-1] for s in out['stages']] == [64, 128, 256, 512]


def test_last_relu_off_gives_signed_features():
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 32, 3))
  for relu in (True, False):
    model, v = _init('resnet32_cifar', 32, classes=100, last_relu=relu)
    f = model.apply(v, x, train=False)['features']
    assert f.shape == (4, 64)
    assert bool((f >= 0).all()) == relu


def test_small_convnet_shapes():
  model, v = _init('small_convnet', 28, channels=1, classes=10)
  out = model.apply(v, jnp.zeros((3, 28, 28, 1)), train=False)
  assert out['logits'].shape == (3, 10)


def test_cosine_head_matches_numpy():
  from cil_jax.models import heads
  head = heads.create('cosine', 5)
  x = np.random.RandomState(0).randn(3, 8).astype(np.float32)
  v = head.init(jax.random.PRNGKey(0), jnp.asarray(x))
  v = jax.tree.map(lambda a: a, v)
  v['params']['eta'] = jnp.float32(2.5)
  out = head.apply(v, jnp.asarray(x))
  w = np.asarray(v['params']['weight'])
  cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0, keepdims=True))
  np.testing.assert_allclose(out['cosine'], cos, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out['logits'], 2.5 * cos, rtol=1e-5, atol=1e-6)


def test_lsc_head_matches_numpy():
  from cil_jax.models import heads
  head = heads.create('lsc', 4)        # 10 proxies per class, class-major rows
  x = np.random.RandomState(1).randn(3, 6).astype(np.float32)
  v = head.init(jax.random.PRNGKey(0), jnp.asarray(x))
  out = head.apply(v, jnp.asarray(x))
  w = np.asarray(v['params']['proxies'])
  assert w.shape == (40, 6)
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  wn = w / np.linalg.norm(w, axis=1, keepdims=True)
  s = -np.maximum(((xn[:, None] - wn[None]) ** 2).sum(-1), 0).reshape(3, 4, 10)
  att = np.exp(s - s.max(-1, keepdims=True))
  att /= att.sum(-1, keepdims=True)
  np.testing.assert_allclose(out['logits'], (att * s).sum(-1), rtol=1e-4, atol=1e-5)
  assert float(out['scale']) == 1.0


def test_max_pool_equals_flax_values_and_gradients():
  """models.resnet.max_pool (slices, fast backward on CPU) against nn.max_pool (select-and-scatter)
  on inputs without ties: the stem's 3x3/2 pad-1 pool and the small convnet's 2x2/2, odd sizes too."""
  import flax.linen as nn
  from cil_jax.models.resnet import max_pool
  cases = [((2, 28, 28, 3), (2, 2, 0), lambda x: nn.max_pool(x, (2, 2), (2, 2))),
           ((2, 7, 9, 3), (2, 2, 0), lambda x: nn.max_pool(x, (2, 2), (2, 2))),
           ((2, 16, 16, 3), (3, 2, 1), lambda x: nn.max_pool(x, (3, 3), (2, 2), padding=[(1, 1), (1, 1)])),
           ((2, 7, 9, 3), (3, 2, 1), lambda x: nn.max_pool(x, (3, 3), (2, 2), padding=[(1, 1), (1, 1)]))]
  for shape, (window, stride, pad), reference in cases:
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    ours = max_pool(x, window, stride, pad)
    np.testing.assert_array_equal(ours, reference(x))
    weights = jax.random.normal(jax.random.PRNGKey(1), ours.shape)
    grad = jax.grad(lambda x: jnp.sum(weights * max_pool(x, window, stride, pad)))(x)
    np.testing.assert_array_equal(grad, jax.grad(lambda x: jnp.sum(weights * reference(x)))(x))
