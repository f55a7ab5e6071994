"""ImageNet transforms against torchvision: RandomResizedCrop's sampler, Resize + CenterCrop geometry."""
import math

import numpy as np
import pytest
import tensorflow as tf

from cil_jax.input_pipeline import augment

# Two-sample KS with n = m = 10000 draws: the 5 % critical value is 0.019, and 0.03 is a p-value of
# about 3e-4 per statistic, so the 8 checks of a correct sampler pass with seeds other than the fixed
# ones too; the op this replaced scores about 0.12 on the area fraction.
N = 10000
KS_MAX = 0.03
SHAPES = [(256, 256), (375, 500)]


def _torchvision_get_params(rng, height, width, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
  """RandomResizedCrop.get_params, one window (i, j, h, w), numpy random numbers."""
  area = height * width
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target_area = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
    w = int(round(math.sqrt(target_area * aspect)))
    h = int(round(math.sqrt(target_area / aspect)))
    if 0 < w <= width and 0 < h <= height:
      return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
  in_ratio = width / height
  if in_ratio < min(ratio):
    w = width
    h = int(round(w / min(ratio)))
  elif in_ratio > max(ratio):
    h = height
    w = int(round(h * max(ratio)))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def _port_windows(height, width, n=N, seed=0):
  rng = np.random.default_rng(seed)
  return np.array([_torchvision_get_params(rng, height, width) for _ in range(n)])


def _bbox_op_window(height, width, seed):
  """The windows of tf.image.stateless_sample_distorted_bounding_box with the old settings."""
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.stack([height, width, 3]), bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]),
      seed=seed, area_range=augment.RRC_SCALE, aspect_ratio_range=augment.RRC_RATIO, max_attempts=10,
      use_image_if_no_bounding_boxes=True)
  return begin[0], begin[1], size[0], size[1]


def _tf_windows(window_fn, height, width, n=N, base=0):
  """n windows (i, j, h, w) for seeds (base, 0..n-1), in one graph."""
  seeds = tf.stack([tf.fill([n], tf.constant(base, tf.int64)), tf.range(n, dtype=tf.int64)], axis=1)

  @tf.function
  def draw(seeds):
    return tf.map_fn(lambda s: tf.stack(window_fn(tf.constant(height), tf.constant(width), s)), seeds,
                     fn_output_signature=tf.int32, parallel_iterations=64)
  return draw(seeds).numpy()


def _ks(a, b):
  """Two-sample Kolmogorov-Smirnov statistic (ties allowed)."""
  a, b = np.sort(a), np.sort(b)
  x = np.concatenate([a, b])
  return np.abs(np.searchsorted(a, x, 'right') / len(a) - np.searchsorted(b, x, 'right') / len(b)).max()


def _stats(windows, height, width):
  """KS-tested features: area fraction, log aspect ratio, relative centre of the window."""
  i, j, h, w = windows.T.astype(np.float64)
  return {'area': h * w / (height * width), 'log_ratio': np.log(w / h),
          'centre_y': (i + h / 2) / height, 'centre_x': (j + w / 2) / width}


def _ks_all(windows, height, width):
  ours, port = _stats(windows, height, width), _stats(_port_windows(height, width), height, width)
  return {k: _ks(ours[k], port[k]) for k in ours}


@pytest.mark.parametrize('height,width', SHAPES)
def test_window_distribution_matches_torchvision(height, width):
  ks = _ks_all(_tf_windows(augment.random_resized_crop_window, height, width), height, width)
  assert max(ks.values()) < KS_MAX, ks


@pytest.mark.parametrize('height,width', SHAPES)
def test_ks_bound_rejects_the_tf_bounding_box_op(height, width):
  # the op this sampler replaced: uniform height and ratio, a 0.1 coverage floor, clamping
  ks = _ks_all(_tf_windows(_bbox_op_window, height, width), height, width)
  assert ks['area'] > 3 * KS_MAX, ks


@pytest.mark.parametrize('height,width', [(256, 256), (375, 500), (500, 375), (4, 4), (5, 9), (1, 1), (30, 1)])
def test_windows_lie_inside_the_image(height, width):
  i, j, h, w = _tf_windows(augment.random_resized_crop_window, height, width, n=1000).T
  assert (h > 0).all() and (w > 0).all() and (i >= 0).all() and (j >= 0).all()
  assert (i + h <= height).all() and (j + w <= width).all()
  if (height, width) == (4, 4):  # the top/left offsets reach both ends of their range
    for off, size in ((i, h), (j, w)):
      assert (off[size == 2] == 0).any() and (off[size == 2] == 2).any()


@pytest.mark.parametrize('height,width,window', [
    (10, 1000, (0, 493, 10, 13)),   # too wide for any try: full height, width = round(10 * 4/3)
    (1000, 10, (493, 0, 13, 10)),   # too tall: full width, height = round(10 / (3/4))
])
def test_fallback_is_the_ratio_clamped_centre_crop(height, width, window):
  assert _torchvision_get_params(np.random.default_rng(0), height, width) == window
  windows = _tf_windows(augment.random_resized_crop_window, height, width, n=50)
  np.testing.assert_array_equal(windows, np.tile(window, (50, 1)))


