"""Google Landmarks v2, 1K and 10K: the SS-IL code base's selection of the C most frequent classes.

Two layouts of dataset.root:
- the official download as it comes: `train.csv` (id,url,landmark_id) or `train_clean.csv`
  (landmark_id,images) next to `train/<a>/<b>/<c>/<id>.jpg` (a, b, c: the id's first three
  characters); dataset.csv names the list (train.csv by default);
- a class-folder tree root/<class>/<image>, as SS-IL-Official's README asks users to prepare (its
  `train_10k` folder).

The selection is SS-IL-Official's data_handler: count every image of every class, keep the C largest
classes, relabel them 0..C-1 by decreasing count; per class the first 50 (1K) or 10 (10K) images in
the reference's file order (ImageFolder's: sorted file names, i.e. sorted image ids) are the test
set, the rest train. The reference sorts the counts with an unstable argsort (np.flip(np.argsort(...))),
so its tie order is not reproducible; here the same expression with a stable sort: of classes with
equal counts, the one whose name (landmark id, compared as a string, as ImageFolder sorts folder
names) comes later ranks first. No mean/std normalisation: the reference feeds [0, 1] pixels.
"""
from __future__ import annotations

import concurrent.futures
import csv
import logging
import os

import numpy as np

from cil_jax.input_pipeline.base import DataError, Source, Split, some_of
from cil_jax.input_pipeline.image_folders import image_files, visible

_log = logging.getLogger(__name__)

VARIANTS = {  # dataset.name -> (classes kept, test images per class)
    'landmarks_v2_1k': (1000, 50),
    'landmarks_v2_10k': (10000, 10),
}
CSV_FILES = ('train.csv', 'train_clean.csv')
DOWNLOAD = 'https://github.com/cvdfoundation/google-landmark'


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
  """(image ids, class names) of every image a GLDv2 list names, as str arrays."""
  ids, classes = [], []
  try:
    with open(path, newline='') as f:
      reader = csv.reader(f)
      header = next(reader, None)
      if header is None:
        raise DataError(f'{path} is empty; download it again from {DOWNLOAD}')
      header = [h.strip() for h in header]
      if header[:1] == ['id'] and 'landmark_id' in header:       # train.csv: id,url,landmark_id
        col = header.index('landmark_id')
        for row in reader:
          if row:
            ids.append(row[0])
            classes.append(row[col])
      elif header[:2] == ['landmark_id', 'images']:              # train_clean.csv: landmark_id,images
        for row in reader:
          if row:
            images = row[1].split()
            ids.extend(images)
            classes.extend([row[0]] * len(images))
      else:
        raise DataError(f'{path} has the columns {header}, not those of GLDv2 train.csv (id,url,landmark_id) or '
                        f'train_clean.csv (landmark_id,images); download it again from {DOWNLOAD}')
  except (csv.Error, UnicodeDecodeError, IndexError) as e:
    raise DataError(f'{path} is not a readable GLDv2 csv ({e}); download it again from {DOWNLOAD}') from e
  return np.asarray(ids, dtype=str), np.asarray(classes, dtype=str)


def image_path(root: str, image_id: str) -> str:
  return os.path.join(root, 'train', image_id[0], image_id[1], image_id[2], image_id + '.jpg')


def _folder_tree(root: str) -> tuple[np.ndarray, np.ndarray]:
  """(paths, class names) of root/<class>/<image>, each class's images sorted by file name."""
  paths, classes = [], []
  for name in visible(os.listdir(root)):
    folder = os.path.join(root, name)
    if not os.path.isdir(folder):
      continue
    images = image_files(folder)
    paths.extend(os.path.join(folder, f) for f in images)
    classes.extend([name] * len(images))
  if not paths:
    raise DataError(f'no images found under {root}: dataset.root must be the GLDv2 download (train.csv or '
                    f'train_clean.csv next to train/<a>/<b>/<c>/<id>.jpg) or a tree {root}/<class>/<image>.jpg')
  return np.asarray(paths, dtype=str), np.asarray(classes, dtype=str)


def select(classes: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray, int]:
  """(names of the kept classes in label order, their image counts, the number of classes): the
  `num_classes` classes with the most images, by decreasing count, ties by decreasing name."""
  names, counts = np.unique(classes, return_counts=True)      # names sorted, as ImageFolder's class indices
  if len(names) < num_classes:
    raise DataError(f'the Landmarks data has {len(names)} classes, fewer than the {num_classes} to keep; use '
                    'the full GLDv2 train set (or the other Landmarks variant)')
  # the reference's np.flip(np.argsort(counts)) with a stable sort: equal counts, the later name first
  rank = np.argsort(counts, kind='stable')[::-1][:num_classes]
  return names[rank], counts[rank], len(names)


