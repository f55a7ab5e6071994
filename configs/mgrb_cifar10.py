"""MGRB on CIFAR-10 (configs/mgrb_common.py, methods/mgrb.py).

    python main.py --config configs/mgrb_cifar10.py:sem --workdir runs/mgrb_cifar10
5/1, -beta 20 -dscale 1.0 -scale 0.5: `:sem` (animals / vehicles) or `:vis` (KMeans: the
reference's code uses K = 2 for CIFAR-10, whatever -cluster says)."""
from configs.mgrb_common import mgrb_config


def get_config(arg=None):
  return mgrb_config('cifar10', arg, default_hierarchy='sem')
