"""Joint training on ImageNet-1K (upper bound): every task trains on all data seen so far, with the
FT command's schedule (100 epochs, x0.1 at 40/80, factor 4 from task 1 on), lr 0.1."""
from cil_jax.config_base import set_method
from configs import ft_imagenet


def get_config(arg=None, dataset='imagenet'):
  c = ft_imagenet.get_config(arg, dataset)
  set_method(c, 'joint')
  c.memory.size = 0
  return c
