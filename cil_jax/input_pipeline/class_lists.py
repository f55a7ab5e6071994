"""Class lists of the ImageNet-derived datasets, as WordNet ids in label order (sorted), kept as data in
wnids/<name>.txt (one id per line).

- IMAGENET100_LUCIR: LUCIR's gen_imagenet_subset.py, `np.random.seed(1993)` then
  `np.random.choice(sorted 1000 wnids, 100, replace=False)`; the same 100 classes as CIL-MGRB's
  imagenet100 wnids.txt and PyCIL's / FOSTER's imagenet-sub lists.
- IMAGENET100_PODNET: the first 100 ImageNet classes in sorted order, PODNet's imagenet_split
  val_100.txt (also DER's and BiC's ImageNet-100, and FACIL's imagenet_subset read with the standard
  0-999 labels).
- MINIIMAGENET: the 100 classes of Ravi & Larochelle's miniImageNet (the union of their train / val /
  test csv files), CIL-MGRB's wnids.txt.
"""

from __future__ import annotations

import importlib.resources


def _listed(name: str) -> tuple[str, ...]:
  return tuple(importlib.resources.files(__package__).joinpath('wnids', f'{name}.txt').read_text().split())


IMAGENET100_LUCIR = _listed('imagenet100_lucir')     # labels 0..99
IMAGENET100_PODNET = _listed('imagenet100_podnet')   # labels 0..99
MINIIMAGENET = _listed('miniimagenet')               # labels 0..99

IMAGENET100 = {'lucir': IMAGENET100_LUCIR, 'podnet': IMAGENET100_PODNET}
