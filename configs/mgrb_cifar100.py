"""MGRB on CIFAR-100 (configs/mgrb_common.py, methods/mgrb.py).

    python main.py --config configs/mgrb_cifar100.py:ont --workdir runs/mgrb_cifar100
10/10 with the dataset ontology (superclasses; -beta 20 -dscale 0.1) or `:vis` (KMeans K=5);
the paper's other splits as `:vis,20/20`, `:vis,50/5`, `:vis,50/10`."""
from configs.mgrb_common import mgrb_config


def get_config(arg=None):
  return mgrb_config('cifar100', arg, default_hierarchy='ont')
