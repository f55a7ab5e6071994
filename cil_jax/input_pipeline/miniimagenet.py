"""miniImageNet: 100 ImageNet classes of 600 images at 84 x 84, read into memory as uint8.

Layouts of dataset.root, found by what it holds:
- per-class split (CIL-MGRB's `processed` folder): train/<wnid>/ and test/<wnid>/ with the same
  classes; each folder's images in its <wnid>_boxes.txt order (the first tab-separated field of each
  line) when that file is there, else sorted by name. CIL-MGRB trains on all of train/ and tests on
  the first 100 of test/.
- Ravi & Larochelle's: images/<wnid><8 digits>.jpg with train.csv, val.csv, test.csv
  (filename,label: 64 / 16 / 20 classes), or the same classes as class folders
  train/<wnid>/, val/<wnid>/, test/<wnid>/ (disjoint class sets). All 100 classes are used; per class,
  in sorted file order, the first 500 images train and the last 100 test (CIL-MGRB's own split of
  these files is not published: docs/deviations.md).
Labels follow the sorted wnids (CIL-MGRB's wnids.txt). Images that are not 84 x 84 are resized
(bilinear, as torchvision's Resize([84, 84])).
"""
from __future__ import annotations

import concurrent.futures
import csv
import logging
import os

import numpy as np

from cil_jax.input_pipeline.base import IMAGENET_MEAN, IMAGENET_STD, DataError, Source, Split, some_of, subset_per_class
from cil_jax.input_pipeline.image_folders import image_files, visible

_log = logging.getLogger(__name__)

SIZE = 84
TRAIN_PER_CLASS, TEST_PER_CLASS = 500, 100   # of the 600 of Ravi's files; CIL-MGRB's test folder: the first 100
LAYOUTS = ('train/<wnid>/ + test/<wnid>/ (CIL-MGRB\'s per-class split), images/ + train.csv, val.csv, test.csv '
           '(Ravi & Larochelle), or train/, val/, test/ class folders of Ravi\'s 64 / 16 / 20 classes')


def _images_in(folder: str) -> list[str]:
  """A class folder's image files in the reference's order: <wnid>_boxes.txt when present, else sorted."""
  wnid = os.path.basename(folder)
  boxes = os.path.join(folder, f'{wnid}_boxes.txt')
  if os.path.isfile(boxes):
    with open(boxes) as f:
      names = [line.split('\t')[0].strip() for line in f if line.strip()]
    return [os.path.join(folder, n) for n in names]
  return [os.path.join(folder, f) for f in image_files(folder)]


def _class_folders(path: str) -> dict[str, list[str]]:
  if not os.path.isdir(path):
    return {}
  return {d: _images_in(os.path.join(path, d)) for d in visible(os.listdir(path))
          if os.path.isdir(os.path.join(path, d))}


def _read_ravi_csvs(root: str) -> dict[str, list[str]]:
  by_class: dict[str, list[str]] = {}
  for part in ('train', 'val', 'test'):
    path = os.path.join(root, f'{part}.csv')
    if not os.path.isfile(path):
      raise DataError(f'{root} has images/ but no {part}.csv; miniImageNet needs {LAYOUTS}')
    with open(path, newline='') as f:
      rows = list(csv.reader(f))
    if not rows or [h.strip() for h in rows[0][:2]] != ['filename', 'label']:
      raise DataError(f'{path} does not start with the header filename,label (Ravi & Larochelle\'s csv)')
    for row in rows[1:]:
      if row:
        by_class.setdefault(row[1].strip(), []).append(os.path.join(root, 'images', row[0].strip()))
  return by_class


def _split_600(by_class: dict[str, list[str]]) -> tuple[dict, dict]:
  train, test = {}, {}
  for wnid, files in by_class.items():
    files = sorted(files)
    if len(files) < TRAIN_PER_CLASS + TEST_PER_CLASS:
      _log.warning('miniImageNet class %s has %d images, not 600: %d train / %d test', wnid, len(files),
                   max(0, len(files) - TEST_PER_CLASS), min(len(files), TEST_PER_CLASS))
    train[wnid], test[wnid] = files[:-TEST_PER_CLASS], files[-TEST_PER_CLASS:]
  return train, test


