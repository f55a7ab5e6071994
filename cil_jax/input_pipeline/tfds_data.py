"""tensorflow_datasets as a reader: the small datasets as in-memory arrays (`arrays`), the large ones as
a random-access data source of encoded images (`records`, needs data prepared as array_record), and
the error that names every way to get a small dataset found nowhere (`not_found`).
"""
from __future__ import annotations

import contextlib
import logging
import os

import numpy as np

from cil_jax.errors import one_line
from cil_jax.input_pipeline.base import DataError, Split
from cil_jax.input_pipeline.streams import tensorflow
from cil_jax.native_output import native_output_silenced

_log = logging.getLogger(__name__)


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


def _tfds():
  """tensorflow_datasets, imported quietly after TensorFlow (accelerators hidden from it)."""
  tensorflow()
  with native_output_silenced(2):
    import tensorflow_datasets as tfds
  return tfds


def _tfds_builder(name: str, data_dir: str | None):
  """(builder, the data_dir it reads): dataset.data_dir, else tfds's default ($TFDS_DATA_DIR or
  ~/tensorflow_datasets), which only the builder knows for sure."""
  tfds = _tfds()
  with _absl_errors_only():
    builder = tfds.builder(name, data_dir=data_dir)
  root = getattr(builder, 'data_dir_root', None) or getattr(builder, '_data_dir_root', None)
  if root is None:
    from tensorflow_datasets.core import constants
    root = data_dir or constants.DATA_DIR
  return builder, os.fspath(root)


def _is_prepared(builder) -> bool:
  with _absl_errors_only():
    return builder.is_prepared()


def _describe_dir(path: str) -> str:
  if '://' in path:  # a bucket: checking it could wait on the network
    return path
  return f'{path} ({"exists" if os.path.isdir(path) else "does not exist"})'


def arrays(name: str, data_dir: str | None, download: bool) -> tuple[tuple[Split, Split, dict] | None, str]:
  """(train, test, class-name metadata) of a small tfds dataset, or None and why tfds could not give
  them."""
  try:
    tfds = _tfds()
  except ImportError:  # the accelerator machines may have no TensorFlow: the IDX / pickle files still serve
    return None, 'tensorflow_datasets is not installed'
  where = data_dir or "tfds's default data_dir"
  downloading = False
  try:
    builder, where = _tfds_builder(name, data_dir)
    if not _is_prepared(builder):
      if not download:
        return None, f'tfds has no prepared {name!r} in {_describe_dir(where)}'
      # offline, tfds retries for minutes before it fails: say what it is waiting for
      _log.warning('dataset.download=True: downloading %r with tfds into %s (needs internet access; offline it '
                   'retries for minutes, set dataset.download=False to fail at once)', name, where)
      downloading = True
      builder.download_and_prepare()
    out = []
    for split in ('train', 'test'):
      ds = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
      images = np.asarray(ds['image'], np.uint8)
      if images.ndim == 3:
        images = images[..., None]
      coarse = np.asarray(ds['coarse_label'], np.int64) if 'coarse_label' in ds else None
      out.append(Split(labels=np.asarray(ds['label'], np.int64), images=images, coarse_labels=coarse))
    features = builder.info.features
    meta = {'class_names': tuple(features['label'].names),
            'coarse_names': tuple(features['coarse_label'].names) if 'coarse_label' in features else None}
    return (out[0], out[1], meta), ''
  except Exception as e:  # noqa: BLE001 - no network, broken cache...: the caller names the other ways
    action = 'download {!r} into' if downloading else 'read {!r} from'
    return None, f'tfds could not {action.format(name)} {where} ({one_line(e)})'


def not_found(title: str, name: str, why: str, download: bool, files: str) -> str:
  """The error for a small dataset found nowhere: what was looked at, then every way out."""
  ways = [f'set dataset.root to {files}',
          f'set dataset.data_dir to a tfds data_dir where {name!r} is prepared (`tfds build {name} '
          '--data_dir=DIR` where there is internet access, then copy DIR here)']
  if not download:
    ways.append('set dataset.download=True to let tfds download it (needs internet access)')
  return f'{title} not found: {why}; ' + ', or '.join(ways)


def records(name: str, data_dir: str | None, split: str,
            cache_dir: str | None) -> tuple[Split, int | None, tuple[str, ...] | None]:
  """Random-access tfds data source (needs data prepared as array_record) with raw encoded images, and
  the dataset's number of classes and class names when tfds knows them."""
  tfds = _tfds()
  builder, where = _tfds_builder(name, data_dir)
  build = (f'`tfds build {name} --file_format=array_record --data_dir={where}` ({name} first needs '
           f'ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in {where}/downloads/manual)')
  folders = 'set dataset.root to a folder holding train/<class>/*.JPEG and val/<class>/*.JPEG'
  try:
    source = builder.as_data_source(split=split, decoders={'image': tfds.decode.SkipDecoding()})
  except Exception as e:  # noqa: BLE001
    if not _is_prepared(builder):  # tfds's own message would name a dataset folder that is not there
      raise DataError(f'dataset.root is unset and tfds {name!r} is not prepared in {_describe_dir(where)}, the '
                      "data_dir tfds reads (dataset.data_dir, or tfds's default when that is unset); either "
                      f'prepare it there with {build}, or {folders}') from e
    raise DataError(f'tfds {name!r} in {where} cannot be read with random access ({one_line(e)}); '
                    f'either rebuild it there with {build}, or {folders}') from e
  try:
    num_classes = int(builder.info.features['label'].num_classes)
    names = tuple(builder.info.features['label'].names)
  except Exception:  # noqa: BLE001 - a dataset without a ClassLabel: the labels tell
    num_classes, names = None, None
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
  return Split(labels=labels, records=source), num_classes, names

