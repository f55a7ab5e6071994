"""SS-IL on ImageNet-1K, the README command:

  python3 main.py --trainer ssil --dataset Imagenet --replay-batch-size 32 --base-classes 100
      --step-size 100 --nepochs 100 --schedule 40 80 --gammas 0.1 0.1 --memory-budget 20000

The command passes no --factor, so the reference's default 4 applies (its main.py divides epochs and
schedule by the factor from task 1 on for every trainer named ft or ssil): task 0 trains 100 epochs,
x0.1 at 40/80; tasks >= 1 train 25 epochs, x0.1 at 10/20. lr 0.1/(t+1), batch 128 new + 32 replay,
KD temperature 2.
"""
from cil_jax.config_base import set_method
from configs.imagenet_common import imagenet_config, readme_schedule


def get_config(arg=None, dataset='imagenet'):
  c, smoke = imagenet_config(arg, dataset)
  set_method(c, 'ssil', temperature=2.0)
  readme_schedule(c, smoke, lr=0.1, epochs=100, milestones=(40, 80), batch_size=128, smoke_epochs=1, smoke_batch_size=8)
  c.train.factor, c.train.replay_batch_size = (1, 4) if smoke else (4, 32)
  return c
