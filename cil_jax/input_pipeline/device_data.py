"""Device-resident training sets: the uint8 images stay on the accelerators and a train step gathers
and augments its batch there, so a step needs no host work beyond its slot indices.

For in-memory datasets (Fashion-MNIST, CIFAR, miniImageNet) with augment 'crop_flip' or 'none'.
Random choices come from per-example keys: fold_in(key(plan seed), position in the plan), the plan
seed being a function of (run seed, task, phase, epoch). So they are fixed per example, whatever
the chunking, the device count or where a resumed run starts. The draws differ from tf.data's
(another generator, the same distributions): dataset.on_device is part of the experiment.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.input_pipeline.streams import crop_padding

AUGMENTS = ('crop_flip', 'none')
CHOICES = ('auto', 'on', 'off')


def example_keys(seed, position):
  """Per-example PRNG keys [B] from the plan seed [B] and the positions [B] in the plan."""
  return jax.vmap(lambda s, p: jax.random.fold_in(jax.random.PRNGKey(s), p))(seed, position)


def crop_flip_params(keys, pad: int):
  """(row offsets, column offsets, flips) [B]: offsets uniform in [0, 2·pad], flips with p = 1/2."""
  def one(key):
    k_off, k_flip = jax.random.split(key)
    off = jax.random.randint(k_off, (2,), 0, 2 * pad + 1)
    return off[0], off[1], jax.random.bernoulli(k_flip)
  return jax.vmap(one)(keys)


def crop_flip(images, keys, pad: int):
  """CIFAR-style augmentation on the device: zero-pad by `pad`, crop back at the example's offsets,
  flip horizontally when its coin says so. images uint8 [B, H, W, C]."""
  _, h, w, c = images.shape
  rows, cols, flips = crop_flip_params(keys, pad)
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

  def one(image, r, q, flip):
    crop = jax.lax.dynamic_slice(image, (r, q, 0), (h, w, c))
    return jnp.where(flip, crop[:, ::-1], crop)
  return jax.vmap(one)(padded, rows, cols, flips)


class DeviceData:
  """One training split on the devices; `batch` runs inside the jitted step."""
  BATCH_KEYS = ('index', 'position', 'seed', 'replay')

  def __init__(self, images: np.ndarray, labels: np.ndarray, augment: str, image_size: int):
    if augment not in AUGMENTS:
      raise ValueError(f'dataset.augment={augment!r} has no on-device version ({AUGMENTS}); set '
                       'dataset.on_device=off (tf.data) or dataset.augment=crop_flip')
    self.images, self.labels = images, labels.astype(np.int32)
    self.augment, self.pad = augment, crop_padding(image_size)

  def arrays(self, replicated) -> dict:
    """The split on every device (replicated: any slot may be gathered on any device)."""
    limit = _bytes_limit()
    if limit and self.images.nbytes > limit // 2:   # the model, its optimizer and activations need the rest
      raise ValueError(f'the training images take {self.images.nbytes / 2**30:.1f} GiB, more than half of a '
                       f"device's {limit / 2**30:.1f} GiB; set dataset.on_device=off (tf.data from host memory)")
    return jax.device_put({'images': self.images, 'labels': self.labels}, replicated)

  def batch(self, data: dict, slots: dict) -> dict:
    images = data['images'][slots['index']]
    if self.augment == 'crop_flip':
      images = crop_flip(images, example_keys(slots['seed'], slots['position']), self.pad)
    return {'image': images, 'label': data['labels'][slots['index']], 'replay': slots['replay']}

  @staticmethod
  def slots(plan, start: int, process_index: int = 0, process_count: int = 1):
    """The host side: per step, this process's slice of the plan's slots (a few ints per example)."""
    per = plan.indices.shape[1] // process_count
    part = slice(process_index * per, (process_index + 1) * per)
    positions = np.arange(plan.indices.size, dtype=np.int32).reshape(plan.indices.shape)
    seed = np.full(per, plan.seed, np.uint32)
    for k in range(start, plan.steps):
      yield {'index': plan.indices[k, part].astype(np.int32), 'position': positions[k, part], 'seed': seed,
             'replay': plan.replay[k, part]}


def _bytes_limit() -> int | None:
  """A device's memory in bytes where the backend reports it (GPU, TPU); None on CPU."""
  stats = jax.local_devices()[0].memory_stats() or {}
  return stats.get('bytes_limit')


def resolve(choice: str, in_memory: bool, augment: str) -> bool:
  """dataset.on_device: 'auto' = on for in-memory images with an augmentation the device has."""
  if choice not in CHOICES:
    raise ValueError(f'dataset.on_device={choice!r} is unknown; choose one of {CHOICES}')
  if choice == 'off':
    return False
  usable = in_memory and augment in AUGMENTS
  if choice == 'on' and not usable:
    raise ValueError('dataset.on_device=on needs an in-memory dataset (Fashion-MNIST, CIFAR, miniImageNet) '
                     f'with dataset.augment in {AUGMENTS}; this one is '
                     f'{"in memory" if in_memory else "read from files"} with augment={augment!r}: use auto or off')
  return usable
