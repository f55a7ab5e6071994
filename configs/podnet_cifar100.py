"""podnet on CIFAR-100, ResNet-32, 10 tasks (see cifar100_common.py), with PODNet's optimiser: lr 0.05
cosine-annealed over the 100 epochs, batch 64, a fresh SGD each task; lsc head, no final ReLU."""
from cil_jax.config_base import parse_arg
from configs.cifar100_common import cifar100_config


def get_config(arg=None):
  c = cifar100_config('podnet', arg)
  c.train.lr = 0.05
  c.train.milestones = ()   # cosine annealing (the method's phases)
  if parse_arg(arg)['smoke']:
    c.method.finetune_epochs = 1
  else:
    c.train.batch_size = 64
  return c
