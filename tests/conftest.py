"""Tiny fixtures in each real on-disk format the library reads (never downloads)."""
import gzip
import os
import pickle
import shutil
import struct
import sys
import tempfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

_XLA_CACHE = 'JAX_COMPILATION_CACHE_DIR'


def pytest_configure(config):
  """One persistent XLA compilation cache for the session, shared by the xdist workers and every run
  the tests start (inherited through the environment): most tests run the same few smoke configs, and
  their compiles were a third of the suite's time. A cached executable is the one XLA would compile
  again, so results (bit-identical resumes included) are unchanged."""
  if _XLA_CACHE in os.environ or hasattr(config, 'workerinput'):
    return
  config._cil_jax_xla_cache = tempfile.mkdtemp(prefix='cil_jax_tests_xla_cache_')
  os.environ.update({_XLA_CACHE: config._cil_jax_xla_cache, 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
                     'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '0'})


def pytest_unconfigure(config):
  if getattr(config, '_cil_jax_xla_cache', None):
    shutil.rmtree(config._cil_jax_xla_cache, ignore_errors=True)


def _write_idx(path, array):
  header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim) + b''.join(struct.pack('>I', d) for d in array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _class_images(rng, labels, shape):
  """Images whose mean brightness depends on the class, so a network can learn them a little."""
  base = (labels.astype(np.float32) * 23) % 200 + 20
  noise = rng.normal(0, 25, (len(labels),) + shape)
  return np.clip(base.reshape((-1,) + (1,) * len(shape)) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope='session')
def idx_dir(tmp_path_factory):
  """Fashion-MNIST IDX files (gzipped, as the Debian package ships them): 10 classes."""
  d = tmp_path_factory.mktemp('fmnist_idx')
  rng = np.random.RandomState(0)
  for prefix, per_class in (('train', 48), ('t10k', 8)):
    labels = np.tile(np.arange(10), per_class)
    _write_idx(d / f'{prefix}-images-idx3-ubyte.gz', _class_images(rng, labels, (28, 28)))
    _write_idx(d / f'{prefix}-labels-idx1-ubyte.gz', labels)
  return str(d)


@pytest.fixture(scope='session')
def imagenet_dir(tmp_path_factory):
  """ImageNet layout: train/<wnid>/*.JPEG and val/<wnid>/*.JPEG, 4 classes, varied image sizes."""
  from PIL import Image
  d = tmp_path_factory.mktemp('imagenet')
  rng = np.random.RandomState(1)
  for split, n in (('train', 10), ('val', 3)):
    for c in range(4):
      folder = d / split / f'n0000000{c}'
      folder.mkdir(parents=True)
      for i in range(n):
        h, w = rng.randint(36, 60, size=2)
        img = _class_images(rng, np.array([c * 3]), (h, w, 3))[0]
        Image.fromarray(img).save(folder / f'n0000000{c}_{i}.JPEG', quality=90)
  return str(d)


@pytest.fixture(scope='session')
def cifar100_dir(tmp_path_factory):
  """The official CIFAR-100 python pickles: cifar-100-python/{train,test}."""
  d = tmp_path_factory.mktemp('cifar100')
  folder = d / 'cifar-100-python'
  folder.mkdir()
  rng = np.random.RandomState(2)
  for split, per_class in (('train', 8), ('test', 2)):
    labels = np.tile(np.arange(100), per_class)
    images = _class_images(rng, labels, (3, 32, 32)).reshape(len(labels), -1)
    with open(folder / split, 'wb') as f:
      pickle.dump({b'data': images, b'fine_labels': labels.tolist(),
                   b'coarse_labels': (labels // 5).tolist()}, f)
  return str(d)
