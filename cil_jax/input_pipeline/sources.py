"""Dataset sources: where the images and labels come from, in each real on-disk format.

A source gives a train and a test `Split`. Small datasets (Fashion-MNIST, CIFAR) are held in memory
as uint8 arrays; large ones (ImageNet) are read per image (file paths or a tfds random-access data
source) and decoded in tf.data. Labels are the dataset's original labels; the scenario remaps them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import logging
import os
import pickle
from typing import Any, Callable

import numpy as np

from cil_jax.native_output import native_output_silenced

_log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FASHION_MNIST_DEB_DIR = '/usr/share/datasets/fashion-mnist'
IMAGE_EXTENSIONS = ('.jpeg', '.jpg', '.png', '.bmp', '.gif')


class DataError(RuntimeError):
  """Missing or unreadable data; the message says how to get or fix it."""


FASHION_MNIST_NAMES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
                       'Bag', 'Ankle boot')
CIFAR10_NAMES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')


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
  augment: str  # one of AUGMENTS
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


# --- Fashion-MNIST (tfds or IDX) ------------------------------------------------------------------

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


def load_idx_split(root: str, prefix: str) -> Split:
  img = _find_idx(root, f'{prefix}-images-idx3-ubyte')
  lab = _find_idx(root, f'{prefix}-labels-idx1-ubyte')
  if img is None or lab is None:
    raise DataError(f'{prefix}-images-idx3-ubyte(.gz) / {prefix}-labels-idx1-ubyte(.gz) not found in {root}')
  images, labels = _read_idx(img), _read_idx(lab)
  if len(images) != len(labels):
    raise DataError(f'{img} holds {len(images)} images but {lab} {len(labels)} labels')
  return Split(labels=labels.astype(np.int64), images=images[..., None])


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


def _one_line(e: BaseException, limit: int = 300) -> str:
  """An exception as one short line: tfds errors span lines, and main.py prints one `error:` line."""
  text = ' '.join(str(e).split())
  if len(text) > limit:
    text = text[:limit - 3] + '...'
  return f'{type(e).__name__}: {text}' if text else type(e).__name__


def _tfds():
  """tensorflow_datasets, imported quietly after TensorFlow (accelerators hidden from it)."""
  from cil_jax.input_pipeline import streams   # here: streams imports this module
  streams.tensorflow()
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


def _tfds_arrays(name: str, data_dir: str | None, download: bool) -> tuple[tuple[Split, Split, dict] | None, str]:
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
    return None, f'tfds could not {action.format(name)} {where} ({_one_line(e)})'


def _not_found(title: str, name: str, why: str, download: bool, files: str) -> str:
  """The error for a small dataset found nowhere: what was looked at, then every way out."""
  ways = [f'set dataset.root to {files}',
          f'set dataset.data_dir to a tfds data_dir where {name!r} is prepared (`tfds build {name} '
          '--data_dir=DIR` where there is internet access, then copy DIR here)']
  if not download:
    ways.append('set dataset.download=True to let tfds download it (needs internet access)')
  return f'{title} not found: {why}; ' + ', or '.join(ways)


FASHION_MNIST_FILES = ('a folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, '
                       't10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (Debian/Ubuntu: '
                       '`apt-get install dataset-fashion-mnist` installs them where they are found without '
                       'dataset.root)')


def load_fashion_mnist(cfg) -> Source:
  """dataset.root's IDX files; else tfds if prepared; else the Debian package's IDX files; else a
  tfds download (dataset.download, needs internet)."""
  root = cfg.get('root') or None
  data_dir = cfg.get('data_dir') or None
  download = bool(cfg.get('download', False))
  splits = None
  if root is None:
    splits, why = _tfds_arrays('fashion_mnist', data_dir, download=False)
    if splits is None and os.path.isdir(FASHION_MNIST_DEB_DIR):
      root = FASHION_MNIST_DEB_DIR
    elif splits is None and download:
      splits, why = _tfds_arrays('fashion_mnist', data_dir, download=True)
    if splits is None and root is None:
      raise DataError(_not_found('Fashion-MNIST', 'fashion_mnist',
                                 f'dataset.root is unset, the Debian package dataset-fashion-mnist is not '
                                 f'installed and {why}', download, FASHION_MNIST_FILES))
  if splits is None:
    splits = load_idx_split(root, 'train'), load_idx_split(root, 't10k')
  return Source('fashion_mnist', 10, splits[0], splits[1], mean=(0.2860,), std=(0.3530,),
                augment=cfg.get('augment') or 'crop_flip', image_size=28, class_names=FASHION_MNIST_NAMES)


# --- CIFAR (tfds or the official python pickles) -------------------------------------------------

def _unpickle(path: str) -> dict:
  try:
    with open(path, 'rb') as f:
      return pickle.load(f, encoding='bytes')
  except (FileNotFoundError, PermissionError):   # no file, or not this user's to read: not a bad pickle
    raise
  except Exception as e:  # noqa: BLE001
    raise DataError(f'{path} is not a readable CIFAR python pickle ({e}); re-download cifar-*-python.tar.gz') from e


def _cifar_from_dict(d: dict, label_key: bytes) -> Split:
  data = np.asarray(d[b'data'], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  coarse = np.asarray(d[b'coarse_labels'], np.int64) if b'coarse_labels' in d else None
  return Split(labels=np.asarray(d[label_key], np.int64), images=np.ascontiguousarray(data), coarse_labels=coarse)


def _cifar100_names(root: str) -> dict:
  """Fine and coarse class names from the pickles' `meta` file (absent: no names)."""
  folder = root if os.path.exists(os.path.join(root, 'train')) else os.path.join(root, 'cifar-100-python')
  path = os.path.join(folder, 'meta')
  if not os.path.exists(path):
    return {}
  meta = _unpickle(path)
  decode = lambda names: tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)  # noqa: E731
  return {'class_names': decode(meta[b'fine_label_names']), 'coarse_names': decode(meta[b'coarse_label_names'])}


