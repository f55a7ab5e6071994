"""The SS-IL README protocol on ImageNet-1K, shared by the <method>_imagenet.py configs.

ResNet-18 from scratch, T = 10 (base = step = 100), M = 20000, SGD momentum 0.9, coupled weight
decay 1e-4. `:t5` / `:t20` give base = step = 200 / 50, `:m5000` etc. the memory sizes of Table 1.
"""
from cil_jax.config_base import base_config, classes_per_task, parse_arg


def imagenet_config(arg):
  opts = parse_arg(arg)
  if opts['options']:
    raise ValueError(f'the ImageNet configs take no method options as arguments (got {sorted(opts["options"])}); '
                     'pass them as --config.method.<name>=<value>')
  c = base_config()
  c.dataset.name = 'imagenet'
  c.dataset.num_classes = 1000
  c.model.name = 'resnet18'
  c.scenario.base = c.scenario.step = classes_per_task(1000, opts['tasks'] or 10, 'ImageNet-1K')
  c.memory.size = 20000 if opts['memory'] is None else opts['memory']
  c.eval.batch_size = 400
  c.log_every_steps = 50
  c.checkpoint.every_steps = 2000
  if opts['smoke']:  # the same file, tiny: for tests on an ImageNet-format fixture folder
    c.dataset.num_classes = 4
    c.dataset.image_size = 32
    c.scenario.base = c.scenario.step = classes_per_task(4, opts['tasks'] or 2, 'the 4-class smoke setting')
    c.memory.size = 8 if opts['memory'] is None else opts['memory']
    c.eval.batch_size = 8
    c.log_every_steps = 1
    c.checkpoint.every_steps = 0
  return c, opts['smoke']
