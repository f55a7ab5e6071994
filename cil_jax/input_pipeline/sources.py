"""The dataset registry: dataset.name -> its reader, `load(cfg)` -> the `Source`, and the fingerprint
a resumed run must find again.

A source gives a train and a test `Split` (base.py). Small datasets (Fashion-MNIST, CIFAR,
miniImageNet) are held in memory as uint8 arrays; large ones (ImageNet, Landmarks) are read per image
(file paths or a tfds random-access data source) and decoded in tf.data. Labels are the dataset's
original labels; the scenario remaps them. Each reader is a module of this package with
`load(cfg, cache_dir) -> Source` (cache_dir: a folder of the run's where a reader may keep what it
derived, such as the labels of a tfds data source); it is imported when a run loads it, so a config
check imports none.
"""
from __future__ import annotations

import hashlib
import importlib

import numpy as np

from cil_jax.input_pipeline.base import Source, subset_per_class

LOADERS = {   # dataset.name -> reader module
    'fashion_mnist': 'fashion_mnist',   # IDX files or tfds
    'cifar10': 'cifar',                 # python pickles or tfds
    'cifar100': 'cifar',
    'imagenet': 'imagenet',             # class folders or tfds array_record
    'imagenet100': 'imagenet100',       # a class list over ImageNet's class folders or tfds
    'miniimagenet': 'miniimagenet',
    'landmarks_v2_1k': 'landmarks',
    'landmarks_v2_10k': 'landmarks',
}
# dataset.augment ('' = the dataset's own):
#   imagenet          RandomResizedCrop + flip (encoded images)
#   imagenet_rotate   the same + RandomRotation(15) (MGRB's ImageNet-100)
#   crop_flip         zero-pad + random crop + flip (CIFAR-style)
#   crop_flip_rotate  the same + RandomRotation(15) (MGRB's CIFAR)
#   flip_rotate       flip + RandomRotation(15), no crop (MGRB's miniImageNet)
#   pad_rrc_flip      zero-pad + RandomResizedCrop + flip (FACIL's CIFAR)
#   none
# (the CIFAR-style kinds on encoded files run after the test resize + centre crop)
AUGMENTS = ('imagenet', 'imagenet_rotate', 'crop_flip', 'crop_flip_rotate', 'flip_rotate', 'pad_rrc_flip', 'none')


def load(cfg, cache_dir: str | None = None) -> Source:
  reader = importlib.import_module(f'{__package__}.{LOADERS[cfg.name]}')   # the name was checked with the config
  source = reader.load(cfg, cache_dir=cache_dir)
  limit = int(cfg.get('max_per_class') or 0)
  if limit:  # a quick look at a big dataset: the first `limit` images of each class
    source.train = subset_per_class(source.train, limit)
  limit = int(cfg.get('max_test_per_class') or 0)
  if limit:  # the :smoke runs: evaluation in seconds
    source.test = subset_per_class(source.test, limit)
  for field in ('mean', 'std'):   # a protocol's own normalisation (FACIL's CIFAR-100 std)
    value = tuple(float(v) for v in (cfg.get(field) or ()))
    if value:
      if len(value) != len(getattr(source, field)):
        raise ValueError(f'dataset.{field}={value} needs {len(getattr(source, field))} values (one per channel)')
      setattr(source, field, value)
  return source


def fingerprint(source: Source) -> dict:
  """What a resumed run must find again: each split's size and a digest of its labels and file
  names (the last two path components, so that a moved dataset root still matches). A file removed,
  added or renamed shifts the indices a checkpoint holds (the plans, the exemplar memory)."""
  out = {'classes': int(source.num_classes)}
  for name, split in (('train', source.train), ('test', source.test)):
    digest = hashlib.sha1(np.ascontiguousarray(split.labels, np.int64).tobytes())
    if split.files is not None:
      digest.update('\n'.join(p[p.rfind('/', 0, p.rfind('/')) + 1:] for p in split.files.tolist()).encode())
    out[name] = {'images': len(split), 'digest': digest.hexdigest()}
  return out

