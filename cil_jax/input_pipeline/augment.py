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
ROTATE_DEGREES = 15.0  # torchvision RandomRotation(15) of crop_flip_rotate


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


def rotate_batch(images, angles):
  """Nearest-neighbour rotation of [B, H, W, C] by angles [B] (degrees, counter-clockwise for
  positive angles) about the image centre, same size, zero fill: PIL's
  Image.rotate(angle, resample=NEAREST), which is torchvision's F.rotate on PIL images.

  PIL maps each output pixel centre (x + 0.5, y + 0.5) back through the rotation about (W/2, H/2)
  and takes the input pixel whose square [i, i + 1) holds it (floor). In pixel-index coordinates
  (centres at integers, as ImageProjectiveTransformV3) that is the rotation about ((W-1)/2, (H-1)/2)
  and rounding, which the op's NEAREST does; only points within float32 error of a .5 boundary can
  land on a neighbouring pixel (measured on 32 x 32 and 28 x 28: in about 10 % of the angles in
  [-15, 15], at most 0.8 % of the pixels; 0, 90, 180 and 270 degrees are exact).
  """
  images = tf.convert_to_tensor(images)
  shape = tf.shape(images)
  h, w = tf.cast(shape[1], tf.float64), tf.cast(shape[2], tf.float64)
  theta = tf.cast(angles, tf.float64) * (math.pi / 180)
  cos, sin = tf.cos(theta), tf.sin(theta)
  cx, cy = (w - 1) / 2, (h - 1) / 2
  zero = tf.zeros_like(cos)
  # output (x, y) -> input (cos (x - cx) - sin (y - cy) + cx, sin (x - cx) + cos (y - cy) + cy)
  transforms = tf.stack([cos, -sin, cx - cos * cx + sin * cy,
                         sin, cos, cy - sin * cx - cos * cy, zero, zero], axis=1)
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=images, transforms=tf.cast(transforms, tf.float32), output_shape=shape[1:3],
      fill_value=tf.constant(0, tf.float32), interpolation='NEAREST', fill_mode='CONSTANT')
  out.set_shape(images.shape)
  return out


def crop_flip_rotate_params(seeds, pad: int, degrees: float = ROTATE_DEGREES):
  """The random draws of crop_flip_rotate for per-example seeds [B, 2]: crop offsets (row, column)
  [B, 2] int32 uniform in [0, 2 pad], flip [B] bool (probability 1/2), rotation angle [B] float32
  uniform in [-degrees, degrees). Each example's draws are a pure function of its own seed: one
  stateless draw of 4 uniforms (one op per example: stateless ops take one seed, so this loops)."""
  def one(s):
    u = tf.random.stateless_uniform([4], s, dtype=tf.float64)
    off = tf.minimum(tf.cast(tf.floor(u[:2] * (2 * pad + 1)), tf.int32), 2 * pad)
    return off, u[2] < 0.5, tf.cast(degrees * (2 * u[3] - 1), tf.float32)
  return tf.map_fn(one, tf.convert_to_tensor(seeds, tf.int64),
                   fn_output_signature=(tf.int32, tf.bool, tf.float32))


def _crop_flip_rotate(images, seeds, pad: int, degrees: float):
  off, flip, angle = crop_flip_rotate_params(seeds, pad, degrees)
  images = tf.convert_to_tensor(images)
  h, w = tf.shape(images)[1], tf.shape(images)[2]
  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
  rows = off[:, :1] + tf.range(h)[None]                         # [B, H]
  cols = off[:, 1:] + tf.range(w)[None]                         # [B, W]
  out = tf.gather(padded, rows, axis=1, batch_dims=1)           # [B, H, W + 2p, C]
  out = tf.gather(out, cols, axis=2, batch_dims=1)              # [B, H, W, C]
  out = tf.where(flip[:, None, None, None], tf.reverse(out, axis=[2]), out)
  return rotate_batch(out, angle)


