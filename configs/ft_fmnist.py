"""ft on Split Fashion-MNIST, the protocol shared by all methods (see fmnist_common.py)."""
from configs.fmnist_common import fmnist_config


def get_config(arg=None):
  return fmnist_config('ft', arg)
