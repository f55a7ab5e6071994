"""What the readers give and the rest of the package reads: a dataset `Source` of a train and a test
`Split`, its classes' metadata (`ClassInfo`), the error for missing or unreadable data, and the
selections of a split (`take`, `subset_per_class`). numpy only: a config check may import it.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cil_jax.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = ('.jpeg', '.jpg', '.png', '.bmp', '.gif')


class DataError(UserError, RuntimeError):
  """Missing or unreadable data; the message says how to get or fix it."""


@dataclasses.dataclass
class Split:
  labels: np.ndarray                   # int64 [N], original labels
  coarse_labels: np.ndarray | None = None  # int64 [N] where the dataset has them (CIFAR-100 superclasses)
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
  augment: str  # one of sources.AUGMENTS
  image_size: int  # side of the images the network sees
  class_names: tuple[str, ...] | None = None   # by original class id
  wnids: tuple[str, ...] | None = None         # WordNet ids by original class id (ImageNet-derived data)
  coarse_names: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class ClassInfo:
  """What the dataset says of each class, indexed by incremental label (after the class order)."""
  original: np.ndarray                 # int [C] the dataset's own class id
  names: tuple[str, ...]               # the dataset's class names (ImageNet's are its WordNet ids; '' if none)
  wnids: tuple[str, ...] | None        # WordNet ids (ImageNet-derived datasets), else None
  coarse: np.ndarray | None            # int [C] coarse label (CIFAR-100's 20 superclasses), else None
  coarse_names: tuple[str, ...] | None


def class_info(source: Source, label_map: np.ndarray) -> ClassInfo:
  """The source's class metadata in incremental-label order. Coarse labels come from the training
  split's own per-image coarse labels (each class must have exactly one)."""
  original = np.argsort(label_map)              # incremental label k -> original class id
  names = source.class_names or ('',) * source.num_classes
  coarse = None
  if source.train.coarse_labels is not None:
    by_class = np.full(source.num_classes, -1, np.int64)
    by_class[source.train.labels] = source.train.coarse_labels
    for c in range(source.num_classes):
      found = np.unique(source.train.coarse_labels[source.train.labels == c])
      if len(found) != 1:
        raise DataError(f'class {c} of {source.name} has coarse labels {found.tolist()}, not exactly one; '
                        'the dataset files are inconsistent')
    coarse = by_class[original]
  return ClassInfo(original=original, names=tuple(names[o] for o in original),
                   wnids=None if source.wnids is None else tuple(source.wnids[o] for o in original),
                   coarse=coarse, coarse_names=source.coarse_names)


class RecordSubset:
  """Some records of a tfds random-access data source, by position (ImageNet-100 over imagenet2012)."""

  def __init__(self, records, index: np.ndarray):
    self.records, self.index = records, np.asarray(index, np.int64)

  def __len__(self):
    return len(self.index)

  def __getitem__(self, i):
    return self.records[int(self.index[i])]


def subset_per_class(split: Split, limit: int) -> Split:
  keep = np.concatenate([np.flatnonzero(split.labels == c)[:limit] for c in np.unique(split.labels)])
  keep.sort()
  return take(split, keep)


def take(split: Split, idx: np.ndarray) -> Split:
  return Split(labels=split.labels[idx],
               records=None if split.records is None else RecordSubset(split.records, idx),
               coarse_labels=None if split.coarse_labels is None else split.coarse_labels[idx],
               images=None if split.images is None else split.images[idx],
               files=None if split.files is None else split.files[idx])


def some_of(names: list[str], shown: int = 5) -> str:
  """The first `shown` names, and how many more, for a message."""
  text = ', '.join(repr(n) for n in names[:shown])
  return text + (f' and {len(names) - shown} more' if len(names) > shown else '')