def crop_flip_rotate_batch(images, seed, pad: int, degrees: float = ROTATE_DEGREES):
  """MGRB's CIFAR train transform over a batch [B, H, W, C]: torchvision RandomCrop(H, padding=pad)
  (zeros), RandomHorizontalFlip(), RandomRotation(degrees) (nearest, zero fill), in that order.
  Example i draws from stateless_split(seed, B)[i] and equals crop_flip_rotate(images[i], that seed)."""
  seeds = tf.random.experimental.stateless_split(seed, tf.shape(images)[0])
  return _crop_flip_rotate(images, seeds, pad, degrees)


def crop_flip_rotate(image, seed, pad: int, degrees: float = ROTATE_DEGREES):
  """crop_flip_rotate_batch's transform of one image [H, W, C] with its own seed (decoded files)."""
  return _crop_flip_rotate(tf.convert_to_tensor(image)[None], tf.convert_to_tensor(seed, tf.int64)[None],
                           pad, degrees)[0]


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
  # round half to even, then clamp to [0, 255]: one op fewer than clip + cast (0.15 ms of a 224 x 224 image)
  return tf.saturate_cast(tf.round(image), tf.uint8)


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


def decode_window(encoded, window):
  """A window of an encoded image as uint8 RGB: `window(height, width)` gives (top, left, h, w) from
  the image's size. A JPEG's size comes from its header and only the window is decoded
  (libjpeg-turbo skips the rest: a random-resized crop covers 54 % of the image on average); other
  formats decode once, whole. Equal to decode-then-crop except where the JPEG subsamples chroma
  (4:2:0, most photos): the window's outermost rows and columns, whose chroma is upsampled without
  the neighbours outside the window, may differ (measured on 600 windows of 100 x 75 and 500 x 375
  quality-90 files: by up to 14 levels, on 0.7 % of a window's pixels on average; every pixel inside
  that 1-pixel border is exact)."""
  is_jpeg = tf.io.is_jpeg(encoded)

  def header():    # the size alone; no pixels yet
    return tf.image.extract_jpeg_shape(encoded)[:2], tf.zeros([0, 0, 3], tf.uint8)

  def decoded():
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.shape(image)[:2], image
  shape, whole = tf.cond(is_jpeg, header, decoded)
  top, left, h, w = window(shape[0], shape[1])   # outside the conds: its many small ops run inline
  return tf.cond(is_jpeg, lambda: tf.io.decode_and_crop_jpeg(encoded, tf.stack([top, left, h, w]), channels=3),
                 lambda: whole[top:top + h, left:left + w])


def random_resized_crop_flip(encoded, seed, size: int):
  """torchvision RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3)) + horizontal flip, the
  window drawn from the image's size and decoded alone (decode_window)."""
  s_box, s_flip = _seeds(seed, 2)
  crop = decode_window(encoded, lambda height, width: random_resized_crop_window(height, width, s_box))
  image = resize_bilinear(crop, size, tf.shape(crop)[0], tf.shape(crop)[1])
  return tf.image.stateless_random_flip_left_right(image, seed=s_flip)


def resize_bilinear(image, size: int, h, w):
  """PIL's bilinear resize (torchvision's on PIL images: a triangle filter widened by the scale when
  shrinking) of an h x w image to size x size, uint8. Antialiasing acts only when an axis shrinks; a
  window that grows on both axes takes the plain bilinear kernel, equal to it within float rounding
  and 3x cheaper."""
  def shrink():
    return tf.image.resize(image, [size, size], method='bilinear', antialias=True)

  def grow():
    return tf.image.resize(image, [size, size], method='bilinear', antialias=False)
  return _to_uint8(tf.cond((h <= size) & (w <= size), grow, shrink))


def random_resized_crop_flip_rotate(encoded, seed, size: int, degrees: float = ROTATE_DEGREES):
  """MGRB's ImageNet-100 train transform: RandomResizedCrop + flip (random_resized_crop_flip), then
  RandomRotation(degrees) (nearest, zero fill; rotate_batch), in torchvision's order."""
  s_crop, s_angle = _seeds(seed, 2)
  image = random_resized_crop_flip(encoded, s_crop, size)
  angle = degrees * (2 * tf.random.stateless_uniform([], s_angle, dtype=tf.float64) - 1)
  return rotate_batch(image[None], tf.cast(angle, tf.float32)[None])[0]


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
