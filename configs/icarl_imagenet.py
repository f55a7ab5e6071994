"""iCaRL (SS-IL code base's trainer) on ImageNet-1K, the README command:

  python3 main.py --trainer icarl --dataset Imagenet --base-classes 100 --step-size 100 --nepochs 60
      --schedule 20 30 40 50 --gammas 0.2 0.2 0.2 0.2 --memory-budget 20000

60 epochs every task, lr 0.1 (not divided by t+1), x0.2 at 20/30/40/50, batch 128, NME evaluation.
`--config.method.variant=original --config.memory.selection=herding` gives the original iCaRL.
"""
from cil_jax.config_base import set_method
from configs.imagenet_common import imagenet_config, readme_schedule


def get_config(arg=None, dataset='imagenet'):
  c, smoke = imagenet_config(arg, dataset)
  set_method(c, 'icarl')
  readme_schedule(c, smoke, lr=0.1, epochs=60, milestones=(20, 30, 40, 50), gamma=0.2, batch_size=128,
                  smoke_epochs=1, smoke_batch_size=8)
  return c
