"""SS-IL on CIFAR-100 with ResNet-32 (the iCaRL/LUCIR CIFAR network), 10 tasks of 10 classes.

The SS-IL code base has no CIFAR command; this keeps its optimiser and schedule shape (lr 0.1/(t+1),
decay x0.1, batch 128 new + 32 replay, T = 2) with CIFAR epochs, and M = 2000 as is usual on CIFAR-100.
`:t5` / `:t20` give 20 / 5 classes per task.
"""
from cil_jax.config_base import base_config, parse_arg, set_method


def get_config(arg=None):
  opts = parse_arg(arg)
  c = base_config()
  c.dataset.name = 'cifar100'
  c.model.name = 'resnet32_cifar'
  tasks = opts['tasks'] or 10
  c.scenario.base = c.scenario.step = 100 // tasks
  c.memory.size = opts['memory'] or 2000
  set_method(c, 'ssil', temperature=2.0)
  c.train.lr = 0.1
  c.train.epochs, c.train.milestones, c.train.gamma = 100, (40, 80), 0.1
  c.train.batch_size, c.train.replay_batch_size = 128, 32
  if opts['smoke']:
    c.dataset.max_per_class = 8
    c.scenario.base = c.scenario.step = 50
    c.memory.size = opts['memory'] or 100
    c.train.epochs, c.train.milestones = 1, ()
    c.train.batch_size, c.train.replay_batch_size = 8, 4
    c.eval.batch_size = 8
    c.log_every_steps = 1
  return c
