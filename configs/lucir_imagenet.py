"""LUCIR on ImageNet-1K, the README command:

  python3 main.py --trainer rebalancing --dataset Imagenet --base-classes 100 --step-size 100 --nepochs 90
      --schedule 30 60 --gammas 0.1 0.1 --memory-budget 20000

90 epochs every task, lr 0.1 (not divided by t+1), x0.1 at 30/60, batch 128, a fresh SGD (momentum 0.9,
wd 1e-4) each task; cosine head, no final ReLU; λ_base 10, margin 0.5, K 2. Class-balanced fine-tuning
is off as in the reference (`--config.method.class_balanced_finetuning=True` turns it on).
"""
from cil_jax.config_base import set_method
from configs.imagenet_common import imagenet_config, readme_schedule


def get_config(arg=None, dataset='imagenet'):
  c, smoke = imagenet_config(arg, dataset)
  set_method(c, 'lucir')
  readme_schedule(c, smoke, lr=0.1, epochs=90, milestones=(30, 60), batch_size=128, smoke_epochs=2, smoke_batch_size=8)
  return c
