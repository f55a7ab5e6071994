"""PODNet's optimiser on the shared small-data protocols (Fashion-MNIST, CIFAR-100): lr 0.05
cosine-annealed over each task's epochs (the method's phases), batch 64, a fresh SGD each task."""
from cil_jax.config_base import parse_arg


def podnet_training(c, arg):
  c.train.lr = 0.05
  c.train.milestones = ()   # cosine annealing (the method's phases)
  if parse_arg(arg)['smoke']:
    c.method.finetune_epochs = 1
  else:
    c.train.batch_size = 64
  return c
