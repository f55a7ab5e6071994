"""podnet on Split Fashion-MNIST, the protocol shared by all methods (see fmnist_common.py), with
PODNet's optimiser: lr 0.05 cosine-annealed over the task's epochs, batch 64, a fresh SGD each task;
lsc head, no final ReLU; then (t >= 1) 20 epochs of classifier fine-tuning on the balanced set."""
from cil_jax.config_base import parse_arg
from configs.fmnist_common import fmnist_config


def get_config(arg=None):
  c = fmnist_config('podnet', arg)
  c.train.lr = 0.05
  c.train.milestones = ()   # cosine annealing (the method's phases)
  if parse_arg(arg)['smoke']:
    c.method.finetune_epochs = 1
  else:
    c.train.batch_size = 64
  return c