def _position_image(height, width):
  """uint8 pixels that encode their position, so a one-pixel shift or a wrong size shows."""
  r, c = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  return np.stack([c % 256, r % 256, (7 * c + 13 * r) % 256], axis=-1).astype(np.uint8)


def _resized(image, hw):
  return augment._to_uint8(tf.image.resize(image, hw, method='bilinear', antialias=True)).numpy()


def test_transform_crops_the_sampled_window_and_flips():
  image = _position_image(10, 1000)  # always the fallback window rows 0:10, columns 493:506
  crop = _resized(image[0:10, 493:506], [16, 16])
  outs = [augment.random_resized_crop_flip(tf.io.encode_png(image), tf.constant([3, k], tf.int64), 16).numpy()
          for k in range(8)]
  flipped = [np.array_equal(o, crop[:, ::-1]) for o in outs]
  assert all(np.array_equal(o, crop) or f for o, f in zip(outs, flipped))
  assert any(flipped) and not all(flipped)


def test_same_seed_same_crop_and_seeds_differ():
  fn = augment.random_resized_crop_window
  seed = tf.constant([7, 11], tf.int64)
  a = [int(v) for v in fn(tf.constant(375), tf.constant(500), seed)]
  b = [int(v) for v in fn(tf.constant(375), tf.constant(500), seed)]
  assert a == b
  windows = _tf_windows(fn, 375, 500, n=20, base=7)
  assert len({tuple(w) for w in windows}) == 20
  image = tf.io.encode_png(_position_image(60, 80))
  x = augment.random_resized_crop_flip(image, seed, 32).numpy()
  assert x.shape == (32, 32, 3) and x.dtype == np.uint8
  np.testing.assert_array_equal(x, augment.random_resized_crop_flip(image, seed, 32).numpy())
  assert not np.array_equal(x, augment.random_resized_crop_flip(image, seed + 1, 32).numpy())


# torchvision Resize(s) + CenterCrop(size), s = 256 for 224 and round(size * 256 / 224) otherwise
# (37 for 32), worked by hand: the long side is int(s * long / short), the offsets round(margin / 2)
# with ties to even.
@pytest.mark.parametrize('height,width,size,resized,top,left', [
    (375, 500, 224, (256, 341), 16, 58),   # 341.33 -> 341; left margin 117 / 2 = 58.5 -> 58
    (500, 375, 224, (341, 256), 58, 16),
    (256, 343, 224, (256, 343), 16, 60),   # no resize; 119 / 2 = 59.5 -> 60 (not floor's 59)
    (300, 500, 224, (256, 426), 16, 101),  # 426.67 truncated to 426 (not rounded to 427)
    (74, 87, 32, (37, 43), 2, 6),          # 43.5 -> 43; 5 / 2 = 2.5 -> 2, 11 / 2 = 5.5 -> 6
    (10, 14, 32, (37, 51), 2, 10),         # smaller than the crop: upsized; 51.8 -> 51, 9.5 -> 10
    (100, 150, 224, (256, 384), 16, 80),   # smaller than the crop
    (20, 20, 32, (37, 37), 2, 2),
])
def test_resize_center_crop_matches_torchvision_geometry(height, width, size, resized, top, left):
  image = _position_image(height, width)
  expected = _resized(image, list(resized))[top:top + size, left:left + size]
  out = augment.resize_center_crop(tf.io.encode_png(image), size).numpy()
  assert out.shape == (size, size, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out, expected)
  if resized == (height, width):  # no resize: the crop is the image's own pixels
    np.testing.assert_array_equal(out, image[top:top + size, left:left + size])


def test_facils_cifar_transform_is_the_window_of_the_padded_image():
  """pad_rrc_flip: each image of the batch is padded by 4 (zeros), cropped at the torchvision window
  its own seed draws on the 40 x 40 padded image, resized back to 32, maybe flipped; deterministic."""
  images = np.stack([_position_image(32, 32), _position_image(32, 32)[::-1]])
  seed = tf.constant([5, 9], tf.int64)
  out = augment.pad_random_resized_crop_flip_batch(tf.constant(images), seed, pad=4).numpy()
  assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out, augment.pad_random_resized_crop_flip_batch(tf.constant(images), seed, 4).numpy())
  seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  for i in range(2):
    s_box, _ = tf.unstack(tf.random.experimental.stateless_split(seeds[i], 2))
    top, left, h, w = (int(v) for v in augment.random_resized_crop_window(40, 40, s_box))
    padded = np.pad(images[i], [(4, 4), (4, 4), (0, 0)])
    crop = _resized(padded[top:top + h, left:left + w], [32, 32])
    assert np.array_equal(out[i], crop) or np.array_equal(out[i], crop[:, ::-1])
