"""BiC on ImageNet-1K, the README command:

  python3 main.py --trainer bic --dataset Imagenet --batch-size 256 --base-classes 100 --step-size 100
      --nepochs 100 --schedule 30 60 90 --gammas 0.1 0.1 0.1 --memory-budget 20000

100 epochs (x0.1 at 30/60/90), lr 0.1, batch 256; then (t >= 1) 200 epochs of bias correction on
the held-out 20 % of the memory at lr 0.001.
"""
from cil_jax.config_base import set_method
from configs.imagenet_common import imagenet_config


def get_config(arg=None, dataset='imagenet'):
  c, smoke = imagenet_config(arg, dataset)
  set_method(c, 'bic')
  c.train.lr = 0.1
  c.train.epochs, c.train.milestones, c.train.gamma = 100, (30, 60, 90), 0.1
  c.train.batch_size = 256
  if smoke:
    c.memory.size = 20
    c.train.epochs, c.train.milestones, c.train.batch_size = 1, (), 4
  return c
