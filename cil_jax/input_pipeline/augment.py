"""Image decoding and augmentation as tf ops with stateless, per-example seeds.

Every random choice takes an explicit seed, so an epoch's batches are a pure function of
(run seed, task, phase, epoch) and a resumed run sees exactly the batches it would have seen.
Outputs are uint8; normalisation happens on the accelerator (4x less host-to-device traffic).
"""
from __future__ import annotations

import math

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


def pad_random_resized_crop_flip_batch(images, seed, pad: int):
  """FACIL's CIFAR train transform over a batch [B, H, W, C]: zero-pad by `pad`, torchvision
  RandomResizedCrop back to H x W (scale (0.08, 1), ratio (3/4, 4/3), bilinear), horizontal flip.
  Each image draws from its own seed split off the batch's."""
  size = images.shape[1]
  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
  side = size + 2 * pad
  seeds = tf.random.experimental.stateless_split(seed, tf.shape(images)[0])

  def one(args):
    image, s = args
    s_box, s_flip = _seeds(s, 2)
    top, left, h, w = random_resized_crop_window(side, side, s_box)
    out = tf.image.resize(image[top:top + h, left:left + w], [size, size], method='bilinear', antialias=True)
    return _to_uint8(tf.image.stateless_random_flip_left_right(out, seed=s_flip))
  return tf.map_fn(one, (padded, seeds), fn_output_signature=tf.uint8)


def _to_uint8(image):
  return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def random_resized_crop_window(height, width, seed, scale=RRC_SCALE, ratio=RRC_RATIO):
  """torchvision RandomResizedCrop.get_params as tf ops: the window (top, left, h, w), int32 scalars.

  The 10 tries are drawn at once and the first that fits wins; if none fits, the ratio-clamped
  centre crop. A pure function of (height, width, seed).
  """
  s_area, s_ratio, s_pos = _seeds(seed, 3)
  height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
  hf, wf = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
  # area uniform in scale, aspect log-uniform in ratio (tf's bounding-box op draws the height and
  # the ratio uniformly, which gives smaller crops)
  area = hf * wf * tf.random.stateless_uniform([10], s_area, scale[0], scale[1], tf.float64)
  aspect = tf.exp(tf.random.stateless_uniform([10], s_ratio, math.log(ratio[0]), math.log(ratio[1]),
                                              tf.float64))
  ws = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)  # tf.round ties to even, as Python's round
  hs = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
  fits = (ws > 0) & (ws <= width) & (hs > 0) & (hs <= height)
  first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
  in_ratio = wf / hf
  fallback_h = tf.where(in_ratio < ratio[0], tf.cast(tf.round(wf / ratio[0]), tf.int32), height)
  fallback_w = tf.where(in_ratio > ratio[1], tf.cast(tf.round(hf * ratio[1]), tf.int32), width)
  found = tf.reduce_any(fits)
  h = tf.where(found, hs[first], fallback_h)
  w = tf.where(found, ws[first], fallback_w)
  # uniform integer offsets in [0, H - h] x [0, W - w]; the fallback is centred
  room = tf.stack([height - h, width - w])
  u = tf.random.stateless_uniform([2], s_pos, dtype=tf.float64)
  offsets = tf.minimum(tf.cast(tf.floor(u * tf.cast(room + 1, tf.float64)), tf.int32), room)
  offsets = tf.where(found, offsets, room // 2)
  return offsets[0], offsets[1], h, w


def random_resized_crop_flip(encoded, seed, size: int):
  """torchvision RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3)) + horizontal flip."""
  s_box, s_flip = _seeds(seed, 2)
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  shape = tf.shape(image)
  top, left, h, w = random_resized_crop_window(shape[0], shape[1], s_box)
  image = image[top:top + h, left:left + w]
  image = tf.image.resize(image, [size, size], method='bilinear', antialias=True)
  image = tf.image.stateless_random_flip_left_right(image, seed=s_flip)
  return _to_uint8(image)


def resize_center_crop(encoded, size: int):
  """torchvision Resize(size * 256 / 224) + CenterCrop(size): the ImageNet test transform.

  As torchvision: the shorter side becomes the resize side (images smaller than the crop are
  upsized), the longer one int(resize * long / short), and the crop offsets round half to even.
  """
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  resize = int(round(size * 256 / 224))
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  short = tf.minimum(h, w)
  # integer floor division: exactly torchvision's truncation, and the shorter side gets `resize`
  nh, nw = resize * h // short, resize * w // short
  image = tf.image.resize(image, [nh, nw], method='bilinear', antialias=True)
  top = tf.cast(tf.round(tf.cast(nh - size, tf.float32) / 2), tf.int32)
  left = tf.cast(tf.round(tf.cast(nw - size, tf.float32) / 2), tf.int32)
  return _to_uint8(image[top:top + size, left:left + size])