def split_by_class(files: np.ndarray, classes: np.ndarray, kept: np.ndarray, test_per_class: int,
                   sort_keys: np.ndarray) -> tuple[Split, Split]:
  """Train / test splits of the kept classes (label = position in `kept`); within a class, images
  ordered by `sort_keys` (the reference's file order), the first `test_per_class` to the test set."""
  label_of = {name: k for k, name in enumerate(kept)}
  labels = np.asarray([label_of.get(c, -1) for c in classes], np.int64)
  keep = np.flatnonzero(labels >= 0)
  order = keep[np.lexsort((sort_keys[keep], labels[keep]))]   # by label, then file order
  labels, files = labels[order], files[order]
  starts = np.searchsorted(labels, np.arange(len(kept)))
  rank = np.arange(len(labels)) - starts[labels]                # position within its class
  sizes = np.bincount(labels, minlength=len(kept))
  small = np.flatnonzero(sizes <= test_per_class)
  if len(small):
    raise DataError(f'class {str(kept[small[0]])!r} (rank {small[0] + 1}) has {sizes[small[0]]} images, none left to '
                    f'train on after its {test_per_class} test images; keep fewer classes (dataset.num_classes) or '
                    'use the full GLDv2 train set')
  test = rank < test_per_class
  return (Split(labels=labels[~test], files=files[~test]), Split(labels=labels[test], files=files[test]))


def missing_files(paths: np.ndarray, threads: int = 32) -> list[str]:
  """The paths that do not exist (stat calls in parallel: they wait on the disk, not the CPU)."""
  chunks = np.array_split(paths, max(1, len(paths) // 4096))
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    found = pool.map(lambda c: [str(p) for p in c if not os.path.exists(p)], chunks)
    return [p for part in found for p in part]


def selection(cfg, name: str) -> dict:
  """Everything the reader decides: layout, list, kept classes with their counts, train / test."""
  num_classes, test_per_class = VARIANTS[name]
  num_classes = int(cfg.get('num_classes') or num_classes)   # fewer: a quick look (the smoke configs)
  root = cfg.get('root') or ''
  if not root:
    raise DataError(f'{name} needs dataset.root: the GLDv2 download ({DOWNLOAD}: train.csv or train_clean.csv next '
                    'to train/<a>/<b>/<c>/<id>.jpg) or a folder of class folders <class>/<image>.jpg')
  if not os.path.isdir(root):
    raise DataError(f'dataset.root={root} does not exist')
  csv_name = cfg.get('csv') or 'train.csv'
  present = [f for f in CSV_FILES if os.path.isfile(os.path.join(root, f))]
  if present:
    if csv_name not in present:
      raise DataError(f'{root} has no {csv_name} (it has {", ".join(present)}); set dataset.csv={present[0]}, '
                      f'or download {csv_name} from {DOWNLOAD}')
    csv_path = os.path.join(root, csv_name)
    ids, classes = read_csv(csv_path)
    kept, counts, total = select(classes, num_classes)
    mine = np.isin(classes, kept)       # paths only for the kept images (train.csv lists 4.1 M)
    ids, classes = ids[mine], classes[mine]
    files = np.asarray([image_path(root, i) for i in ids], dtype=str)
    train, test = split_by_class(files, classes, kept, test_per_class, sort_keys=ids)
    layout = f'GLDv2 {csv_name}'
  else:
    if cfg.get('csv'):
      raise DataError(f'dataset.csv={csv_name} but {root} holds no GLDv2 csv; point dataset.root at the folder '
                      f'that holds {csv_name} and train/')
    files, classes = _folder_tree(root)
    kept, counts, total = select(classes, num_classes)
    train, test = split_by_class(files, classes, kept, test_per_class, sort_keys=files)
    layout = 'class folders'
  return dict(layout=layout, kept=kept, counts=counts, train=train, test=test, num_classes=num_classes,
              test_per_class=test_per_class, total_classes=total)


def missing_in(s: dict) -> list[str]:
  """The selected images that are not on disk (a csv names images a partial download may not have;
  a folder tree lists only what is there)."""
  if not s['layout'].startswith('GLDv2'):
    return []
  return missing_files(np.concatenate([s['train'].files, s['test'].files]))


def source_of(cfg, name: str, s: dict) -> Source:
  return Source(name, s['num_classes'], s['train'], s['test'], mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                augment=cfg.get('augment') or 'imagenet', image_size=int(cfg.get('image_size') or 224),
                class_names=tuple(str(k) for k in s['kept']))


def load(cfg, cache_dir: str | None = None) -> Source:
  name = cfg.name
  s = selection(cfg, name)
  missing = missing_in(s)
  if missing:
    raise DataError(f'{len(missing)} images of the {s["num_classes"]} selected classes are missing under '
                    f'{os.path.join(cfg.root, "train")}: {some_of(missing, 3)}; download all 500 images_*.tar of '
                    f'GLDv2 train ({DOWNLOAD}) and unpack them there (`cil-jax data check` '
                    'lists them all)')
  _log.info('%s: %s, %d of %d classes kept (%d to %d images each), %d train / %d test images', name, s['layout'],
            s['num_classes'], s['total_classes'], s['counts'][-1], s['counts'][0], len(s['train']), len(s['test']))
  return source_of(cfg, name, s)