def load_cifar_pickles(root: str, num_classes: int) -> tuple[Split, Split]:
  if num_classes == 100:
    folder = root if os.path.exists(os.path.join(root, 'train')) else os.path.join(root, 'cifar-100-python')
    try:
      return (_cifar_from_dict(_unpickle(os.path.join(folder, 'train')), b'fine_labels'),
              _cifar_from_dict(_unpickle(os.path.join(folder, 'test')), b'fine_labels'))
    except FileNotFoundError as e:
      raise DataError(f'CIFAR-100 pickles not found ({e.filename}); dataset.root must hold '
                      'cifar-100-python/{train,test} (unpack cifar-100-python.tar.gz)') from e
  folder = root if os.path.exists(os.path.join(root, 'data_batch_1')) else os.path.join(root, 'cifar-10-batches-py')
  try:
    parts = [_unpickle(os.path.join(folder, f'data_batch_{i}')) for i in range(1, 6)]
    test = _unpickle(os.path.join(folder, 'test_batch'))
  except FileNotFoundError as e:
    raise DataError(f'CIFAR-10 pickles not found ({e.filename}); dataset.root must hold '
                    'cifar-10-batches-py/data_batch_{1..5},test_batch (unpack cifar-10-python.tar.gz)') from e
  train = {b'data': np.concatenate([p[b'data'] for p in parts]),
           b'labels': np.concatenate([p[b'labels'] for p in parts])}
  return _cifar_from_dict(train, b'labels'), _cifar_from_dict(test, b'labels')


CIFAR_FILES = {
    10: 'the folder of the official CIFAR-10 python pickles (cifar-10-batches-py/data_batch_1..5 and '
        'test_batch: cifar-10-python.tar.gz unpacked)',
    100: 'the folder of the official CIFAR-100 python pickles (cifar-100-python/train and test: '
         'cifar-100-python.tar.gz unpacked)',
}


