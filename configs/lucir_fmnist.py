"""lucir on Split Fashion-MNIST, the protocol shared by all methods (see fmnist_common.py), with
LUCIR's model and optimizer: cosine head, no final ReLU, a fresh SGD each task at the base lr."""
from configs.fmnist_common import fmnist_config


def get_config(arg=None):
  return fmnist_config('lucir', arg)
