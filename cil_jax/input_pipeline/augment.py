"""Image decoding and augmentation as tf ops with stateless, per-example seeds.

Every random choice takes an explicit seed, so an epoch's batches are a pure function of
(run seed, task, phase, epoch) and a resumed run sees exactly the batches it would have seen.
Outputs are uint8; normalisation happens on the accelerator (4x less host-to-device traffic).
"""
from __future__ import annotations

import tensorflow as tf

RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3 / 4, 4 / 3)


def _seeds(seed, n):
  return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def crop_flip(image, seed, pad: int):
  """CIFAR-style: zero-pad by `pad`, random crop back to the original size, random horizontal flip."""
  s_crop, s_flip = _seeds(seed, 2)
  shape = tf.shape(image)
  padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
  image = tf.image.stateless_random_crop(padded, shape, seed=s_crop)
  return tf.image.stateless_random_flip_left_right(image, seed=s_flip)


def crop_flip_batch(images, seed, pad: int):
  """crop_flip over a whole batch [B, H, W, C] at once (in-memory datasets: no per-image ops)."""
  s_off, s_flip = _seeds(seed, 2)
  b, h, w = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
  off = tf.random.stateless_uniform([b, 2], s_off, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
  rows = off[:, :1] + tf.range(h)[None]                         # [B, H]
  cols = off[:, 1:] + tf.range(w)[None]                         # [B, W]
  out = tf.gather(padded, rows, axis=1, batch_dims=1)           # [B, H, W + 2p, C]
  out = tf.gather(out, cols, axis=2, batch_dims=1)              # [B, H, W, C]
  flip = tf.random.stateless_uniform([b], s_flip) < 0.5
  return tf.where(flip[:, None, None, None], tf.reverse(out, axis=[2]), out)


def _to_uint8(image):
  return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def random_resized_crop_flip(encoded, seed, size: int):
  """torchvision RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3)) + horizontal flip.

  When 10 attempts find no window, tf falls back to the whole image (torchvision falls back to a
  ratio-clamped centre crop): a documented minor difference.
  """
  s_box, s_flip = _seeds(seed, 2)
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image), bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]), seed=s_box,
      area_range=RRC_SCALE, aspect_ratio_range=RRC_RATIO, max_attempts=10,
      use_image_if_no_bounding_boxes=True)
  image = tf.slice(image, begin, crop_size)
  image = tf.image.resize(image, [size, size], method='bilinear', antialias=True)
  image = tf.image.stateless_random_flip_left_right(image, seed=s_flip)
  return _to_uint8(image)


def resize_center_crop(encoded, size: int):
  """torchvision Resize(size * 256 / 224) + CenterCrop(size): the ImageNet test transform."""
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  resize = int(round(size * 256 / 224))
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  scale = tf.cast(resize, tf.float32) / tf.cast(tf.minimum(h, w), tf.float32)
  nh = tf.cast(tf.round(tf.cast(h, tf.float32) * scale), tf.int32)
  nw = tf.cast(tf.round(tf.cast(w, tf.float32) * scale), tf.int32)
  image = tf.image.resize(image, [tf.maximum(nh, resize), tf.maximum(nw, resize)], method='bilinear',
                          antialias=True)
  top = (tf.shape(image)[0] - size) // 2
  left = (tf.shape(image)[1] - size) // 2
  return _to_uint8(image[top:top + size, left:left + size])
