"""Every config field with its default, documented once; config files override what they need.

`--config file.py:arg` passes `arg` to the file's `get_config`; `parse_arg` reads the common
comma-separated options: t5 / t10 / t20 (number of tasks, the SS-IL paper's T), m<N> (memory size),
smoke (a seconds-long version of the same experiment for tests).
"""
from __future__ import annotations

from typing import Any

import ml_collections

from cil_jax import methods as methods_lib
from cil_jax import models
from cil_jax.models import heads
from cil_jax.input_pipeline import sources


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                       # model init and every stream; the SS-IL code base's default

  c.dataset = ml_collections.ConfigDict()
  c.dataset.name = 'fashion_mnist'  # see sources.LOADERS
  c.dataset.root = ''               # files on disk (IDX folder, CIFAR pickles, ImageNet train/ val/)
  c.dataset.data_dir = ''           # tfds data_dir ('' = tfds default)
  c.dataset.download = True         # Fashion-MNIST: let tfds download it when no local copy exists
  c.dataset.num_classes = 0         # ImageNet only: 0 = 1000
  c.dataset.image_size = 0          # ImageNet only: crop side, 0 = 224
  c.dataset.augment = ''            # '' = the dataset's default: imagenet | crop_flip | none
  c.dataset.max_per_class = 0       # >0: keep only the first N training images of each class

  c.scenario = ml_collections.ConfigDict()
  c.scenario.base = 2               # classes of task 0
  c.scenario.step = 2               # classes of each later task (the last one may be smaller)
  c.scenario.class_order = 'ssil'   # 'ssil' | 'facil' | 'identity' | explicit list (see scenario.label_map)
  c.scenario.seed = 0               # seed of the class order

  c.memory = ml_collections.ConfigDict()
  c.memory.size = 2000              # M exemplars; 0 = no memory
  c.memory.policy = 'fixed'         # 'fixed' total M | 'growing' ceil(M / all classes) per class
  c.memory.selection = 'random'     # 'random' (seeded) | 'herding' (iCaRL)

  c.model = ml_collections.ConfigDict()
  c.model.name = 'small_convnet'    # see models.MODELS
  c.model.last_relu = True          # False for LUCIR / PODNet
  c.model.head = 'linear'           # linear | cosine (LUCIR) | lsc (PODNet): see models/heads.py
  c.model.dtype = 'float32'         # compute dtype: float32 | bfloat16 (params stay float32)

  c.method = ml_collections.ConfigDict({'name': 'ssil'})  # plus the method's OPTIONS (set_method)

  c.train = ml_collections.ConfigDict()
  c.train.lr = 0.1
  c.train.epochs = 100
  c.train.milestones = (40, 80)
  c.train.gamma = 0.1
  c.train.factor = 1                # epochs and milestones // factor from task 1 on (reference --factor)
  c.train.batch_size = 128          # new-data (or mixed) batch, global over all devices
  c.train.replay_batch_size = 32    # SS-IL: exemplars per step, drawn from memory
  c.train.momentum = 0.9
  c.train.weight_decay = 1e-4       # coupled (added to the gradient), on all parameters
  c.train.reset_optimizer_each_task = False  # SS-IL/FT keep one optimizer (momentum) for the whole run

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 256

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 0      # >0: also save every N steps (a killed run loses at most N steps)
  c.checkpoint.every_epochs = 1
  c.checkpoint.keep = 2

  c.log_every_steps = 20
  c.profile = ml_collections.ConfigDict()
  c.profile.start_step = -1         # >=0: trace global steps [start_step, start_step + num_steps)
  c.profile.num_steps = 10

  c.debug = ml_collections.ConfigDict()
  c.debug.kill_at_step = -1         # tests: send kill_signal to the process after this global step
  c.debug.kill_signal = 'KILL'      # KILL (a crash) | TERM (preemption: save, then exit)
  return c


def set_method(config: ml_collections.ConfigDict, name: str, **options: Any) -> None:
  """Sets config.method to the method's options with their defaults, then `options`."""
  module = methods_lib.get(name)
  unknown = set(options) - set(module.OPTIONS)
  if unknown:
    raise ValueError(f'method {name!r} has no option(s) {sorted(unknown)}; it has {sorted(module.OPTIONS)}')
  config.method = ml_collections.ConfigDict(dict(name=name, **{**module.OPTIONS, **options}))


def parse_arg(arg: str | None) -> dict:
  """'t5,m10000,smoke' -> {'tasks': 5, 'memory': 10000, 'smoke': True}."""
  out = {'tasks': None, 'memory': None, 'smoke': False}
  for part in filter(None, (arg or '').split(',')):
    if part == 'smoke':
      out['smoke'] = True
    elif part[0] == 't' and part[1:].isdigit():
      out['tasks'] = int(part[1:])
    elif part[0] == "m" and part[1:].isdigit():
      out['memory'] = int(part[1:])
    else:
      raise ValueError(f'config argument {part!r} is unknown; use t<tasks>, m<memory> and/or smoke, '
                       'comma-separated (e.g. ":t5,m10000")')
  return out


def validate(config: ml_collections.ConfigDict) -> None:
  """Names the valid choices for every enumerated field before any compute."""
  def choice(field, value, valid):
    if value not in valid:
      raise ValueError(f'{field}={value!r} is unknown; choose one of {sorted(valid)}')
  choice('dataset.name', config.dataset.name, sources.LOADERS)
  choice('method.name', config.method.name, methods_lib.REGISTRY)
  choice('model.name', config.model.name, models.MODELS)
  choice('model.dtype', config.model.dtype, ('float32', 'bfloat16'))
  choice('model.head', config.model.head, heads.HEADS)
  choice('memory.policy', config.memory.policy, ('fixed', 'growing'))
  choice('memory.selection', config.memory.selection, ('random', 'herding'))
  if isinstance(config.scenario.class_order, str):
    choice('scenario.class_order', config.scenario.class_order, ('ssil', 'facil', 'identity'))
  expected = set(methods_lib.get(config.method.name).OPTIONS) | {'name'}
  given = set(config.method.keys())
  if given != expected:
    raise ValueError(f'config.method for {config.method.name!r} must have exactly the fields {sorted(expected)}; '
                     f'unknown: {sorted(given - expected)}, missing: {sorted(expected - given)} '
                     '(build it with config_base.set_method)')
  if config.train.epochs < 1:
    raise ValueError(f'train.epochs={config.train.epochs} must be >= 1')
