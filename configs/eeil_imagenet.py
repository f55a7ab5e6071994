"""EEIL on ImageNet-1K, the README command:

  python3 main.py --trainer eeil --dataset Imagenet --base-classes 100 --step-size 100 --nepochs 40
      --schedule 10 20 30 --gammas 0.1 0.1 0.1 --memory-budget 20000

40 epochs (x0.1 at 10/20/30), lr 0.1, batch 128; then (t >= 1) 30 epochs of balanced fine-tuning at
lr 0.01 with the same schedule.
"""
from cil_jax.config_base import set_method
from configs.imagenet_common import imagenet_config, readme_schedule


def get_config(arg=None, dataset='imagenet'):
  c, smoke = imagenet_config(arg, dataset)
  set_method(c, 'eeil')
  readme_schedule(c, smoke, lr=0.1, epochs=40, milestones=(10, 20, 30), batch_size=128, smoke_epochs=2,
                  smoke_batch_size=8)
  return c
