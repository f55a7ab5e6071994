"""sources.load on missing, partial and inconsistent data: each failure is one line that says what is
wrong and what to do. Nothing here reaches the network: tfds downloads are patched to fail. Last, the
package's own shape: no import cycle, no module reaching into another's private names."""
import ast
import logging
import os
import shutil
import time

import numpy as np
import pytest

from cil_jax import config_base
from cil_jax.input_pipeline import fashion_mnist, image_checks, sources, streams
from cil_jax.input_pipeline.base import DataError, Split


class NoNetwork(ConnectionError):
  pass


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
  """Any tfds download fails at once, as offline but without the minutes of retries."""
  import tensorflow_datasets as tfds
  def refuse(self, *args, **kwargs):
    raise NoNetwork('no internet in this test')
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', refuse)


def _dataset_cfg(**fields):
  c = config_base.base_config().dataset
  c.update(fields)
  return c


def _load_error(cfg):
  with pytest.raises(DataError) as info:
    sources.load(cfg)
  message = str(info.value)
  assert '\n' not in message  # main.py prints it as one `error: ...` line
  return message


# --- 1. a missing small dataset --------------------------------------------------------------------

@pytest.mark.parametrize('name,files', [('fashion_mnist', 'train-images-idx3-ubyte'),
                                        ('cifar10', 'cifar-10-batches-py'),
                                        ('cifar100', 'cifar-100-python')])
def test_missing_dataset_without_download_fails_at_once_naming_the_ways_out(name, files, tmp_path,
                                                                           monkeypatch):
  monkeypatch.setattr(fashion_mnist, 'DEBIAN_DIR', str(tmp_path / 'no_debian_package'))
  data_dir = tmp_path / 'tfds'
  data_dir.mkdir()
  streams.tensorflow()   # its import takes seconds on a slow machine; the lookup is what is timed
  start = time.monotonic()
  message = _load_error(_dataset_cfg(name=name, root='', data_dir=str(data_dir), download=False))
  assert time.monotonic() - start < 5
  for part in ('dataset.root', files, 'dataset.data_dir', str(data_dir), 'dataset.download=True'):
    assert part in message, (part, message)


@pytest.mark.parametrize('name', ['fashion_mnist', 'cifar10', 'cifar100'])
def test_failed_download_says_so_and_names_the_alternatives(name, tmp_path, monkeypatch, caplog):
  monkeypatch.setattr(fashion_mnist, 'DEBIAN_DIR', str(tmp_path / 'no_debian_package'))
  data_dir = tmp_path / 'tfds'
  with caplog.at_level(logging.WARNING):
    message = _load_error(_dataset_cfg(name=name, root='', data_dir=str(data_dir), download=True))
  for part in ('no internet in this test', 'dataset.root', 'dataset.data_dir', str(data_dir)):
    assert part in message, (part, message)
  # the attempt is announced before it starts: offline, tfds retries for minutes
  assert any('download' in r.getMessage() and name in r.getMessage() for r in caplog.records)


def test_prepared_tfds_copy_is_used(tmp_path, monkeypatch):
  import tensorflow as tf
  import tensorflow_datasets as tfds
  def as_dataset(self, split, batch_size):  # a prepared copy in dataset.data_dir, as whole-split tensors
    n = 30 if split == 'train' else 10
    return {'image': tf.zeros((n, 32, 32, 3), tf.uint8), 'label': tf.range(n, dtype=tf.int64) % 100}
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'is_prepared', lambda self: True)
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'as_dataset', as_dataset)
  source = sources.load(_dataset_cfg(name='cifar100', root='', data_dir=str(tmp_path), download=False))
  assert source.train.images.shape == (30, 32, 32, 3) and len(source.test) == 10


# --- 2. ImageNet through tfds, not prepared ---------------------------------------------------------

