"""Fine-tuning without memory on Split Fashion-MNIST: the lower bound (see fmnist_common.py)."""
from configs.fmnist_common import fmnist_config, parse_arg


def get_config(arg=None):
  if parse_arg(arg)['memory']:
    raise ValueError('ft_nomem has no memory; use ft_fmnist.py for a memory size')
  return fmnist_config('ft', (arg + ',' if arg else '') + 'm0')
