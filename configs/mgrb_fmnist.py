"""MGRB on Fashion-MNIST (offline) (configs/mgrb_common.py, methods/mgrb.py).

    python main.py --config configs/mgrb_fmnist.py:ont --workdir runs/mgrb_fmnist
MGRB's CIFAR-10 protocol (5/1, 180 + 20 per class) on the first 2000 images of each class, the
small conv net, 8 + 10 epochs; `:ont` (tops / footwear / the rest), `:vis`, `:none` (no L_MG),
`:ont,cb_loss=false` (no CB loss): the ablation of docs/results.md."""
from configs.mgrb_common import mgrb_config


def get_config(arg=None):
  return mgrb_config('fashion_mnist', arg, default_hierarchy='ont')
