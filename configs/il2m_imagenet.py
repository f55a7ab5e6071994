"""IL2M on ImageNet-1K, the README command (FT's training, then score rectification):

  python3 main.py --trainer il2m --dataset Imagenet --base-classes 100 --step-size 100 --nepochs 100
      --schedule 40 80 --gammas 0.1 0.1 --factor 4 --memory-budget 20000
"""
from cil_jax.config_base import set_method
from configs import ft_imagenet


def get_config(arg=None, dataset='imagenet'):
  c = ft_imagenet.get_config(arg, dataset)
  set_method(c, 'il2m')
  return c
