"""ImageNet-100: a class list (class_lists.py, or a file of WordNet ids) over an ImageNet-1K source,
dataset.root's class folders or tfds imagenet2012; nothing is copied."""
from __future__ import annotations

import os

import numpy as np

from cil_jax.input_pipeline import class_lists, image_folders, tfds_data
from cil_jax.input_pipeline.base import IMAGENET_MEAN, IMAGENET_STD, DataError, Source, Split, some_of, take

WNID_FORMAT = 'n + 8 digits, e.g. n01440764'


def listed_wnids(cfg) -> list[str]:
  """The sorted WordNet ids of dataset.class_list: 'lucir' (default), 'podnet', or a text file of
  wnids (one per line, '#' comments)."""
  value = cfg.get('class_list') or 'lucir'
  if value in class_lists.IMAGENET100:
    return sorted(class_lists.IMAGENET100[value])
  if not os.path.isfile(value):
    raise DataError(f'dataset.class_list={value!r} is neither {" nor ".join(map(repr, class_lists.IMAGENET100))} '
                    'nor a file; give one of those, or the path of a text file with one WordNet id per line')
  with open(value) as f:
    wnids = [line.split('#')[0].strip() for line in f]
  wnids = [w for w in wnids if w]
  bad = [w for w in wnids if not (len(w) == 9 and w[0] == 'n' and w[1:].isdigit())]
  if bad or not wnids:
    raise DataError(f'{value}: {f"{bad[0]!r} is not a WordNet id" if bad else "holds no WordNet id"} '
                    f'({WNID_FORMAT}); write one per line')
  if len(set(wnids)) != len(wnids):
    twice = sorted({w for w in wnids if wnids.count(w) > 1})
    raise DataError(f'{value} lists {some_of(twice)} more than once; list each class once')
  return sorted(wnids)


def _records_of(split: Split, names: tuple[str, ...] | None, wnids: list[str], what: str) -> Split:
  if names is None:
    raise DataError(f'tfds imagenet2012 ({what}) gives no class names, so the ImageNet-100 classes cannot be '
                    'found; set dataset.root to ImageNet train/ and val/ class folders')
  position = {n: k for k, n in enumerate(names)}
  missing = [w for w in wnids if w not in position]
  if missing:
    raise DataError(f'tfds imagenet2012 ({what}) has no class {some_of(missing)} of dataset.class_list')
  relabel = np.full(len(names), -1, np.int64)
  relabel[[position[w] for w in wnids]] = np.arange(len(wnids))
  keep = np.flatnonzero(relabel[split.labels] >= 0)
  return Split(labels=relabel[split.labels[keep]], records=take(split, keep).records)


def load(cfg, cache_dir: str | None = None) -> Source:
  """A class list over an ImageNet-1K source (dataset.root's train/ and val/ class folders, the full
  1000 or just the listed ones, or tfds imagenet2012): nothing is copied. Labels follow the sorted
  wnids, as LUCIR's and PODNet's subsets."""
  wnids = listed_wnids(cfg)
  wanted = int(cfg.get('num_classes') or 0)
  if wanted and wanted != len(wnids):
    raise DataError(f'dataset.num_classes={wanted} but dataset.class_list has {len(wnids)} classes; set '
                    f'dataset.num_classes=0 (the list decides)')
  root = cfg.get('root') or None
  if root:
    train, _ = image_folders.read_split(os.path.join(root, 'train'), wnids, others_ok=True)
    test, _ = image_folders.read_split(os.path.join(root, 'val'), wnids, others_ok=True)
  else:
    data_dir = cfg.get('data_dir') or None
    train_all, _, names = tfds_data.records('imagenet2012', data_dir, 'train', cache_dir)
    test_all, _, test_names = tfds_data.records('imagenet2012', data_dir, 'validation', cache_dir)
    train = _records_of(train_all, names, wnids, 'train')
    test = _records_of(test_all, test_names, wnids, 'validation')
  return Source('imagenet100', len(wnids), train, test, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                augment=cfg.get('augment') or 'imagenet', image_size=int(cfg.get('image_size') or 224),
                class_names=tuple(wnids), wnids=tuple(wnids))

