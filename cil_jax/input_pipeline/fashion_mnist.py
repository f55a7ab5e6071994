"""Fashion-MNIST: dataset.root's IDX files, tfds, or the Debian package's IDX files (in memory)."""
from __future__ import annotations

import gzip
import os

import numpy as np

from cil_jax.input_pipeline import tfds_data
from cil_jax.input_pipeline.base import DataError, Source, Split

DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'
CLASS_NAMES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')


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


def _idx_split(root: str, prefix: str) -> Split:
  img = _find_idx(root, f'{prefix}-images-idx3-ubyte')
  lab = _find_idx(root, f'{prefix}-labels-idx1-ubyte')
  if img is None or lab is None:
    raise DataError(f'{prefix}-images-idx3-ubyte(.gz) / {prefix}-labels-idx1-ubyte(.gz) not found in {root}')
  images, labels = _read_idx(img), _read_idx(lab)
  if len(images) != len(labels):
    raise DataError(f'{img} holds {len(images)} images but {lab} {len(labels)} labels')
  return Split(labels=labels.astype(np.int64), images=images[..., None])


FILES = ('a folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, '
         't10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (Debian/Ubuntu: '
         '`apt-get install dataset-fashion-mnist` installs them where they are found without '
         'dataset.root)')


def load(cfg, cache_dir: str | None = None) -> Source:
  """dataset.root's IDX files; else tfds if prepared; else the Debian package's IDX files; else a
  tfds download (dataset.download, needs internet)."""
  root = cfg.get('root') or None
  data_dir = cfg.get('data_dir') or None
  download = bool(cfg.get('download', False))
  splits = None
  if root is None:
    splits, why = tfds_data.arrays('fashion_mnist', data_dir, download=False)
    if splits is None and os.path.isdir(DEBIAN_DIR):
      root = DEBIAN_DIR
    elif splits is None and download:
      splits, why = tfds_data.arrays('fashion_mnist', data_dir, download=True)
    if splits is None and root is None:
      raise DataError(tfds_data.not_found('Fashion-MNIST', 'fashion_mnist',
                                          f'dataset.root is unset, the Debian package dataset-fashion-mnist is '
                                          f'not installed and {why}', download, FILES))
  if splits is None:
    splits = _idx_split(root, 'train'), _idx_split(root, 't10k')
  return Source('fashion_mnist', 10, splits[0], splits[1], mean=(0.2860,), std=(0.3530,),
                augment=cfg.get('augment') or 'crop_flip', image_size=28, class_names=CLASS_NAMES)

