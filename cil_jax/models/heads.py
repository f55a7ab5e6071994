"""Classifier heads. Each maps features [B, D] to a dict merged into the model outputs; 'logits'
[B, num_classes] is what CE and evaluation use. Heads are sized for all classes from the start.

linear  PyTorch nn.Linear (weight and bias ~ U(±1/sqrt(D))): the SS-IL code base's head.
cosine  LUCIR (Hou et al., CVPR 2019): logits = η·cos(f, w_c), no bias, learnable η (init 1);
        weights ~ U(±1/sqrt(D)) as LUCIR's CosineLinear. Also returns 'cosine' (unscaled).
lsc     PODNet's local similarity classifier (Douillard et al., ECCV 2020): K proxies per class,
        stored class-major (row c·K + k); s_ck = −‖x̂ − ŵ_ck‖² (distance clamped at 0), class score
        Σ_k softmax_k(s_c)·s_ck; learnable scale (init 1) returned as 'scale', not applied to logits.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def torch_uniform(fan_in: int):
  """PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), in the default float dtype unless given
  (float32; float64 under x64, as the flax initialisers of η, the proxies and the scale)."""
  bound = 1.0 / jnp.sqrt(fan_in)

  def init(key, shape, dtype=float):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def l2_normalize(x, axis=-1, eps=1e-12):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)


class LinearHead(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, x):
    init = torch_uniform(x.shape[-1])
    return {'logits': nn.Dense(self.num_classes, kernel_init=init, bias_init=init, name='fc')(x)}


class CosineHead(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, x):
    w = self.param('weight', torch_uniform(x.shape[-1]), (x.shape[-1], self.num_classes))
    eta = self.param('eta', nn.initializers.ones, ())
    cos = l2_normalize(x) @ l2_normalize(w, axis=0)
    return {'logits': eta * cos, 'cosine': cos, 'scale': eta}


class LSCHead(nn.Module):
  num_classes: int
  proxies: int = 10

  @nn.compact
  def __call__(self, x):
    d = x.shape[-1]
    w = self.param('proxies', nn.initializers.variance_scaling(1.0, 'fan_in', 'normal', in_axis=1, out_axis=0),
                   (self.num_classes * self.proxies, d))
    scale = self.param('scale', nn.initializers.ones, ())
    xn, wn = l2_normalize(x), l2_normalize(w)
    dist = jnp.maximum(jnp.sum(xn * xn, -1, keepdims=True) - 2 * xn @ wn.T + jnp.sum(wn * wn, -1)[None], 0.0)
    s = (-dist).reshape(x.shape[0], self.num_classes, self.proxies)
    score = jnp.sum(jax.nn.softmax(s, axis=-1) * s, axis=-1)
    return {'logits': score, 'scale': scale}


HEADS = {'linear': LinearHead, 'cosine': CosineHead, 'lsc': LSCHead}


def create(name: str, num_classes: int) -> nn.Module:
  return HEADS[name](num_classes, name='head')
