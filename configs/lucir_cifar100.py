"""lucir on CIFAR-100, ResNet-32, 10 tasks (see cifar100_common.py): the shared protocol (100 epochs,
x0.1 at 40/80, lr 0.1, batch 128) with LUCIR's model and optimizer: cosine head, no final ReLU, a fresh
SGD each task at the base lr. (The LUCIR paper's own CIFAR setting is 160 epochs, x0.1 at 80/120 and
λ_base 5; pass them with --config overrides.)"""
from configs.cifar100_common import cifar100_config


def get_config(arg=None):
  c = cifar100_config('lucir', arg)
  return c