def find_files(root: str) -> tuple[dict[str, list[str]], dict[str, list[str]], str]:
  """(train files by wnid, test files by wnid, layout name)."""
  if not root:
    raise DataError(f'miniimagenet needs dataset.root: a folder with {LAYOUTS}')
  if not os.path.isdir(root):
    raise DataError(f'dataset.root={root} does not exist')
  if os.path.isdir(os.path.join(root, 'images')):
    train, test = _split_600(_read_ravi_csvs(root))
    return train, test, 'images/ + csv (first 500 / last 100 per class)'
  parts = {p: _class_folders(os.path.join(root, p)) for p in ('train', 'val', 'test')}
  if not parts['train'] or not parts['test']:
    raise DataError(f'{root} holds no miniImageNet: it needs {LAYOUTS}')
  if not parts['val'] and set(parts['train']) & set(parts['test']):   # per-class split
    missing = sorted(set(parts['train']) ^ set(parts['test']))
    if missing:
      raise DataError(f'class(es) {some_of(missing)} are in only one of {root}/train and {root}/test; each class '
                      'needs a folder in both')
    test = {w: files[:TEST_PER_CLASS] for w, files in parts['test'].items()}
    return parts['train'], test, 'train/ + test/ class folders'
  merged = {}
  for p in ('train', 'val', 'test'):
    twice = sorted(set(merged) & set(parts[p]))
    if twice:
      raise DataError(f'class(es) {some_of(twice)} of {root}/{p} are also in another split folder; Ravi\'s train/, '
                      'val/ and test/ hold disjoint classes (CIL-MGRB\'s layout has only train/ and test/)')
    merged.update(parts[p])
  train, test = _split_600(merged)
  return train, test, 'train/ val/ test/ class folders (first 500 / last 100 per class)'


def decode(path: str) -> np.ndarray:
  """One image as uint8 [84, 84, 3] RGB; OSError or ValueError (PIL's) when it cannot be read."""
  from PIL import Image
  with Image.open(path) as im:
    im = im.convert('RGB')
    if im.size != (SIZE, SIZE):
      im = im.resize((SIZE, SIZE), Image.BILINEAR)
    return np.asarray(im, np.uint8)


def read_images(files: list[str], threads: int = 0) -> tuple[np.ndarray, list[str]]:
  """(all files decoded, 'path (why)' of each one that could not be), in parallel: PIL releases
  the GIL while it decodes."""
  out = np.zeros((len(files), SIZE, SIZE, 3), np.uint8)

  def one(i):
    try:
      out[i] = decode(files[i])
    except FileNotFoundError:
      return f'{files[i]} (missing)'
    except Exception as e:  # noqa: BLE001 - any decoder failure: the file is unusable
      return f'{files[i]} ({type(e).__name__}: {e})'
    return None
  with concurrent.futures.ThreadPoolExecutor(threads or min(16, (os.cpu_count() or 1) * 2)) as pool:
    bad = [p for p in pool.map(one, range(len(files))) if p]
  return out, bad


def _to_split(by_class: dict[str, list[str]], wnids: list[str]) -> Split:
  files, labels = [], []
  for k, w in enumerate(wnids):
    files.extend(by_class[w])
    labels.extend([k] * len(by_class[w]))
  return Split(labels=np.asarray(labels, np.int64), files=np.asarray(files, dtype=str))


def file_splits(cfg) -> tuple[Split, Split, list[str], str]:
  """(train, test, sorted wnids, layout) with file paths: what the data check and the reader share."""
  train, test, layout = find_files(cfg.get('root') or '')
  wnids = sorted(train)
  empty = [w for w in wnids if not train[w] or not test[w]]
  if empty:
    raise DataError(f'class(es) {some_of(empty)} have no images in one of the splits ({layout})')
  return _to_split(train, wnids), _to_split(test, wnids), wnids, layout


def load(cfg, cache_dir: str | None = None) -> Source:
  train, test, wnids, layout = file_splits(cfg)
  limit = int(cfg.get('max_per_class') or 0)
  if limit:  # decode only what a quick look keeps
    train = subset_per_class(train, limit)
  if int(cfg.get('max_test_per_class') or 0):
    test = subset_per_class(test, int(cfg.max_test_per_class))
  _log.info('miniImageNet (%s): %d classes, %d train / %d test images', layout, len(wnids), len(train), len(test))
  (train_images, bad_train), (test_images, bad_test) = read_images(list(train.files)), read_images(list(test.files))
  bad = bad_train + bad_test
  if bad:
    raise DataError(f'{len(bad)} miniImageNet image(s) cannot be read: {"; ".join(bad[:3])}'
                    + (f' and {len(bad) - 3} more' if len(bad) > 3 else '')
                    + '; replace them (`cil-jax data check` lists them all)')
  return source_of(cfg, Split(labels=train.labels, images=train_images),
                   Split(labels=test.labels, images=test_images), wnids)


def source_of(cfg, train: Split, test: Split, wnids: list[str]) -> Source:
  return Source('miniimagenet', len(wnids), train, test, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                augment=cfg.get('augment') or 'crop_flip', image_size=SIZE, class_names=tuple(wnids),
                wnids=tuple(wnids))
