"""MGRB on ImageNet-100 (configs/mgrb_common.py, methods/mgrb.py).

    python main.py --config configs/mgrb_imagenet100.py:wordnet --workdir runs/mgrb_imagenet100
50/10 (ResNet-18, 224 px, 120 epochs): `:wordnet` or `:vis`. """
from configs.mgrb_common import mgrb_config


def get_config(arg=None):
  return mgrb_config('imagenet100', arg, default_hierarchy='wordnet')
