"""CIFAR-10 and CIFAR-100: dataset.root's official python pickles, or tfds (in memory)."""
from __future__ import annotations

import os
import pickle

import numpy as np

from cil_jax.input_pipeline import tfds_data
from cil_jax.input_pipeline.base import DataError, Source, Split

CLASSES = {'cifar10': 10, 'cifar100': 100}   # dataset.name -> number of classes
CIFAR10_NAMES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')


def _unpickle(path: str) -> dict:
  try:
    with open(path, 'rb') as f:
      return pickle.load(f, encoding='bytes')
  except (FileNotFoundError, PermissionError):   # no file, or not this user's to read: not a bad pickle
    raise
  except Exception as e:  # noqa: BLE001
    raise DataError(f'{path} is not a readable CIFAR python pickle ({e}); re-download cifar-*-python.tar.gz') from e


def _cifar_from_dict(d: dict, label_key: bytes) -> Split:
  data = np.asarray(d[b'data'], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  coarse = np.asarray(d[b'coarse_labels'], np.int64) if b'coarse_labels' in d else None
  return Split(labels=np.asarray(d[label_key], np.int64), images=np.ascontiguousarray(data), coarse_labels=coarse)


def _cifar100_names(root: str) -> dict:
  """Fine and coarse class names from the pickles' `meta` file (absent: no names)."""
  folder = root if os.path.exists(os.path.join(root, 'train')) else os.path.join(root, 'cifar-100-python')
  path = os.path.join(folder, 'meta')
  if not os.path.exists(path):
    return {}
  meta = _unpickle(path)
  decode = lambda names: tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)  # noqa: E731
  return {'class_names': decode(meta[b'fine_label_names']), 'coarse_names': decode(meta[b'coarse_label_names'])}


def _pickled_splits(root: str, num_classes: int) -> tuple[Split, Split]:
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


FILES = {
    10: 'the folder of the official CIFAR-10 python pickles (cifar-10-batches-py/data_batch_1..5 and '
        'test_batch: cifar-10-python.tar.gz unpacked)',
    100: 'the folder of the official CIFAR-100 python pickles (cifar-100-python/train and test: '
         'cifar-100-python.tar.gz unpacked)',
}


def load(cfg, cache_dir: str | None = None) -> Source:
  """dataset.root's python pickles; else tfds if prepared; else a tfds download (dataset.download)."""
  name = cfg.name
  num_classes = CLASSES[name]
  root = cfg.get('root') or None
  data_dir = cfg.get('data_dir') or None
  download = bool(cfg.get('download', False))
  if root:
    splits = _pickled_splits(root, num_classes)
    meta = _cifar100_names(root) if num_classes == 100 else {}
  else:
    splits, why = tfds_data.arrays(name, data_dir, download=False)
    if splits is None and download:
      splits, why = tfds_data.arrays(name, data_dir, download=True)
    if splits is None:
      raise DataError(tfds_data.not_found(f'CIFAR-{num_classes}', name, f'dataset.root is unset and {why}',
                                          download, FILES[num_classes]))
    meta = splits[2]
  if num_classes == 10:
    meta = dict(meta, class_names=CIFAR10_NAMES)
  mean = (0.5071, 0.4866, 0.4409) if num_classes == 100 else (0.4914, 0.4822, 0.4465)
  std = (0.2673, 0.2564, 0.2762) if num_classes == 100 else (0.2470, 0.2435, 0.2616)
  return Source(name, num_classes, splits[0], splits[1], mean=mean, std=std,
                augment=cfg.get('augment') or 'crop_flip', image_size=32, **meta)

