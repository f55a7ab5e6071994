"""FT (fine-tuning with exemplars) on ImageNet-1K, the README command:

  python3 main.py --trainer ft --dataset Imagenet --base-classes 100 --step-size 100 --nepochs 100
      --schedule 40 80 --gammas 0.1 0.1 --factor 4 --memory-budget 20000

Task 0: 100 epochs, decay at 40/80; tasks >= 1: 25 epochs, decay at 10/20 (factor 4); lr 0.1/(t+1).
"""
from cil_jax.config_base import set_method
from configs.imagenet_common import imagenet_config, readme_schedule


def get_config(arg=None, dataset='imagenet'):
  c, smoke = imagenet_config(arg, dataset)
  set_method(c, 'ft')
  readme_schedule(c, smoke, lr=0.1, epochs=100, milestones=(40, 80), batch_size=128, smoke_epochs=1, smoke_batch_size=8)
  c.train.factor = 1 if smoke else 4
  c.train.replay_batch_size = 0
  return c
