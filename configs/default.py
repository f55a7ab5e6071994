"""The offline default: SS-IL on Split Fashion-MNIST (5 tasks of 2 classes, 2000 exemplars).

    python main.py                        # this file
    python main.py --config configs/default.py:smoke
"""
from cil_jax.config_base import base_config, classes_per_task, parse_arg, set_method


def get_config(arg=None):
  opts = parse_arg(arg)
  c = base_config()
  c.dataset.name = 'fashion_mnist'
  c.scenario.base, c.scenario.step = 2, 2
  c.memory.size = 2000 if opts['memory'] is None else opts['memory']
  c.model.name = 'small_convnet'
  set_method(c, 'ssil')
  c.train.lr = 0.1
  c.train.epochs = 3
  c.train.milestones = (2,)
  c.train.batch_size, c.train.replay_batch_size = 128, 32
  if opts['tasks']:
    c.scenario.base = c.scenario.step = classes_per_task(10, opts['tasks'], 'Fashion-MNIST')
  if opts['smoke']:
    c.dataset.max_per_class = 64
    c.memory.size = 40 if opts['memory'] is None else opts['memory']
    c.train.epochs, c.train.milestones = 1, ()
    c.train.batch_size, c.train.replay_batch_size = 32, 8
    c.eval.batch_size = 64
    c.log_every_steps = 1
  return c