def _load_cifar(cfg, num_classes: int) -> Source:
  """dataset.root's python pickles; else tfds if prepared; else a tfds download (dataset.download)."""
  name = f'cifar{num_classes}'
  root = cfg.get('root') or None
  data_dir = cfg.get('data_dir') or None
  download = bool(cfg.get('download', False))
  if root:
    splits = load_cifar_pickles(root, num_classes)
    meta = _cifar100_names(root) if num_classes == 100 else {}
  else:
    splits, why = _tfds_arrays(name, data_dir, download=False)
    if splits is None and download:
      splits, why = _tfds_arrays(name, data_dir, download=True)
    if splits is None:
      raise DataError(_not_found(f'CIFAR-{num_classes}', name, f'dataset.root is unset and {why}', download,
                                 CIFAR_FILES[num_classes]))
    meta = splits[2]
  if num_classes == 10:
    meta = dict(meta, class_names=CIFAR10_NAMES)
  mean = (0.5071, 0.4866, 0.4409) if num_classes == 100 else (0.4914, 0.4822, 0.4465)
  std = (0.2673, 0.2564, 0.2762) if num_classes == 100 else (0.2470, 0.2435, 0.2616)
  return Source(name, num_classes, splits[0], splits[1], mean=mean, std=std,
                augment=cfg.get('augment') or 'crop_flip', image_size=32, **meta)


# --- ImageNet (tfds prepared data or train/ val/ class folders) ----------------------------------

def _visible(names) -> list[str]:
  # tools leave hidden entries (.ipynb_checkpoints, macOS ._* files): they are never classes or images
  return sorted(n for n in names if not n.startswith('.'))


def _some(names: list[str], shown: int = 5) -> str:
  text = ', '.join(repr(n) for n in names[:shown])
  return text + (f' and {len(names) - shown} more' if len(names) > shown else '')


