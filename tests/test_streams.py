"""Streams are deterministic for (seed, task, phase, epoch) and resume at any step."""
import numpy as np

from cil_jax.input_pipeline import image_folders, sources, streams
from cil_jax.input_pipeline.base import Split


def _split(n=120):
  rng = np.random.RandomState(0)
  return Split(labels=np.arange(n) % 6, images=rng.randint(0, 255, (n, 28, 28, 1)).astype(np.uint8))


def _batches(loader, plan, start=0):
  return list(loader.train(plan, start).as_numpy_iterator())


def test_plans_are_deterministic_and_seed_dependent():
  new, mem = np.arange(0, 90), np.arange(90, 110)
  a = streams.make_plan('new+replay', new, mem, 16, 4, seed=5)
  b = streams.make_plan('new+replay', new, mem, 16, 4, seed=5)
  c = streams.make_plan('new+replay', new, mem, 16, 4, seed=6)
  np.testing.assert_array_equal(a.indices, b.indices)
  assert not np.array_equal(a.indices, c.indices)
  assert a.indices.shape == (90 // 16, 20)  # drop-last over the new data; 4 replay slots per step
  assert np.isin(a.indices[:, :16], new).all() and np.isin(a.indices[:, 16:], mem).all()
  np.testing.assert_array_equal(a.replay[:, 16:], True)
  np.testing.assert_array_equal(a.replay[:, :16], False)


def test_mixed_stream_holds_new_data_and_exemplars():
  new, mem = np.arange(0, 50), np.arange(100, 130)
  p = streams.make_plan('mixed', new, mem, 16, 0, seed=1)
  flat = p.indices.reshape(-1)
  assert len(set(flat)) == len(flat) == 80  # every example once (drop-last: 80 = 5 * 16)
  np.testing.assert_array_equal(p.replay.reshape(-1), np.isin(flat, mem))


def test_stream_resumed_at_step_k_equals_the_tail_of_the_full_stream():
  split = _split()
  loader = streams.ImageLoader(split, split.labels, 'crop_flip', 28)
  plan = streams.make_plan('new+replay', np.arange(100), np.arange(100, 120), 16, 4, seed=3)
  full = _batches(loader, plan)
  again = _batches(loader, plan)
  tail = _batches(loader, plan, start=3)
  assert len(full) == plan.steps and len(tail) == plan.steps - 3
  for x, y in zip(full, again):
    np.testing.assert_array_equal(x['image'], y['image'])
  for x, y in zip(full[3:], tail):
    for key in ('image', 'label', 'replay'):
      np.testing.assert_array_equal(x[key], y[key])
  # augmentation really changes images, and differs between epochs (seeds)
  raw = split.images[plan.indices[0]]
  assert not np.array_equal(full[0]['image'], raw)
  other = _batches(loader, streams.make_plan('new+replay', np.arange(100), np.arange(100, 120), 16, 4, seed=4))
  assert not np.array_equal(full[0]['image'], other[0]['image'])


def test_file_stream_resume_and_eval(imagenet_dir):
  import os
  train, classes = image_folders.read_split(os.path.join(imagenet_dir, 'train'))
  loader = streams.ImageLoader(train, train.labels, 'imagenet', 32)
  plan = streams.make_plan('mixed', np.arange(20), np.arange(20, 30), 8, 0, seed=0)
  full, tail = _batches(loader, plan), _batches(loader, plan, start=1)
  assert full[0]['image'].shape == (8, 32, 32, 3) and full[0]['image'].dtype == np.uint8
  for x, y in zip(full[1:], tail):
    np.testing.assert_array_equal(x['image'], y['image'])
  ev_plan, valid = streams.eval_plan(np.arange(11), 4)
  ev = list(streams.ImageLoader(train, train.labels, 'none', 32).eval(ev_plan, valid).as_numpy_iterator())
  assert len(ev) == 3 and ev[-1]['valid'].tolist() == [True, True, True, False]


def test_imagenet_from_tfds_random_access_mock(tmp_path):
  import ml_collections
  import tensorflow_datasets as tfds
  cfg = ml_collections.ConfigDict(dict(name='imagenet', root='', data_dir='', num_classes=1000, image_size=32,
                                       augment='', max_per_class=0))
  with tfds.testing.mock_data(num_examples=24):
    src = sources.load(cfg, cache_dir=str(tmp_path))
    assert len(src.train) == 24 and src.train.records is not None
    assert list(tmp_path.glob('imagenet2012_train_labels.npy'))  # the label scan is cached
    loader = streams.ImageLoader(src.train, src.train.labels, src.augment, 32)
    plan = streams.make_plan('new', np.arange(24), np.arange(0), 8, 0, seed=0)
    batches = _batches(loader, plan)
  assert len(batches) == 3 and batches[0]['image'].shape == (8, 32, 32, 3)
  np.testing.assert_array_equal(batches[1]['label'], src.train.labels[plan.indices[1]])
