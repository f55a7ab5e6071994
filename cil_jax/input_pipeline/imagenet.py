"""ImageNet-1K: dataset.root's train/ and val/ class folders, or tfds imagenet2012 prepared as
array_record (encoded images, decoded in tf.data)."""
from __future__ import annotations

import os

from cil_jax.input_pipeline import image_folders, tfds_data
from cil_jax.input_pipeline.base import IMAGENET_MEAN, IMAGENET_STD, DataError, Source


def load(cfg, cache_dir: str | None = None) -> Source:
  root = cfg.get('root') or None
  num_classes = int(cfg.get('num_classes') or 1000)
  setting = f'dataset.num_classes={num_classes}' if cfg.get('num_classes') else 'dataset.num_classes=0 (1000)'
  if root:
    train, classes = image_folders.read_split(os.path.join(root, 'train'))
    found, what = len(classes), f'{os.path.join(root, "train")} has {len(classes)} class folders'
    subset = 'the full dataset' if found < num_classes else 'a dataset'
    subset = f'point dataset.root at {subset} with {num_classes} class folders in train/ and val/'
    if found != num_classes:  # checked before val/ is listed: a wrong root fails here, at once
      raise DataError(f'{what} but {setting}; {subset}, or set dataset.num_classes={found} along with '
                      f'scenario.base and scenario.step that fit {found} classes')
    test, _ = image_folders.read_split(os.path.join(root, 'val'), classes)
    wnids = tuple(classes)  # the folders are named by WordNet id (n01440764, ...)
  else:  # tfds; a missing or tfrecord-only preparation fails in tfds_data.records with the fix
    train, found, wnids = tfds_data.records('imagenet2012', cfg.get('data_dir') or None, 'train', cache_dir)
    test, _, _ = tfds_data.records('imagenet2012', cfg.get('data_dir') or None, 'validation', cache_dir)
    found = found or int(train.labels.max()) + 1
    if found != num_classes:
      raise DataError(f'tfds imagenet2012 has {found} classes but {setting}; set dataset.num_classes={found} '
                      f'(with scenario.base and scenario.step that fit), or set dataset.root to train/ and val/ '
                      f'folders holding {num_classes} classes')
  return Source('imagenet', num_classes, train, test, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                augment=cfg.get('augment') or 'imagenet', image_size=int(cfg.get('image_size') or 224),
                class_names=wnids, wnids=wnids)

