"""Fine-tuning without memory on ImageNet-1K (lower bound): the FT command with M = 0."""
from configs import ft_imagenet


def get_config(arg=None, dataset='imagenet'):
  c = ft_imagenet.get_config(arg, dataset)
  c.memory.size = 0
  return c
