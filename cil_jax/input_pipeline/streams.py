"""Streams: which examples each step sees (a numpy *plan*) and how they are loaded.

A plan is an int array [steps, global_batch] of training-set indices plus a bool array marking
replay slots. Plans are pure functions of (seed, task, phase, epoch), so resuming at step k is
`plan[k:]`. Each process loads only its slice of every global batch (multi-host).

Files, records and augmented in-memory batches are loaded by tf.data; unaugmented in-memory batches
(evaluation, host-side passes, validation) are gathered by numpy, so a run on device-resident data
needs no TensorFlow at all (the accelerator machines may have none).
"""
from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

from cil_jax.errors import UserError
from cil_jax.input_pipeline.base import Split
from cil_jax.native_output import native_output_silenced


_tf_ready = False


def tensorflow():
  """TensorFlow, imported on first use with the accelerators hidden from it (they belong to JAX)."""
  global _tf_ready
  # TF's native warnings (e.g. 'Local rendezvous is aborting' for every image a decoder rejects) say
  # nothing the run's own error line does not; its errors still show. 1 is what importing JAX sets
  # where the variable is unset; TF_CPP_MIN_LOG_LEVEL=0 restores them.
  if os.environ.get('TF_CPP_MIN_LOG_LEVEL', '1') == '1':
    os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'
  try:
    with native_output_silenced(2):  # its native start-up banners, written before any log setting applies
      import tensorflow as tf
      if not _tf_ready:
        tf.config.set_visible_devices([], 'GPU')
        _tf_ready = True
  except ImportError as e:
    raise MissingTensorFlow('this dataset or augmentation is loaded with tf.data, and TensorFlow is not '
                            'installed: pip install -e . (in-memory datasets kept on the devices, '
                            'dataset.on_device, train without it)') from e
  return tf


class MissingTensorFlow(UserError, ImportError):
  """A pipeline needs tf.data and TensorFlow is not installed."""


def is_data_error(error: BaseException) -> bool:
  """Whether `error` is tf.data failing to read or decode (never true when TensorFlow is not loaded)."""
  tf = sys.modules.get('tensorflow')
  return tf is not None and hasattr(tf, 'errors') and isinstance(error, tf.errors.OpError)


# Stream kinds a method may ask for.
STREAM_KINDS = ('new', 'mixed', 'new+replay', 'class_balanced')


@dataclasses.dataclass
class Plan:
  indices: np.ndarray  # int64 [steps, batch]
  replay: np.ndarray   # bool  [steps, batch]
  seed: int            # base seed of the per-example augmentation seeds

  @property
  def steps(self) -> int:
    return self.indices.shape[0]


def _shuffled_batches(indices: np.ndarray, batch: int, rng: np.random.RandomState) -> np.ndarray:
  """Shuffled, drop-last batches (the reference loaders use shuffle=True, drop_last=True)."""
  steps = len(indices) // batch
  return rng.permutation(indices)[:steps * batch].reshape(steps, batch)


