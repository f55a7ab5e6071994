"""One protocol for every method on CIFAR-100 with ResNet-32 (the iCaRL/LUCIR CIFAR network):
10 tasks of 10 classes, M = 2000 (fixed), 100 epochs (x0.1 at 40/80), lr 0.1, batch 128
(SS-IL: + 32 replay). The SS-IL code base has no CIFAR commands; this keeps its optimiser and
schedule shape. `:t5` / `:t20` give 20 / 5 classes per task, `:m<N>` the memory, `:smoke` seconds."""
from cil_jax.config_base import base_config, classes_per_task, parse_arg, set_method, shrink_to_smoke


def cifar100_config(method: str, arg=None, **method_options):
  opts = parse_arg(arg)
  c = base_config()
  c.dataset.name = 'cifar100'
  c.model.name = 'resnet32_cifar'
  c.scenario.seed = -1   # the class order of the run seed, as SS-IL-Official's --seed
  c.scenario.base = c.scenario.step = classes_per_task(100, opts['tasks'] or 10, 'CIFAR-100')
  c.memory.size = 2000 if opts['memory'] is None else opts['memory']
  set_method(c, method, **{**method_options, **opts['options']})
  c.train.lr = 0.1
  c.train.epochs, c.train.milestones, c.train.gamma = 100, (40, 80), 0.1
  c.train.batch_size, c.train.replay_batch_size = 128, 32
  if opts['smoke']:
    c.scenario.base = c.scenario.step = classes_per_task(100, opts['tasks'] or 2, 'CIFAR-100')
    shrink_to_smoke(c, max_per_class=8, memory=100 if opts['memory'] is None else opts['memory'],
                    batch_size=8, replay_batch_size=4, eval_batch_size=8)
  return c