def load_image_folder(root: str, classes: list[str] | None = None, others_ok: bool = False) -> tuple[Split, list[str]]:
  """torchvision ImageFolder layout: root/<class>/<image>; classes sorted by name. Given `classes`
  (the training set's), root must hold exactly those class folders, as a test set must; with
  `others_ok` (a class list over a bigger tree: ImageNet-100) it reads those and ignores the rest."""
  if not os.path.isdir(root):
    parent, part = os.path.split(os.path.normpath(root))
    if part in ('train', 'val'):   # ImageNet's layout: the root is the folder above
      where = 'does not exist' if not os.path.isdir(parent) else f'has no {part}/'
      raise DataError(f'image folder {root} does not exist: dataset.root must be the folder that holds train/ and '
                      f'val/, each with a folder per class, and {parent} {where}')
    raise DataError(f'image folder {root} does not exist')
  found = [d for d in _visible(os.listdir(root)) if os.path.isdir(os.path.join(root, d))]
  test_set = classes is not None and not others_ok
  if classes is not None:
    have = set(found)
    missing = [c for c in classes if c not in have]
    if missing:
      needs = ('one folder of images per training class' if test_set else
               'a folder for each class of the class list (dataset.class_list)')
      raise DataError(f'{root} has no folder for class {missing[0]!r}, which the '
                      f'{"training set" if test_set else "class list"} has'
                      + (f' ({len(missing)} classes missing: {_some(missing)})' if len(missing) > 1 else '')
                      + f'; it needs {needs}')
    extra = sorted(set(found) - set(classes))
    if extra and test_set:
      raise DataError(f'{root} has folder(s) for class(es) {_some(extra)}, which the training set does not have; '
                      'the test set must hold exactly the training set\'s class folders: remove them, or add '
                      'those classes\' training images to the training set')
  else:
    classes = found
  if not classes:
    raise DataError(f'no images found under {root} (expected {root}/<class>/<image>.JPEG)')
  files, labels = [], []
  for c, name in enumerate(classes):
    folder = os.path.join(root, name)
    images = [f for f in _visible(os.listdir(folder)) if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not images:
      kinds = '/'.join(IMAGE_EXTENSIONS)
      if test_set:  # a class without test images would give a task evaluated on nothing
        raise DataError(f'{folder} has no image files ({kinds}), so class {name!r} would have no test images; '
                        'put its test images there')
      fix = ('drop the class from dataset.class_list' if others_ok else
             'remove the folder (and the same class folder of the other split)')
      raise DataError(f'{folder} has no image files ({kinds}), so class {name!r} would have no images in this '
                      f'split; put its images there, or {fix}')
    files.extend(os.path.join(folder, f) for f in images)
    labels.extend([c] * len(images))
  return Split(labels=np.asarray(labels, np.int64), files=np.asarray(files)), classes


def _tfds_records(name: str, data_dir: str | None, split: str,
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
    raise DataError(f'tfds {name!r} in {where} cannot be read with random access ({_one_line(e)}); '
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


def load_imagenet(cfg, cache_dir: str | None = None) -> Source:
  root = cfg.get('root') or None
  num_classes = int(cfg.get('num_classes') or 1000)
  setting = f'dataset.num_classes={num_classes}' if cfg.get('num_classes') else 'dataset.num_classes=0 (1000)'
  if root:
    train, classes = load_image_folder(os.path.join(root, 'train'))
    found, what = len(classes), f'{os.path.join(root, "train")} has {len(classes)} class folders'
    subset = 'the full dataset' if found < num_classes else 'a dataset'
    subset = f'point dataset.root at {subset} with {num_classes} class folders in train/ and val/'
    if found != num_classes:  # checked before val/ is listed: a wrong root fails here, at once
      raise DataError(f'{what} but {setting}; {subset}, or set dataset.num_classes={found} along with '
                      f'scenario.base and scenario.step that fit {found} classes')
    test, _ = load_image_folder(os.path.join(root, 'val'), classes)
    wnids = tuple(classes)  # the folders are named by WordNet id (n01440764, ...)
  else:  # tfds; a missing or tfrecord-only preparation fails in _tfds_records with the fix
    train, found, wnids = _tfds_records('imagenet2012', cfg.get('data_dir') or None, 'train', cache_dir)
    test, _, _ = _tfds_records('imagenet2012', cfg.get('data_dir') or None, 'validation', cache_dir)
    found = found or int(train.labels.max()) + 1
    if found != num_classes:
      raise DataError(f'tfds imagenet2012 has {found} classes but {setting}; set dataset.num_classes={found} '
                      f'(with scenario.base and scenario.step that fit), or set dataset.root to train/ and val/ '
                      f'folders holding {num_classes} classes')
  return Source('imagenet', num_classes, train, test, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                augment=cfg.get('augment') or 'imagenet', image_size=int(cfg.get('image_size') or 224),
                class_names=wnids, wnids=wnids)


WNID_FORMAT = 'n + 8 digits, e.g. n01440764'


def imagenet100_classes(cfg) -> list[str]:
  """The sorted WordNet ids of dataset.class_list: 'lucir' (default), 'podnet', or a text file of
  wnids (one per line, '#' comments)."""
  from cil_jax.input_pipeline import class_lists
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
    raise DataError(f'{value} lists {_some(twice)} more than once; list each class once')
  return sorted(wnids)


class RecordSubset:
  """Some records of a tfds random-access data source, by position (ImageNet-100 over imagenet2012)."""

  def __init__(self, records, index: np.ndarray):
    self.records, self.index = records, np.asarray(index, np.int64)

  def __len__(self):
    return len(self.index)

  def __getitem__(self, i):
    return self.records[int(self.index[i])]


def _records_of(split: Split, names: tuple[str, ...] | None, wnids: list[str], what: str) -> Split:
  if names is None:
    raise DataError(f'tfds imagenet2012 ({what}) gives no class names, so the ImageNet-100 classes cannot be '
                    'found; set dataset.root to ImageNet train/ and val/ class folders')
  position = {n: k for k, n in enumerate(names)}
  missing = [w for w in wnids if w not in position]
  if missing:
    raise DataError(f'tfds imagenet2012 ({what}) has no class {_some(missing)} of dataset.class_list')
  relabel = np.full(len(names), -1, np.int64)
  relabel[[position[w] for w in wnids]] = np.arange(len(wnids))
  keep = np.flatnonzero(relabel[split.labels] >= 0)
  return Split(labels=relabel[split.labels[keep]], records=take(split, keep).records)


def load_imagenet100(cfg, cache_dir: str | None = None) -> Source:
  """A class list over an ImageNet-1K source (dataset.root's train/ and val/ class folders, the full
  1000 or just the listed ones, or tfds imagenet2012): nothing is copied. Labels follow the sorted
  wnids, as LUCIR's and PODNet's subsets."""
  wnids = imagenet100_classes(cfg)
  wanted = int(cfg.get('num_classes') or 0)
  if wanted and wanted != len(wnids):
    raise DataError(f'dataset.num_classes={wanted} but dataset.class_list has {len(wnids)} classes; set '
                    f'dataset.num_classes=0 (the list decides)')
  root = cfg.get('root') or None
  if root:
    train, _ = load_image_folder(os.path.join(root, 'train'), wnids, others_ok=True)
    test, _ = load_image_folder(os.path.join(root, 'val'), wnids, others_ok=True)
  else:
    data_dir = cfg.get('data_dir') or None
    train_all, _, names = _tfds_records('imagenet2012', data_dir, 'train', cache_dir)
    test_all, _, test_names = _tfds_records('imagenet2012', data_dir, 'validation', cache_dir)
    train = _records_of(train_all, names, wnids, 'train')
    test = _records_of(test_all, test_names, wnids, 'validation')
  return Source('imagenet100', len(wnids), train, test, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                augment=cfg.get('augment') or 'imagenet', image_size=int(cfg.get('image_size') or 224),
                class_names=tuple(wnids), wnids=tuple(wnids))


def _landmarks(name: str):
  def load(cfg, cache_dir=None):
    from cil_jax.input_pipeline import landmarks
    return landmarks.load_landmarks(cfg, name)
  return load


def _miniimagenet(cfg, cache_dir=None):
  from cil_jax.input_pipeline import miniimagenet
  return miniimagenet.load_miniimagenet(cfg)


LOADERS: dict[str, Callable[..., Source]] = {
    'fashion_mnist': lambda cfg, cache_dir=None: load_fashion_mnist(cfg),
    'cifar10': lambda cfg, cache_dir=None: _load_cifar(cfg, 10),
    'cifar100': lambda cfg, cache_dir=None: _load_cifar(cfg, 100),
    'imagenet': load_imagenet,
    'imagenet100': load_imagenet100,
    'miniimagenet': _miniimagenet,
    'landmarks_v2_1k': _landmarks('landmarks_v2_1k'),
    'landmarks_v2_10k': _landmarks('landmarks_v2_10k'),
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
  source = LOADERS[cfg.name](cfg, cache_dir=cache_dir)   # the name was checked with the config
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
  import hashlib
  out = {'classes': int(source.num_classes)}
  for name, split in (('train', source.train), ('test', source.test)):
    digest = hashlib.sha1(np.ascontiguousarray(split.labels, np.int64).tobytes())
    if split.files is not None:
      digest.update('\n'.join(p[p.rfind('/', 0, p.rfind('/')) + 1:] for p in split.files.tolist()).encode())
    out[name] = {'images': len(split), 'digest': digest.hexdigest()}
  return out


NOT_PERMITTED = 'permission denied for user'   # check_image's words for a file this user may not read


def bad_image_fix(split: Split, problem: str = '') -> str:
  """What to do about an unreadable image a run found in `split` (check_image's `problem`; the
  fingerprint makes a removed file, or a tfds copy prepared again, a new dataset)."""
  if NOT_PERMITTED in problem:
    return ('make it readable for that user (chmod, chown), then rerun the same command to resume from the last '
            'checkpoint')
  if split.files is None:
    return ('the tfds copy holds an unreadable record: prepare it again, then start in a new --workdir (the '
            'data changed)')
  return ('replace it with a readable image at the same path, then rerun the same command to resume (a removed '
          'file changes the dataset: that needs a new --workdir); `python -m cil_jax.tools.data_check check` with the same '
          'config lists every unreadable file')


def check_image(split: Split, i: int) -> str | None:
  """None when example i decodes, else a message naming it (used to explain a tf.data failure)."""
  if split.images is not None:
    return None
  from PIL import Image
  try:
    if split.files is not None:
      with Image.open(str(split.files[i])) as im:
        im.load()
    else:
      import io
      with Image.open(io.BytesIO(split.records[i]['image'])) as im:
        im.load()
  except PermissionError:   # the file is fine: this user may not read it
    from cil_jax.errors import user
    return f'cannot read image {split.describe(i)} ({NOT_PERMITTED} {user()})'
  except Exception as e:  # noqa: BLE001 - any decoder failure means the image is unusable
    return f'corrupt or unreadable image {split.describe(i)} ({type(e).__name__}: {e})'
  return None


# The formats tf.io.decode_image tells apart by their first bytes (JPEG XL has no PIL reader here)
_SIGNATURES = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG\r\n\x1a\n', 'PNG'), (b'GIF8', 'GIF'), (b'BM', 'BMP'),
               (b'\xff\x0a', 'JPEG XL'), (b'\x00\x00\x00\x0cJXL ', 'JPEG XL'))


def _image_kind(head: bytes) -> str | None:
  if head[:4] == b'RIFF' and head[8:12] == b'WEBP':
    return 'WebP'
  return next((kind for magic, kind in _SIGNATURES if head.startswith(magic)), None)


def header_problem(path: str) -> str | None:
  """None when the file exists, is not empty, starts as a format the decoder reads and its header
  parses (PIL reads the header, not the pixels); else what is wrong. A full decode is the data
  check's job (`python -m cil_jax.tools.data_check check`)."""
  from PIL import Image
  kind = None
  try:
    with open(path, 'rb') as f:
      if hasattr(os, 'posix_fadvise'):   # no read-ahead of the pixels: a quarter of the bytes read (measured)
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
      head = f.read(16)
      if not head:
        return 'an empty file'
      kind = _image_kind(head)
      if kind is None:
        return f'not a JPEG, PNG, GIF, BMP or WebP file: it starts with {head[:8]!r}'
      if kind != 'JPEG XL':
        f.seek(0)
        with Image.open(f) as im:
          if min(im.size) < 1:
            return f'a {kind} header of size {im.size}'
  except FileNotFoundError:
    return 'missing'
  except Image.DecompressionBombError:   # a header that parsed, of a very large image: decodable
    return None
  except OSError as e:
    if kind is None:
      return f'unreadable: {e.strerror or e}'
    return f'its {kind} header does not parse ({type(e).__name__}: {e})'
  except Exception as e:  # noqa: BLE001 - any parser failure: the decoder would fail too
    return f'its {kind} header does not parse ({type(e).__name__}: {e})'
  return None


def unreadable_images(split: Split, indices=None, threads: int = 32) -> list[str]:
  """'path (why)' of every image among `indices` (default: all) of a file split that header_problem
  rejects, in index order; [] for in-memory and tfds splits. Threads: the checks wait on the disk."""
  if split.files is None:
    return []
  import concurrent.futures
  idx = np.arange(len(split)) if indices is None else np.asarray(indices, np.int64).reshape(-1)
  paths = [str(p) for p in split.files[idx]]
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    problems = list(pool.map(header_problem, paths, chunksize=256))
  return [f'{p} ({why})' for p, why in zip(paths, problems) if why]


def find_bad_image(split: Split, indices) -> str | None:
  """The message of the first unreadable image among `indices`, else None: lets any pass that
  tf.data failed in (training, evaluation, host-side passes) name the file to fix."""
  if split.images is not None:
    return None
  for i in np.asarray(indices, np.int64).reshape(-1):
    problem = check_image(split, int(i))
    if problem:
      return problem
  return None


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
