"""EEIL on ImageNet-1K, the README command:

  python3 main.py --trainer eeil --dataset Imagenet --base-classes 100 --step-size 100 --nepochs 40
      --schedule 10 20 30 --gammas 0.1 0.1 0.1 --memory-budget 20000

40 epochs (x0.1 at 10/20/30), lr 0.1, batch 128; then (t >= 1) 30 epochs of balanced fine-tuning at
lr 0.01 with the same schedule.
"""
from cil_jax.config_base import set_method
from configs.imagenet_common import imagenet_config


def get_config(arg=None, dataset='imagenet'):
  c, smoke = imagenet_config(arg, dataset)
  set_method(c, 'eeil')
  c.train.lr = 0.1
  c.train.epochs, c.train.milestones, c.train.gamma = 40, (10, 20, 30), 0.1
  c.train.batch_size = 128
  if smoke:
    c.train.epochs, c.train.milestones, c.train.batch_size = 2, (), 8
  return c
