"""Dataset sources: where the images and labels come from, in each real on-disk format.

A source gives a train and a test `Split`. Small datasets (Fashion-MNIST, CIFAR) are held in memory
as uint8 arrays; large ones (ImageNet) are read per image (file paths or a tfds random-access data
source) and decoded in tf.data. Labels are the dataset's original labels; the scenario remaps them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import logging
import os
import pickle
from typing import Any, Callable

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FASHION_MNIST_DEB_DIR = '/usr/share/datasets/fashion-mnist'
IMAGE_EXTENSIONS = ('.jpeg', '.jpg', '.png', '.bmp', '.gif')


class DataError(RuntimeError):
  """Missing or unreadable data; the message says how to get or fix it."""


@dataclasses.dataclass
class Split:
  labels: np.ndarray                   # int64 [N], original labels
  images: np.ndarray | None = None     # uint8 [N, H, W, C] when held in memory
  files: np.ndarray | None = None      # str [N] image paths, decoded in tf.data
  records: Any = None                  # tfds random-access data source giving encoded images

  def __len__(self):
    return len(self.labels)

  @property
  def in_memory(self) -> bool:
    return self.images is not None

  def describe(self, i: int) -> str:
    """Human-readable name of example i, for error messages."""
    if self.files is not None:
      return str(self.files[i])
    return f'example #{i}'


@dataclasses.dataclass
class Source:
  name: str
  num_classes: int
  train: Split
  test: Split
  mean: tuple[float, ...]
  std: tuple[float, ...]
  augment: str  # 'imagenet' (random resized crop) | 'crop_flip' (pad + crop + flip) | 'none'
  image_size: int  # side of the images the network sees


# --- Fashion-MNIST (tfds or IDX) ------------------------------------------------------------------

def _read_idx(path: str) -> np.ndarray:
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'rb') as f:
    data = f.read()
  if len(data) < 8 or data[0] != 0 or data[1] != 0:
    raise DataError(f'{path} is not an IDX file (bad magic number); re-download it')
  dtype_code, ndim = data[2], data[3]
  if dtype_code != 0x08:
    raise DataError(f'{path}: only unsigned-byte IDX files are supported, got type 0x{dtype_code:02x}')
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
  body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
  if body.size != int(np.prod(shape)):
    raise DataError(f'{path} is truncated: {body.size} bytes of data for shape {shape}; re-download it')
  return body.reshape(shape)


def _find_idx(root: str, stem: str) -> str | None:
  for name in (stem, stem + '.gz'):
    p = os.path.join(root, name)
    if os.path.exists(p):
      return p
  return None


def load_idx_split(root: str, prefix: str) -> Split:
  img = _find_idx(root, f'{prefix}-images-idx3-ubyte')
  lab = _find_idx(root, f'{prefix}-labels-idx1-ubyte')
  if img is None or lab is None:
    raise DataError(f'{prefix}-images-idx3-ubyte(.gz) / {prefix}-labels-idx1-ubyte(.gz) not found in {root}')
  images, labels = _read_idx(img), _read_idx(lab)
  if len(images) != len(labels):
    raise DataError(f'{img} holds {len(images)} images but {lab} {len(labels)} labels')
  return Split(labels=labels.astype(np.int64), images=images[..., None])


@contextlib.contextmanager
def _absl_errors_only():
  """tfds.builder warns for every version it does not find prepared; when we only probe whether a
  dataset is there, a miss is expected and the warning would be noise at every run."""
  logger = logging.getLogger('absl')
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def _tfds_arrays(name: str, data_dir: str | None, download: bool) -> tuple[Split, Split] | None:
  """Whole train/test splits of a small tfds dataset, or None when tfds has not prepared it."""
  import tensorflow_datasets as tfds
  try:
    with _absl_errors_only():
      builder = tfds.builder(name, data_dir=data_dir)
      prepared = builder.is_prepared()
    if not prepared:
      if not download:
        return None
      builder.download_and_prepare()
    out = []
    for split in ('train', 'test'):
      ds = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
      images = np.asarray(ds['image'], np.uint8)
      if images.ndim == 3:
        images = images[..., None]
      out.append(Split(labels=np.asarray(ds['label'], np.int64), images=images))
    return out[0], out[1]
  except DataError:
    raise
  except Exception as e:  # noqa: BLE001 - no network, broken cache...: fall back to files
    if download:
      raise DataError(f'tfds could not prepare {name!r}: {e}') from e
    return None


def load_fashion_mnist(cfg) -> Source:
  """dataset.root's IDX files; else tfds if prepared; else the Debian package's IDX files; else a
  tfds download (dataset.download, needs internet)."""
  root = cfg.get('root') or None
  data_dir = cfg.get('data_dir') or None
  splits = None
  if root is None:
    splits = _tfds_arrays('fashion_mnist', data_dir, download=False)
    if splits is None and os.path.isdir(FASHION_MNIST_DEB_DIR):
      root = FASHION_MNIST_DEB_DIR
    if splits is None and root is None and cfg.get('download', False):
      try:
        splits = _tfds_arrays('fashion_mnist', data_dir, download=True)
      except DataError:
        splits = None
  if splits is None:
    if root is None:
      raise DataError(
          'Fashion-MNIST not found. Install its IDX files (Debian/Ubuntu: `apt-get install '
          'dataset-fashion-mnist`), or set dataset.root to a folder holding train-images-idx3-ubyte.gz '
          'and the three other IDX files, or prepare tfds `fashion_mnist` (dataset.data_dir for a prepared '
          'copy; dataset.download=True downloads it where there is internet access).')
    splits = load_idx_split(root, 'train'), load_idx_split(root, 't10k')
  return Source('fashion_mnist', 10, splits[0], splits[1], mean=(0.2860,), std=(0.3530,),
                augment=cfg.get('augment') or 'crop_flip', image_size=28)


# --- CIFAR (tfds or the official python pickles) -------------------------------------------------

def _unpickle(path: str) -> dict:
  try:
    with open(path, 'rb') as f:
      return pickle.load(f, encoding='bytes')
  except FileNotFoundError:
    raise
  except Exception as e:  # noqa: BLE001
    raise DataError(f'{path} is not a readable CIFAR python pickle ({e}); re-download cifar-*-python.tar.gz') from e


def _cifar_from_dict(d: dict, label_key: bytes) -> Split:
  data = np.asarray(d[b'data'], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return Split(labels=np.asarray(d[label_key], np.int64), images=np.ascontiguousarray(data))


def load_cifar_pickles(root: str, num_classes: int) -> tuple[Split, Split]:
  if num_classes == 100:
    folder = root if os.path.exists(os.path.join(root, 'train')) else os.path.join(root, 'cifar-100-python')
    try:
      return (_cifar_from_dict(_unpickle(os.path.join(folder, 'train')), b'fine_labels'),
              _cifar_from_dict(_unpickle(os.path.join(folder, 'test')), b'fine_labels'))
    except FileNotFoundError as e:
      raise DataError(f'CIFAR-100 pickles not found ({e.filename}); dataset.root must hold '
                      'cifar-100-python/{train,test} (unpack cifar-100-python.tar.gz)') from e
  folder = root if os.path.exists(os.path.join(root, 'data_batch_1')) else os.path.join(root, 'cifar-10-batches-py')
  try:
    parts = [_unpickle(os.path.join(folder, f'data_batch_{i}')) for i in range(1, 6)]
    test = _unpickle(os.path.join(folder, 'test_batch'))
  except FileNotFoundError as e:
    raise DataError(f'CIFAR-10 pickles not found ({e.filename}); dataset.root must hold '
                    'cifar-10-batches-py/data_batch_{1..5},test_batch (unpack cifar-10-python.tar.gz)') from e
  train = {b'data': np.concatenate([p[b'data'] for p in parts]),
           b'labels': np.concatenate([p[b'labels'] for p in parts])}
  return _cifar_from_dict(train, b'labels'), _cifar_from_dict(test, b'labels')


def _load_cifar(cfg, num_classes: int) -> Source:
  name = f'cifar{num_classes}'
  root = cfg.get('root') or None
  splits = None if root else _tfds_arrays(name, cfg.get('data_dir') or None, download=False)
  if splits is None and root is None and cfg.get('download', False):
    try:
      splits = _tfds_arrays(name, cfg.get('data_dir') or None, download=True)
    except DataError:
      splits = None
  if splits is None:
    if root is None:
      raise DataError(f'{name} not found: set dataset.root to the folder of the official CIFAR python pickles '
                      f'(cifar-*-python.tar.gz unpacked), or prepare tfds {name!r} (dataset.data_dir for a '
                      'prepared copy; dataset.download=True downloads it where there is internet access)')
    splits = load_cifar_pickles(root, num_classes)
  mean = (0.5071, 0.4866, 0.4409) if num_classes == 100 else (0.4914, 0.4822, 0.4465)
  std = (0.2673, 0.2564, 0.2762) if num_classes == 100 else (0.2470, 0.2435, 0.2616)
  return Source(name, num_classes, splits[0], splits[1], mean=mean, std=std,
                augment=cfg.get('augment') or 'crop_flip', image_size=32)


# --- ImageNet (tfds prepared data or train/ val/ class folders) ----------------------------------

def load_image_folder(root: str, classes: list[str] | None = None) -> tuple[Split, list[str]]:
  """torchvision ImageFolder layout: root/<class>/<image>; classes sorted by name."""
  if not os.path.isdir(root):
    raise DataError(f'image folder {root} does not exist')
  classes = classes or sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  files, labels = [], []
  for c, name in enumerate(classes):
    folder = os.path.join(root, name)
    if not os.path.isdir(folder):
      raise DataError(f'{root} has no folder for class {name!r}, which the training set has')
    for f in sorted(os.listdir(folder)):
      if f.lower().endswith(IMAGE_EXTENSIONS):
        files.append(os.path.join(folder, f))
        labels.append(c)
  if not files:
    raise DataError(f'no images found under {root} (expected {root}/<class>/<image>.JPEG)')
  return Split(labels=np.asarray(labels, np.int64), files=np.asarray(files)), classes


def _tfds_records(name: str, data_dir: str | None, split: str, cache_dir: str | None) -> Split:
  """Random-access tfds data source (needs data prepared as array_record) with raw encoded images."""
  import tensorflow_datasets as tfds
  builder = tfds.builder(name, data_dir=data_dir)
  try:
    source = builder.as_data_source(split=split, decoders={'image': tfds.decode.SkipDecoding()})
  except Exception as e:  # noqa: BLE001
    raise DataError(
        f'tfds {name!r} split {split!r} cannot be read with random access ({e}). Prepare it with '
        f'`tfds build {name} --file_format=array_record` (manual download for imagenet2012), or set '
        'dataset.root to a folder holding train/ and val/ class folders') from e
  labels = None
  cache = os.path.join(cache_dir, f'{name}_{split}_labels.npy') if cache_dir else None
  if cache and os.path.exists(cache):
    labels = np.load(cache)
    if len(labels) != len(source):
      labels = None
  if labels is None:  # one pass over the records; cached so a resumed run does not repeat it
    labels = np.asarray([int(source[i]['label']) for i in range(len(source))], np.int64)
    if cache:
      os.makedirs(cache_dir, exist_ok=True)
      np.save(cache, labels)
  return Split(labels=labels, records=source)


def load_imagenet(cfg, cache_dir: str | None = None) -> Source:
  root = cfg.get('root') or None
  if root:
    train, classes = load_image_folder(os.path.join(root, 'train'))
    test, _ = load_image_folder(os.path.join(root, 'val'), classes)
  else:  # tfds; a missing or tfrecord-only preparation fails in _tfds_records with the fix
    train = _tfds_records('imagenet2012', cfg.get('data_dir') or None, 'train', cache_dir)
    test = _tfds_records('imagenet2012', cfg.get('data_dir') or None, 'validation', cache_dir)
  num_classes = int(cfg.get('num_classes') or 1000)
  if train.labels.max() >= num_classes:
    raise DataError(f'the training set has {train.labels.max() + 1} classes but dataset.num_classes={num_classes}')
  return Source('imagenet', num_classes, train, test, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                augment=cfg.get('augment') or 'imagenet', image_size=int(cfg.get('image_size') or 224))


LOADERS: dict[str, Callable[..., Source]] = {
    'fashion_mnist': lambda cfg, cache_dir=None: load_fashion_mnist(cfg),
    'cifar10': lambda cfg, cache_dir=None: _load_cifar(cfg, 10),
    'cifar100': lambda cfg, cache_dir=None: _load_cifar(cfg, 100),
    'imagenet': load_imagenet,
}


def load(cfg, cache_dir: str | None = None) -> Source:
  if cfg.name not in LOADERS:
    raise DataError(f'dataset.name={cfg.name!r} is unknown; choose one of {sorted(LOADERS)}')
  source = LOADERS[cfg.name](cfg, cache_dir=cache_dir)
  limit = int(cfg.get('max_per_class') or 0)
  if limit:  # a quick look at a big dataset: the first `limit` images of each class
    source.train = subset_per_class(source.train, limit)
  return source


def check_image(split: Split, i: int) -> str | None:
  """None when example i decodes, else a message naming it (used to explain a tf.data failure)."""
  if split.images is not None:
    return None
  from PIL import Image
  try:
    if split.files is not None:
      with Image.open(str(split.files[i])) as im:
        im.load()
    else:
      import io
      with Image.open(io.BytesIO(split.records[i]['image'])) as im:
        im.load()
  except Exception as e:  # noqa: BLE001 - any decoder failure means the image is unusable
    return f'corrupt or unreadable image {split.describe(i)} ({type(e).__name__}: {e})'
  return None


def subset_per_class(split: Split, limit: int) -> Split:
  keep = np.concatenate([np.flatnonzero(split.labels == c)[:limit] for c in np.unique(split.labels)])
  keep.sort()
  return take(split, keep)


def take(split: Split, idx: np.ndarray) -> Split:
  if split.records is not None:
    raise DataError('subsetting a tfds data source is not supported; use dataset.root image folders')
  return Split(labels=split.labels[idx],
               images=None if split.images is None else split.images[idx],
               files=None if split.files is None else split.files[idx])
