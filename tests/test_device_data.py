"""Device-resident training data: the on-device crop/flip is the tf.data one's distribution, fixed
per (plan seed, position), and a device-resident run trains and resumes like any other."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cil_jax.input_pipeline import device_data
from cil_jax.input_pipeline import streams


def _numpy_crop_flip(image, row, col, flip, pad):
  h, w = image.shape[:2]
  padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
  crop = padded[row:row + h, col:col + w]
  return crop[:, ::-1] if flip else crop


def test_crop_flip_is_the_crop_and_flip_its_parameters_name():
  images = np.random.RandomState(0).randint(0, 256, (16, 8, 10, 3)).astype(np.uint8)
  keys = device_data.example_keys(jnp.full(16, 7, jnp.uint32), jnp.arange(16))
  rows, cols, flips = (np.asarray(x) for x in device_data.crop_flip_params(keys, 2))
  out = np.asarray(device_data.crop_flip(jnp.asarray(images), keys, 2))
  assert out.dtype == np.uint8 and out.shape == images.shape
  for i in range(16):
    np.testing.assert_array_equal(out[i], _numpy_crop_flip(images[i], rows[i], cols[i], flips[i], 2))


def test_offsets_and_flips_are_uniform_and_fixed_per_seed_and_position():
  n, pad = 20000, 4
  keys = device_data.example_keys(jnp.full(n, 3, jnp.uint32), jnp.arange(n))
  rows, cols, flips = (np.asarray(x) for x in device_data.crop_flip_params(keys, pad))
  for offsets in (rows, cols):      # uniform over 0..2·pad, as tf.random.stateless_uniform(maxval=2p+1)
    counts = np.bincount(offsets, minlength=2 * pad + 1)
    assert len(counts) == 2 * pad + 1
    expected = n / (2 * pad + 1)
    assert np.sum((counts - expected) ** 2 / expected) < 26.1    # chi-square, 8 dof, p = 0.001
  assert abs(flips.mean() - 0.5) < 0.015 and abs(np.corrcoef(rows, cols)[0, 1]) < 0.03
  again = device_data.crop_flip_params(device_data.example_keys(jnp.full(5, 3, jnp.uint32), jnp.arange(5)), pad)
  np.testing.assert_array_equal(np.asarray(again[0]), rows[:5])         # same (seed, position): same draw
  other = device_data.crop_flip_params(device_data.example_keys(jnp.full(n, 4, jnp.uint32), jnp.arange(n)), pad)
  assert np.mean(np.asarray(other[0]) == rows) < 0.2                   # another epoch's seed: other draws


def test_slots_follow_the_plan_and_split_over_processes():
  plan = streams.make_plan('new+replay', np.arange(40), np.arange(40, 50), 8, 4, seed=11)
  slots = list(device_data.DeviceData.slots(plan, 2))
  assert len(slots) == plan.steps - 2
  np.testing.assert_array_equal(slots[0]['index'], plan.indices[2])
  np.testing.assert_array_equal(slots[0]['replay'], plan.replay[2])
  np.testing.assert_array_equal(slots[0]['position'], np.arange(24, 36))   # positions in the whole plan
  assert (slots[0]['seed'] == 11).all()
  half = next(device_data.DeviceData.slots(plan, 2, process_index=1, process_count=2))
  np.testing.assert_array_equal(half['index'], plan.indices[2, 6:])


def test_the_choice_and_its_errors():
  assert device_data.resolve('auto', True, 'crop_flip') and device_data.resolve('on', True, 'none')
  assert not device_data.resolve('auto', False, 'imagenet') and not device_data.resolve('auto', True, 'pad_rrc_flip')
  assert not device_data.resolve('off', True, 'crop_flip')
  with pytest.raises(ValueError, match='on_device=on needs an in-memory dataset'):
    device_data.resolve('on', False, 'imagenet')
  with pytest.raises(ValueError, match='has no on-device version'):
    device_data.DeviceData(np.zeros((2, 4, 4, 1), np.uint8), np.zeros(2), 'crop_flip_rotate', 28)


def test_a_dataset_too_large_for_the_devices_is_one_line(monkeypatch):
  monkeypatch.setattr(device_data, '_bytes_limit', lambda: 2 ** 20)
  data = device_data.DeviceData(np.zeros((600, 32, 32, 3), np.uint8), np.zeros(600), 'crop_flip', 32)   # 1.8 MB
  with pytest.raises(ValueError, match=r"more than half of a device's 0.0 GiB; set dataset.on_device=off"):
    data.arrays(None)


def test_the_step_gathers_and_augments_on_the_device():
  from cil_jax.methods.api import Classes, Step
  from cil_jax.methods.shared import seen_cross_entropy
  from cil_jax.input_pipeline.scenario import Tasks
  from cil_jax.engine.step import make_train_step
  from helpers import train_setup
  from cil_jax.engine import parallel
  s = train_setup(Step(seen_cross_entropy))
  rng = np.random.RandomState(0)
  images, labels = rng.randint(0, 256, (32, 28, 28, 1)).astype(np.uint8), rng.randint(0, 7, 32)
  data = device_data.DeviceData(images, labels, 'none', 28)
  step = make_train_step(s.model, Step(seen_cross_entropy), s.tx, s.normalize, s.replicated, s.sharded,
                         on_device=data)
  idx = np.arange(8, 16, dtype=np.int32)
  slots = {'index': idx, 'position': np.arange(8, dtype=np.int32), 'seed': np.zeros(8, np.uint32),
           'replay': np.zeros(8, bool)}
  classes = Classes.for_task(Tasks(9, 3, 2), 2)
  state, m = step(jax.tree.map(jnp.copy, s.state), None, parallel.to_global(slots, s.sharded), classes,
                  jnp.float32(0.1), {}, data.arrays(s.replicated))
  host = {'image': images[idx], 'label': labels[idx].astype(np.int32), 'replay': np.zeros(8, bool)}
  ref, m_ref = s.step(jax.tree.map(jnp.copy, s.state), None, parallel.to_global(host, s.sharded), classes,
                      jnp.float32(0.1), {})
  np.testing.assert_allclose(float(m['loss']), float(m_ref['loss']), rtol=1e-6)   # the same images and labels
