"""SS-IL on CIFAR-100, ResNet-32, 10 tasks (see cifar100_common.py)."""
from configs.cifar100_common import cifar100_config


def get_config(arg=None):
  return cifar100_config('ssil', arg, temperature=2.0)
