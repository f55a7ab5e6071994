"""One protocol for every method on Split Fashion-MNIST (the offline comparison of the docs):
5 tasks of 2 classes, M = 2000 (fixed), the small conv net, 3 epochs per task (x0.1 after 2),
lr 0.1, batch 128 (SS-IL: + 32 replay). Method-specific stages (EEIL's balanced fine-tuning, BiC's
bias correction) take their length from these epochs as in their reference code.
`:smoke` shrinks it to seconds; `:t5` etc. and `:m<N>` as everywhere."""
from cil_jax.config_base import base_config, classes_per_task, parse_arg, set_method, shrink_to_smoke


def fmnist_config(method: str, arg=None, smoke_memory: int = 200, **method_options):
  opts = parse_arg(arg)
  c = base_config()
  c.dataset.name = 'fashion_mnist'
  c.scenario.base = c.scenario.step = classes_per_task(10, opts['tasks'] or 5, 'Fashion-MNIST')
  c.memory.size = 2000 if opts['memory'] is None else opts['memory']
  c.model.name = 'small_convnet'
  c.scenario.seed = -1   # the class order of the run seed, as SS-IL-Official's --seed
  set_method(c, method, **{**method_options, **opts['options']})
  c.train.lr = 0.1
  c.train.epochs, c.train.milestones, c.train.gamma = 3, (2,), 0.1
  c.train.batch_size, c.train.replay_batch_size = 128, 32
  if opts['smoke']:
    shrink_to_smoke(c, max_per_class=64, memory=smoke_memory if opts['memory'] is None else opts['memory'],
                    batch_size=32, replay_batch_size=8, eval_batch_size=64)
  return c