@pytest.mark.parametrize('where', ['missing', 'empty', 'default'])
def test_unprepared_tfds_imagenet_names_the_data_dir_tfds_used(where, tmp_path, monkeypatch, caplog):
  from tensorflow_datasets.core import constants
  data_dir = tmp_path / 'tfds'
  if where == 'empty':
    data_dir.mkdir()
  if where == 'default':  # tfds's own default, ~/tensorflow_datasets or $TFDS_DATA_DIR
    monkeypatch.setattr(constants, 'DATA_DIR', str(data_dir))
  cfg = _dataset_cfg(name='imagenet', root='', data_dir='' if where == 'default' else str(data_dir),
                     num_classes=1000)
  with caplog.at_level(logging.WARNING):
    message = _load_error(cfg)
  assert f'{data_dir} (' in message, message
  assert ('does not exist' in message) == (where != 'empty'), message
  for part in ('tfds build imagenet2012 --file_format=array_record', 'dataset.root', 'train/', 'val/'):
    assert part in message, (part, message)
  assert 'already prepared' not in message
  assert not [r for r in caplog.records if r.name == 'absl' and r.levelno >= logging.WARNING]


# --- 3-5. ImageNet class folders --------------------------------------------------------------------

@pytest.fixture
def folders(imagenet_dir, tmp_path):
  """A writable copy of the 4-class ImageNet fixture."""
  root = tmp_path / 'imagenet'
  shutil.copytree(imagenet_dir, root)
  return root


def _imagenet_cfg(root, num_classes=4):
  return _dataset_cfg(name='imagenet', root=str(root), num_classes=num_classes)


def test_consistent_folders_load(folders):
  (folders / 'train' / '.ipynb_checkpoints').mkdir()  # hidden folders are never classes
  (folders / 'val' / '.ipynb_checkpoints').mkdir()
  source = sources.load(_imagenet_cfg(folders))
  assert len(source.train) == 40 and len(source.test) == 12
  assert sorted(np.unique(source.train.labels)) == [0, 1, 2, 3]


def test_a_root_one_level_too_deep_or_missing_says_what_the_root_must_hold(folders, tmp_path):
  message = _load_error(_imagenet_cfg(folders / 'train'))
  assert message == (f'image folder {folders}/train/train does not exist: dataset.root must be the folder that '
                     f'holds train/ and val/, each with a folder per class, and {folders}/train has no train/')
  assert _load_error(_imagenet_cfg(tmp_path / 'nowhere')).endswith(f'and {tmp_path}/nowhere does not exist')


def test_fewer_class_folders_than_num_classes(folders):
  message = _load_error(_imagenet_cfg(folders, num_classes=1000))
  assert f'{folders}/train has 4 class folders but dataset.num_classes=1000;' in message
  assert 'dataset.root' in message and 'dataset.num_classes=4' in message and 'scenario' in message


def test_more_class_folders_than_num_classes(folders):
  message = _load_error(_imagenet_cfg(folders, num_classes=2))
  assert f'{folders}/train has 4 class folders but dataset.num_classes=2;' in message
  assert 'dataset.root' in message and 'dataset.num_classes=4' in message


def _empty(folder):
  for f in os.listdir(folder):
    os.remove(folder / f)
  (folder / 'notes.txt').write_text('not an image')


def test_empty_training_class_folder_is_named(folders):
  _empty(folders / 'train' / 'n00000001')
  message = _load_error(_imagenet_cfg(folders))
  assert str(folders / 'train' / 'n00000001') in message and 'no image files' in message


def test_val_class_folder_absent_from_train_is_named(folders):
  extra = folders / 'val' / 'n00000009'
  extra.mkdir()
  shutil.copy(folders / 'val' / 'n00000000' / 'n00000000_0.JPEG', extra / 'n00000009_0.JPEG')
  message = _load_error(_imagenet_cfg(folders))
  assert "'n00000009'" in message and str(folders / 'val') in message and 'train' in message


