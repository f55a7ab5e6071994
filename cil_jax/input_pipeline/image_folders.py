"""ImageNet-style class folders (torchvision's ImageFolder layout, root/<class>/<image>): the images
stay on disk, their paths are decoded in tf.data."""
from __future__ import annotations

import os

import numpy as np

from cil_jax.input_pipeline.base import IMAGE_EXTENSIONS, DataError, Split, some_of


def visible(names) -> list[str]:
  """`names` sorted, hidden entries left out: tools leave them (.ipynb_checkpoints, macOS ._* files),
  and they are never classes or images."""
  return sorted(n for n in names if not n.startswith('.'))


def image_files(folder: str) -> list[str]:
  """The names of the image files in `folder`, sorted."""
  return [f for f in visible(os.listdir(folder)) if f.lower().endswith(IMAGE_EXTENSIONS)]


def read_split(root: str, classes: list[str] | None = None, others_ok: bool = False) -> tuple[Split, list[str]]:
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
  found = [d for d in visible(os.listdir(root)) if os.path.isdir(os.path.join(root, d))]
  test_set = classes is not None and not others_ok
  if classes is not None:
    have = set(found)
    missing = [c for c in classes if c not in have]
    if missing:
      needs = ('one folder of images per training class' if test_set else
               'a folder for each class of the class list (dataset.class_list)')
      raise DataError(f'{root} has no folder for class {missing[0]!r}, which the '
                      f'{"training set" if test_set else "class list"} has'
                      + (f' ({len(missing)} classes missing: {some_of(missing)})' if len(missing) > 1 else '')
                      + f'; it needs {needs}')
    extra = sorted(set(found) - set(classes))
    if extra and test_set:
      raise DataError(f'{root} has folder(s) for class(es) {some_of(extra)}, which the training set does not have; '
                      'the test set must hold exactly the training set\'s class folders: remove them, or add '
                      'those classes\' training images to the training set')
  else:
    classes = found
  if not classes:
    raise DataError(f'no images found under {root} (expected {root}/<class>/<image>.JPEG)')
  files, labels = [], []
  for c, name in enumerate(classes):
    folder = os.path.join(root, name)
    images = image_files(folder)
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

