"""BiC on ImageNet-1K, the README command:

  python3 main.py --trainer bic --dataset Imagenet --batch-size 256 --base-classes 100 --step-size 100
      --nepochs 100 --schedule 30 60 90 --gammas 0.1 0.1 0.1 --memory-budget 20000

100 epochs (x0.1 at 30/60/90), lr 0.1, batch 256; then (t >= 1) 200 epochs of bias correction on
the held-out 20 % of the memory at lr 0.001.
"""
from cil_jax.config_base import set_method
from configs.imagenet_common import imagenet_config, readme_schedule


def get_config(arg=None, dataset='imagenet'):
  c, smoke = imagenet_config(arg, dataset)
  set_method(c, 'bic')
  readme_schedule(c, smoke, lr=0.1, epochs=100, milestones=(30, 60, 90), batch_size=256, smoke_epochs=1,
                  smoke_batch_size=4)
  if smoke:
    c.memory.size = 20
  return c
