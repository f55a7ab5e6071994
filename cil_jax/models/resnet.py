"""Backbones (Flax Linen) with a full-size linear head.

Every model maps normalised images to a dict:
  logits   [B, num_classes]  the full head (models/heads.py); the engine masks it to the seen classes
  ...      whatever else the head returns (cosine, scale, proxy similarities)
  features [B, D]            pooled features (after the last ReLU unless last_relu=False)
  stages   list of stage outputs before their final ReLU (for feature-distillation methods)

Layouts follow torchvision (ImageNet ResNet-18/34) and the iCaRL/LUCIR CIFAR ResNet-32; conv
weights use kaiming-normal fan_out, BN starts at (1, 0).
BN momentum 0.9 in Flax is PyTorch's 0.1; eps 1e-5.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

from cil_jax.models.precision import at_least_f32
from cil_jax.models import heads

import flax.linen as nn
import jax.numpy as jnp

conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def max_pool(x, window: int, stride: int, pad: int = 0):
  """nn.max_pool with 'VALID' windows after `pad` (-inf) on each side, as the maximum over the window's
  window² strided slices (a plain reshape + max for non-overlapping windows). Same values; the
  backward pass is a select per slice instead of XLA's select-and-scatter, which is ~20x slower on
  CPU. Ties share the gradient (select-and-scatter gives it to one input); after a ReLU the ties are
  zeros, whose ReLU gradient is 0 either way."""
  if pad:
    x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=-jnp.inf)
  b, h, w, c = x.shape
  oh, ow = (h - window) // stride + 1, (w - window) // stride + 1
  if window == stride:
    x = x[:, :oh * window, :ow * window]
    return jnp.max(x.reshape(b, oh, window, ow, window, c), axis=(2, 4))
  slices = [x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
            for i in range(window) for j in range(window)]
  return functools.reduce(jnp.maximum, slices)


def _bn(train: bool, dtype, name=None):
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype, name=name)


def _conv(features, kernel, strides=1, padding=None, dtype=jnp.float32, name=None):
  pad = kernel // 2 if padding is None else padding
  return nn.Conv(features, (kernel, kernel), (strides, strides), padding=[(pad, pad), (pad, pad)],
                 use_bias=False, kernel_init=conv_init, dtype=dtype, name=name)


class BasicBlock(nn.Module):
  features: int
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    """Returns the block output *before* its final ReLU; the caller applies it."""
    residual = x
    y = _conv(self.features, 3, self.strides, dtype=self.dtype, name='conv1')(x)
    y = nn.relu(_bn(train, self.dtype, 'bn1')(y))
    y = _conv(self.features, 3, dtype=self.dtype, name='conv2')(y)
    y = _bn(train, self.dtype, 'bn2')(y)
    if residual.shape != y.shape:
      residual = _conv(self.features, 1, self.strides, padding=0, dtype=self.dtype, name='down_conv')(x)
      residual = _bn(train, self.dtype, 'down_bn')(residual)
    return y + residual


class Model(nn.Module, kw_only=True):
  """What every model takes and returns (see the module doc): a model's __call__ ends with
  `return self.outputs(x, stages)`."""
  num_classes: int
  last_relu: bool = True
  head: str = 'linear'
  dtype: Any = jnp.float32

  @nn.nowrap
  def outputs(self, x, stages: list) -> dict:
    """Global average pooling to the features, the head on them."""
    features = at_least_f32(jnp.mean(x, axis=(1, 2)))  # bfloat16 compute: float32 features
    return {**heads.create(self.head, self.num_classes)(features), 'features': features, 'stages': stages}


class ResNet(Model):
  """stem='imagenet': 7x7/2 conv + 3x3/2 max-pool (torchvision); stem='cifar': 3x3/1 conv."""
  stage_sizes: Sequence[int]
  widths: Sequence[int]
  stem: str = 'imagenet'

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = x.astype(self.dtype)
    if self.stem == 'imagenet':
      x = _conv(self.widths[0], 7, 2, padding=3, dtype=self.dtype, name='conv1')(x)
      x = nn.relu(_bn(train, self.dtype, 'bn1')(x))
      x = max_pool(x, 3, 2, pad=1)
    else:
      x = _conv(self.widths[0], 3, dtype=self.dtype, name='conv1')(x)
      x = nn.relu(_bn(train, self.dtype, 'bn1')(x))
    stages = []
    for s, (n, w) in enumerate(zip(self.stage_sizes, self.widths)):
      for b in range(n):
        x = BasicBlock(w, 2 if (b == 0 and s > 0) else 1, self.dtype, name=f'layer{s + 1}_{b}')(x, train)
        last = s == len(self.stage_sizes) - 1 and b == n - 1
        if b == n - 1:
          stages.append(x)
        if not last or self.last_relu:
          x = nn.relu(x)
    return self.outputs(x, stages)


class SmallConvNet(Model):
  """A fast 3-stage conv net for small grey/colour images (the offline default)."""
  widths: Sequence[int] = (16, 32, 64)

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = x.astype(self.dtype)
    stages = []
    for s, w in enumerate(self.widths):
      x = _conv(w, 3, dtype=self.dtype, name=f'conv{s + 1}')(x)
      x = _bn(train, self.dtype, f'bn{s + 1}')(x)
      stages.append(x)
      if s < len(self.widths) - 1 or self.last_relu:
        x = nn.relu(x)
      if s < len(self.widths) - 1:
        x = max_pool(x, 2, 2)
    return self.outputs(x, stages)


MODELS = {
    'resnet18': functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), widths=(64, 128, 256, 512)),
    'resnet34': functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), widths=(64, 128, 256, 512)),
    'resnet32_cifar': functools.partial(ResNet, stage_sizes=(5, 5, 5), widths=(16, 32, 64), stem='cifar'),
    'resnet18_cifar': functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), widths=(64, 128, 256, 512),
                                        stem='cifar'),
    'resnet34_cifar': functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), widths=(64, 128, 256, 512),
                                        stem='cifar'),
    'small_convnet': SmallConvNet,
}


def create(name: str, num_classes: int, last_relu: bool = True, dtype: str = 'float32',
           head: str = 'linear', **options) -> nn.Module:
  # name, dtype and head were checked with the config (config_base.validate, models.NAMES / DTYPES / HEADS)
  return MODELS[name](num_classes=num_classes, last_relu=last_relu, head=head, dtype=jnp.dtype(dtype), **options)