def _cycled_batches(indices: np.ndarray, batch: int, steps: int, rng: np.random.RandomState) -> np.ndarray:
  """`steps` batches drawn from reshuffled passes over `indices`: every exemplar equally often."""
  need = steps * batch
  if need == 0:
    return np.zeros((steps, batch), indices.dtype)
  passes = -(-need // len(indices))
  return np.concatenate([rng.permutation(indices) for _ in range(passes)])[:need].reshape(steps, batch)


def _class_balanced_batches(labels: np.ndarray, batch: int, steps: int, rng: np.random.RandomState) -> np.ndarray:
  """Positions into `labels` [steps, batch]: every slot draws a class uniformly among the classes
  present, then one of that class's examples uniformly (with replacement), whatever the class sizes."""
  classes, inverse = np.unique(labels, return_inverse=True)
  order = np.argsort(inverse, kind='stable')
  counts = np.bincount(inverse, minlength=len(classes))
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  c = rng.randint(len(classes), size=steps * batch)
  j = np.minimum((rng.random_sample(steps * batch) * counts[c]).astype(np.int64), counts[c] - 1)
  return order[starts[c] + j].reshape(steps, batch)


def make_plan(kind: str, new: np.ndarray, memory: np.ndarray, batch: int, replay_batch: int,
              seed: int, labels: np.ndarray | None = None) -> Plan:
  """kind: 'new' (new data only), 'mixed' (new data + exemplars shuffled together),
  'new+replay' (batch new + replay_batch exemplars per step; the epoch is set by the new data),
  'class_balanced' (new data + exemplars, each slot of a batch drawing its class uniformly: see
  _class_balanced_batches; as many steps as 'mixed'; needs `labels` of the training set)."""
  rng = np.random.RandomState(seed)
  if kind == 'new+replay' and len(memory) == 0:
    kind = 'new'
  if kind == 'new':
    idx = _shuffled_batches(new, batch, rng)
    return Plan(idx, np.zeros_like(idx, bool), seed)
  if kind == 'mixed':
    pool = np.concatenate([new, memory])
    is_mem = np.concatenate([np.zeros(len(new), bool), np.ones(len(memory), bool)])
    pos = _shuffled_batches(np.arange(len(pool)), batch, rng)
    return Plan(pool[pos], is_mem[pos], seed)
  if kind == 'class_balanced':
    pool = np.concatenate([new, memory])
    is_mem = np.concatenate([np.zeros(len(new), bool), np.ones(len(memory), bool)])
    pos = _class_balanced_batches(labels[pool], batch, len(pool) // batch, rng)
    return Plan(pool[pos], is_mem[pos], seed)
  if kind == 'new+replay':
    cur = _shuffled_batches(new, batch, rng)
    rep = _cycled_batches(memory, replay_batch, cur.shape[0], rng)
    replay = np.concatenate([np.zeros_like(cur, bool), np.ones_like(rep, bool)], 1)
    return Plan(np.concatenate([cur, rep], 1), replay, seed)
  raise ValueError(f'stream kind {kind!r} is unknown; choose one of {STREAM_KINDS}')


def eval_plan(indices: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
  """Fixed-size batches over `indices` in order, the last one padded; returns (plan, valid mask)."""
  steps = max(1, -(-len(indices) // batch))
  padded = np.zeros(steps * batch, np.int64)
  padded[:len(indices)] = indices
  valid = np.zeros(steps * batch, bool)
  valid[:len(indices)] = True
  return padded.reshape(steps, batch), valid.reshape(steps, batch)


# --- loading -------------------------------------------------------------------------------------

def crop_padding(image_size: int) -> int:
  """The zero padding of the crop augmentations (crop_flip, crop_flip_rotate, pad_rrc_flip), here and on
  the devices (device_data)."""
  return 4 if image_size >= 32 else 2


class NumpyBatches:
  """Batches gathered by numpy from in-memory arrays, iterated like a tf.data pipeline's."""

  def __init__(self, arrays: dict, rows: dict):
    self.arrays, self.rows = arrays, rows   # name -> table [N, ...] ; name -> [steps, batch] per step

  def as_numpy_iterator(self):
    steps = len(next(iter(self.rows.values())))
    for k in range(steps):
      yield {name: table[self.rows[name][k]] if table is not None else self.rows[name][k]
             for name, table in self.arrays.items()}


def _loader(split: Split):
  """A tf function index -> image (uint8 HWC, or encoded bytes for file/record sources)."""
  tf = tensorflow()
  if split.images is not None:
    table = tf.constant(split.images)
    return lambda i: tf.gather(table, i)
  if split.files is not None:
    files = tf.constant(split.files.astype(str))
    return lambda i: tf.io.read_file(tf.gather(files, i))
  records = split.records

  def fetch(i):
    return np.asarray(records[int(i)]['image'], dtype=object).astype(bytes)
  return lambda i: tf.reshape(tf.numpy_function(fetch, [i], tf.string, stateful=False), [])


class ImageLoader:
  """Builds the pipelines over one split; holds the split's tensors so epochs reuse them. TensorFlow
  is touched only when a pipeline needs tf.data."""

  def __init__(self, split: Split, labels: np.ndarray, augment_kind: str, image_size: int,
               process_index: int = 0, process_count: int = 1):
    self.split = split
    self.encoded = split.images is None
    self.labels_np = labels.astype(np.int32)
    self._tf_tables = None
    self.augment_kind = augment_kind
    self.image_size, self.pad = image_size, crop_padding(image_size)
    self.process_index, self.process_count = process_index, process_count

  @property
  def load(self):
    return self._tables()[0]

  @property
  def labels(self):
    return self._tables()[1]

  def _tables(self):
    if self._tf_tables is None:
      self._tf_tables = _loader(self.split), tensorflow().constant(self.labels_np)
    return self._tf_tables

  @property
  def trains_with_tf_data(self) -> bool:
    """Whether train() needs tf.data: files and records, or in-memory images with an augmentation."""
    return self.encoded or self.augment_kind != 'none'

  def _numpy(self, idx: np.ndarray, flag_name: str, flags: np.ndarray) -> NumpyBatches:
    return NumpyBatches({'image': self.split.images, 'label': self.labels_np, flag_name: None},
                        {'image': idx, 'label': idx, flag_name: flags})

  def _local(self, a: np.ndarray) -> np.ndarray:
    per = a.shape[1] // self.process_count
    return a[:, self.process_index * per:(self.process_index + 1) * per]

  def _train_image(self, i, seed):
    """One decoded, augmented training image (file and record sources)."""
    from cil_jax.input_pipeline import augment
    image = self.load(i)
    if self.augment_kind == 'imagenet':
      return augment.random_resized_crop_flip(image, seed, self.image_size)
    if self.augment_kind == 'imagenet_rotate':
      return augment.random_resized_crop_flip_rotate(image, seed, self.image_size)
    image = augment.resize_center_crop(image, self.image_size)
    if self.augment_kind == 'pad_rrc_flip':
      return augment.pad_random_resized_crop_flip_batch(image[None], seed, pad=self.pad)[0]
    if self.augment_kind == 'crop_flip':
      return augment.crop_flip(image, seed, pad=self.pad)
    if self.augment_kind == 'crop_flip_rotate':
      return augment.crop_flip_rotate(image, seed, pad=self.pad)
    if self.augment_kind == 'flip_rotate':
      return augment.crop_flip_rotate(image, seed, pad=0)
    return image

  def _eval_image(self, i):
    from cil_jax.input_pipeline import augment
    image = self.load(i)
    return augment.resize_center_crop(image, self.image_size) if self.encoded else image

  def _finish(self, ds):
    tf = tensorflow()
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(2)

  def train(self, plan: Plan, start_step: int = 0):
    """Batches of dict(image uint8, label int32, replay bool) for plan steps [start_step, steps).

    Random choices are seeded by (plan seed, step) for in-memory data (augmented a batch at a
    time) and by (plan seed, position in the plan) for decoded files: either way independent of
    where a resumed run starts.
    """
    idx, replay = self._local(plan.indices)[start_step:], self._local(plan.replay)[start_step:]
    if not self.trains_with_tf_data:
      return self._numpy(idx, 'replay', replay)
    from cil_jax.input_pipeline import augment
    tf = tensorflow()
    self._tables()   # eagerly, before any map function traces (a table made in a trace stays symbolic)
    pos = self._local(np.arange(plan.indices.size, dtype=np.int64).reshape(plan.indices.shape))[start_step:]
    seed0 = tf.constant(plan.seed, tf.int64)
    if not self.encoded:
      steps = np.arange(start_step, plan.steps, dtype=np.int64)
      ds = tf.data.Dataset.from_tensor_slices((idx, replay, steps))

      def load_batch(i, r, k):
        images = self.load(i)
        if self.augment_kind == 'crop_flip':
          images = augment.crop_flip_batch(images, tf.stack([seed0, k]), pad=self.pad)
        elif self.augment_kind in ('crop_flip_rotate', 'flip_rotate'):
          pad = self.pad if self.augment_kind == 'crop_flip_rotate' else 0
          images = augment.crop_flip_rotate_batch(images, tf.stack([seed0, k]), pad=pad)
        elif self.augment_kind == 'pad_rrc_flip':
          images = augment.pad_random_resized_crop_flip_batch(images, tf.stack([seed0, k]), pad=self.pad)
        else:
          raise ValueError(f'augment={self.augment_kind!r} needs encoded images; use crop_flip, '
                           'crop_flip_rotate, flip_rotate, pad_rrc_flip or none')
        return {'image': images, 'label': tf.gather(self.labels, i), 'replay': r}
      ds = ds.map(load_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
      return self._finish(ds)

    ds = tf.data.Dataset.from_tensor_slices((idx.reshape(-1), replay.reshape(-1), pos.reshape(-1)))

    def load(i, r, p):
      seed = tf.stack([seed0, p])
      return {'image': self._train_image(i, seed), 'label': tf.gather(self.labels, i), 'replay': r}
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return self._finish(ds.batch(idx.shape[1], drop_remainder=True))

  def eval(self, plan: np.ndarray, valid: np.ndarray):
    idx, valid = self._local(plan), self._local(valid)
    if not self.encoded:  # in memory: gather whole batches
      return self._numpy(idx, 'valid', valid)
    tf = tensorflow()
    self._tables()
    batch = idx.shape[1]
    ds = tf.data.Dataset.from_tensor_slices((idx.reshape(-1), valid.reshape(-1)))
    ds = ds.map(lambda i, v: {'image': self._eval_image(i), 'label': tf.gather(self.labels, i), 'valid': v},
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return self._finish(ds.batch(batch, drop_remainder=True))