def test_train_class_missing_from_val_is_named(folders):
  shutil.rmtree(folders / 'val' / 'n00000003')
  message = _load_error(_imagenet_cfg(folders))
  assert 'has no folder for class' in message and "'n00000003'" in message


def test_empty_val_class_folder_is_named(folders):
  _empty(folders / 'val' / 'n00000002')
  message = _load_error(_imagenet_cfg(folders))
  assert str(folders / 'val' / 'n00000002') in message and 'test images' in message


# --- 6. naming a corrupt image -------------------------------------------------------------------

def test_find_bad_image_names_the_first_corrupt_one(folders):
  bad = folders / 'train' / 'n00000002' / 'n00000002_3.JPEG'
  bad.write_bytes(b'not a jpeg at all')
  split = sources.load(_imagenet_cfg(folders)).train
  i = int(np.flatnonzero(split.files == str(bad))[0])
  everything = np.arange(len(split))
  message = image_checks.find_bad_image(split, everything)
  assert message and str(bad) in message
  assert image_checks.find_bad_image(split, np.delete(everything, i)) is None
  assert image_checks.find_bad_image(split, []) is None
  assert image_checks.check_image(split, i) == message and image_checks.check_image(split, 0) is None
  in_memory = Split(labels=np.zeros(2, np.int64), images=np.zeros((2, 4, 4, 1), np.uint8))
  assert image_checks.find_bad_image(in_memory, [0, 1]) is None


def test_prepared_tfds_imagenet_is_read_with_random_access(tmp_path):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=12):
    source = sources.load(_dataset_cfg(name='imagenet', root='', data_dir=str(tmp_path), num_classes=1000),
                          cache_dir=str(tmp_path / 'cache'))
    assert len(source.train) == 12 and source.train.records is not None
    message = _load_error(_dataset_cfg(name='imagenet', root='', data_dir=str(tmp_path), num_classes=100))
  assert 'tfds imagenet2012 has 1000 classes but dataset.num_classes=100;' in message


# --- 7. the package's imports ---------------------------------------------------------------------

PACKAGE = 'cil_jax.input_pipeline'


def _imports() -> dict[str, list[tuple[str, list[str]]]]:
  """Module of the package -> (module of the package, names taken from it) for each import of one,
  anywhere in its file (an import inside a function counts: it closes a cycle as well)."""
  folder = os.path.dirname(sources.__file__)
  modules = {f[:-3] for f in os.listdir(folder) if f.endswith('.py') and f != '__init__.py'}
  out = {}
  for name in sorted(modules):
    with open(os.path.join(folder, name + '.py')) as f:
      tree = ast.parse(f.read())
    found = []
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
        found += [(a.name, []) for a in node.names]
      elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith(PACKAGE + '.'):
        found.append((node.module.split('.')[2], [a.name for a in node.names]))
      elif isinstance(node, ast.Import):
        found += [(a.name.split('.')[2], []) for a in node.names if a.name.startswith(PACKAGE + '.')]
    out[name] = [(m, names) for m, names in found if m in modules]
  return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle of `graph` (module -> the modules it imports) as a path, or None."""
  done, path = set(), []

  def visit(m):
    if m in path:
      return path[path.index(m):] + [m]
    if m in done:
      return None
    path.append(m)
    found = next((c for c in map(visit, sorted(graph[m])) if c), None)
    path.pop()
    done.add(m)
    return found
  return next((c for c in map(visit, sorted(graph)) if c), None)


def test_the_input_pipeline_has_no_import_cycle_and_no_module_imports_a_private_name():
  imports = _imports()
  assert {'base', 'sources', 'streams', 'image_checks', 'tfds_data'} <= set(imports)
  assert _cycle({m: {d for d, _ in found} for m, found in imports.items()}) is None
  assert _cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']   # the finder finds one
  private = [(m, d, n) for m, found in imports.items() for d, names in found for n in names if n.startswith('_')]
  assert private == []
