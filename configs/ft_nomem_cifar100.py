"""Fine-tuning without memory on CIFAR-100, ResNet-32 (lower bound; see cifar100_common.py)."""
from configs.cifar100_common import cifar100_config


def get_config(arg=None):
  c = cifar100_config('ft', arg)
  c.memory.size = 0
  return c
