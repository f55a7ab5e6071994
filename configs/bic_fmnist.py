"""bic on Split Fashion-MNIST, the protocol shared by all methods (see fmnist_common.py)."""
from cil_jax.config_base import parse_arg
from configs.fmnist_common import fmnist_config


def get_config(arg=None):
  c = fmnist_config('bic', arg)
  if parse_arg(arg)['smoke']:
    c.method.heldout_fraction = 0.5   # 20 % of a smoke-sized memory is less than one batch
  return c
