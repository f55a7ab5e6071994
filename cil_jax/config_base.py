"""Every config field with its default, documented once; config files override what they need.

`--config file.py:arg` passes `arg` to the file's `get_config`; `parse_arg` reads the common
comma-separated options: t5 / t10 / t20 (number of tasks, the SS-IL paper's T), m<N> (memory size),
smoke (a seconds-long version of the same experiment for tests).
"""
from __future__ import annotations

import difflib
import glob
import json
import os
from typing import Any

import ml_collections

from cil_jax import methods as methods_lib
from cil_jax import models
from cil_jax.input_pipeline import scenario
from cil_jax.input_pipeline import sources


SCHEDULES = ('step', 'patience')    # train.schedule: methods/shared.main_schedule


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                       # model init and every stream; the SS-IL code base's default

  c.dataset = ml_collections.ConfigDict()
  c.dataset.name = 'fashion_mnist'  # see sources.LOADERS
  c.dataset.root = ''               # files on disk (IDX folder, CIFAR pickles, ImageNet train/ val/)
  c.dataset.data_dir = ''           # tfds data_dir ('' = tfds default)
  c.dataset.download = False        # True: let tfds download a missing small dataset (needs internet)
  c.dataset.num_classes = 0         # ImageNet: 0 = 1000; Landmarks: the classes kept, 0 = 1000 / 10000
  c.dataset.image_size = 0          # ImageNet-style data only: crop side, 0 = 224
  c.dataset.class_list = ''         # ImageNet-100: 'lucir' ('' = lucir) | 'podnet' | a file of WordNet ids
  c.dataset.csv = ''                # Landmarks: the GLDv2 list of the classes, train.csv ('') | train_clean.csv
  c.dataset.augment = ''            # '' = the dataset's: see sources.AUGMENTS
  c.dataset.mean = ()               # () = the dataset's normalisation; else one value per channel
  c.dataset.std = ()
  c.dataset.max_per_class = 0       # >0: keep only the first N training images of each class
  c.dataset.max_test_per_class = 0  # >0: keep only the first N test images of each class (the :smoke runs)
  c.dataset.on_device = 'auto'      # training images on the accelerators, augmented there (device_data.py):
                                    # auto = for in-memory data with augment crop_flip | none; on | off (tf.data)

  c.scenario = ml_collections.ConfigDict()
  c.scenario.base = 2               # classes of task 0
  c.scenario.step = 2               # classes of each later task (the last one may be smaller)
  c.scenario.num_tasks = 0          # >0: FACIL's split of all classes into this many tasks (base/step unused)
  c.scenario.nc_first_task = 0      # with num_tasks: classes of task 0 (FACIL's --nc-first-task; 0 = even)
  c.scenario.class_order = 'ssil'   # 'ssil' | 'facil' | 'identity' | explicit list (see scenario.label_map)
  c.scenario.seed = 0               # seed of the class order; -1 = the run seed (SS-IL-Official's --seed and
                                    # FACIL's tie them: the SS-IL and FACIL configs set -1)
  c.scenario.validation = 0.0       # >0: this share of each class's training images held out for the run
                                    # (FACIL's rule, scenario.facil_holdout): the patience schedule's data

  c.memory = ml_collections.ConfigDict()
  c.memory.size = 2000              # M exemplars (per_class policy: per class); 0 = no memory
  c.memory.policy = 'fixed'         # 'fixed' total M | 'growing' ceil(M / all classes) per class |
                                    # 'facil' ceil(M / seen) per class, untrimmed, re-selected each task |
                                    # 'per_class' M per class, never trimmed (MGRB)
  c.memory.selection = 'random'     # 'random' (seeded) | 'herding' (iCaRL) | 'file_order' (first images)

  c.model = ml_collections.ConfigDict()
  c.model.name = 'small_convnet'    # see models.NAMES
  c.model.last_relu = True          # LUCIR / PODNet set False (their REQUIRES)
  c.model.head = 'linear'           # linear | cosine (LUCIR) | lsc (PODNet): see models/heads.py
  c.model.dtype = 'float32'         # compute dtype: float32 | bfloat16 (params stay float32)

  c.method = ml_collections.ConfigDict({'name': 'ssil'})  # plus the method's options (its OPTIONS, set_method)

  c.train = ml_collections.ConfigDict()
  c.train.lr = 0.1
  c.train.epochs = 100
  c.train.milestones = (40, 80)
  c.train.gamma = 0.1
  c.train.factor = 1                # epochs and milestones // factor from task 1 on (reference --factor)
  c.train.schedule = 'step'         # main phases: 'step' (milestones, gamma) | 'patience' (FACIL: needs
                                    # scenario.validation; at most `epochs` epochs)
  c.train.lr_patience = 5           # patience: epochs without a lower validation loss before lr /= lr_factor
  c.train.lr_factor = 3.0           #   (the best weights are restored at each decay and at the end)
  c.train.lr_min = 1e-4             #   the phase stops when the lr would fall below this
  c.train.clip_norm = 0.0           # >0: PyTorch clip_grad_norm_ of all gradients (FACIL: 10000); 0 = none
  c.train.batch_size = 128          # new-data (or mixed) batch, global over all devices
  c.train.replay_batch_size = 32    # SS-IL: exemplars per step, drawn from memory
  c.train.momentum = 0.9
  c.train.weight_decay = 1e-4       # coupled (added to the gradient), on all parameters
  c.train.steps_per_call = 0        # K train steps per jitted call (lax.scan); 0 = auto: 1 on CPU, 8 elsewhere

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
  c.debug.kill_signal = 'KILL'      # KILL (a crash) | TERM (preemption) | INT (Ctrl-C): save, then exit
  c.debug.kill_process = -1         # tests, several processes: only this one is signalled (-1: every one)
  return c


def set_method(config: ml_collections.ConfigDict, name: str, **options: Any) -> None:
  """Sets config.method to the method's options with their defaults, then `options`, and the fields
  the method requires (methods/<name>.py declares both)."""
  if name not in methods_lib.names():
    raise ValueError(f'method.name={name!r} is unknown; choose one of {list(methods_lib.names())}')
  declared = methods_lib.declared(name)
  defaults = declared.options
  unknown = set(options) - set(defaults)
  if unknown:
    raise ValueError(f'method {name!r} has no option(s) {sorted(unknown)}; it has {sorted(defaults)}')
  options = {k: _typed(f'{name} option {k}', v, defaults[k]) for k, v in options.items()}
  config.method = ml_collections.ConfigDict(dict(name=name, **{**defaults, **options}))
  for path, value in declared.requires.items():
    section, field = path.split('.')
    config[section][field] = value


def _typed(what: str, value, default):
  """A method option given as text (a config argument such as `variant=bsr`) in its default's type."""
  if not isinstance(value, str) or isinstance(default, str):
    return value
  if isinstance(default, (tuple, list)):
    raise ValueError(f'{what} is a sequence; pass it as --config.method.<name>=a,b,... instead')
  try:
    return _parsed(value, default)
  except (TypeError, ValueError):
    raise ValueError(f'{what}={value!r} must be a {type(default).__name__} (default {default!r})') from None


def _parsed(text: str, like):
  """`text` in the type of `like`: a bool from true / false / 1 / 0, else type(like)(text); ValueError if not."""
  if isinstance(like, bool):
    if text.lower() not in ('true', 'false', '1', '0'):
      raise ValueError(text)
    return text.lower() in ('true', '1')
  return type(like)(text)


def parse_arg(arg: str | None) -> dict:
  """'t5,m10000,smoke,variant=bsr' -> {'tasks': 5, 'memory': 10000, 'smoke': True,
  'options': {'variant': 'bsr'}}; `name=value` parts are method options (config.method)."""
  out = {'tasks': None, 'memory': None, 'smoke': False, 'options': {}}
  for part in filter(None, (arg or '').split(',')):
    if '=' in part:
      key, value = part.split('=', 1)
      out['options'][key.strip()] = value.strip()
    elif part == 'smoke':
      out['smoke'] = True
    elif part[0] == 't' and part[1:].isdigit():
      out['tasks'] = int(part[1:])
      if out['tasks'] < 1:
        raise ValueError(f'config argument {part!r}: the number of tasks must be at least 1 (e.g. t5)')
    elif part[0] == "m" and part[1:].isdigit():
      out['memory'] = int(part[1:])
    else:
      raise ValueError(f'config argument {part!r} is unknown; use t<tasks>, m<memory>, smoke and/or method '
                       'options as name=value, comma-separated (e.g. ":t5,m10000" or ":variant=bsr")')
  return out


def pick(arg: str | None, choices: tuple[str, ...], default: str) -> tuple[str, str | None]:
  """(the one of `choices` among the comma-separated config argument, any case, else `default`; the
  argument without it): the argument of a config that covers several datasets or sizes, such as
  `lucir_facil.py:fmnist,t5` or `ssil_landmarks.py:10k,m40000`."""
  parts = [p.strip() for p in (arg or '').split(',') if p.strip()]
  picked = [p.lower() for p in parts if p.lower() in choices]
  named = f'one of {", ".join(choices[:-1])} or {choices[-1]}'
  if len(picked) > 1:
    raise ValueError(f'config argument {arg!r}: give {named}')
  for p in parts:
    close = difflib.get_close_matches(p.lower(), choices, n=1, cutoff=0.8)
    if close and p.lower() not in choices:
      raise ValueError(f'config argument {p!r}: did you mean {close[0]}? (the config takes {named})')
  return (picked[0] if picked else default), ','.join(p for p in parts if p.lower() not in choices) or None


def classes_per_task(num_classes: int, tasks: int, what: str) -> int:
  """base = step of `tasks` equal tasks. `:tN` must divide the classes: a remainder would silently
  add a smaller last task (or change T)."""
  if num_classes % tasks:
    divisors = [f't{d}' for d in range(2, num_classes + 1) if num_classes % d == 0][:8]
    raise ValueError(f't{tasks} does not divide the {num_classes} classes of {what}; use one of '
                     f'{", ".join(divisors)}, or set scenario.base / scenario.step yourself')
  return num_classes // tasks


SMOKE_TEST_PER_CLASS = 10   # test images per class in a :smoke run (evaluation is most of a full-size one)


def shrink_to_smoke(c: ml_collections.ConfigDict, *, max_per_class: int, memory: int, batch_size: int,
                    replay_batch_size: int, eval_batch_size: int) -> None:
  """The `:smoke` version of a protocol: a few training and test images per class, one epoch without
  milestones, tiny batches, a log line per step; the rest (method, model, scenario) stays that of the
  full config."""
  c.dataset.max_per_class = max_per_class
  c.dataset.max_test_per_class = SMOKE_TEST_PER_CLASS
  c.memory.size = memory
  c.train.epochs, c.train.milestones = 1, ()
  c.train.batch_size, c.train.replay_batch_size = batch_size, replay_batch_size
  c.eval.batch_size = eval_batch_size
  c.log_every_steps = 1


# what a command-line value of a field of this type must be (other fields take any text)
KINDS = ((bool, 'true or false'), (int, 'an integer'), (float, 'a number'))


def _check_value(path: str, current: Any, value: Any) -> None:
  """A command-line value must parse as the field's type (bool, int, float): one line saying which."""
  kind = next((text for t, text in KINDS if isinstance(current, t)), None)
  if not isinstance(value, str) or kind is None:
    return
  try:
    _parsed(value, current)
  except ValueError:
    raise ValueError(f'--config.{path}={value}: {path} takes {kind} (the config has {current!r})') from None


def check_overrides(config: ml_collections.ConfigDict, overrides: dict[str, Any]) -> None:
  """Command-line overrides (dotted field -> value) must name existing fields; `method.name` cannot
  be switched there, since the config file sets that method's options and schedule."""
  for path, value in overrides.items():
    node, parts = config, path.split('.')
    for i, part in enumerate(parts):
      fields = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      if part not in fields:
        section = '.'.join(parts[:i])
        close = difflib.get_close_matches(part, fields, n=1)
        if close:
          hint = f"; did you mean '{'.'.join(parts[:i] + close + parts[i + 1:])}'?"
        else:   # a wrong section, e.g. logging.every_steps for log_every_steps: the closest whole field
          whole = difflib.get_close_matches(path, list(flatten(config)), n=1, cutoff=0.7)
          hint = f"; did you mean '{whole[0]}'?" if whole else ''
        where = f'{section} fields' if section else 'top-level fields'
        raise ValueError(f"unknown config field '{path}'{hint} ({where}: {', '.join(fields) or 'none'})")
      node = node[part]
    _check_value(path, node, value)
  name = overrides.get('method.name')
  if name is not None and name != config.method.name:
    if name not in methods_lib.names():
      raise ValueError(f'method.name={name!r} is unknown; choose one of {list(methods_lib.names())}')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = sorted(os.path.relpath(f, root) for f in glob.glob(os.path.join(root, 'configs', f'{name}_*.py')))
    raise ValueError(f'method.name cannot be switched on the command line (the config file sets the method\'s '
                     f'options and schedule); use --config with one of {", ".join(files)}')


def validate(config: ml_collections.ConfigDict) -> None:
  """Names the valid choices for every enumerated field before any compute."""
  def choice(field, value, valid):
    if value not in valid:
      raise ValueError(f'{field}={value!r} is unknown; choose one of {sorted(valid)}')
  choice('dataset.name', config.dataset.name, sources.LOADERS)
  choice('dataset.augment', config.dataset.augment, ('',) + sources.AUGMENTS)
  choice('dataset.on_device', config.dataset.on_device, ('auto', 'on', 'off'))
  choice('method.name', config.method.name, methods_lib.names())
  choice('model.name', config.model.name, models.NAMES)
  choice('model.dtype', config.model.dtype, models.DTYPES)
  choice('model.head', config.model.head, models.HEADS)
  choice('memory.policy', config.memory.policy, scenario.POLICIES)
  choice('train.schedule', config.train.schedule, SCHEDULES)
  choice('memory.selection', config.memory.selection, scenario.SELECTIONS)
  order = config.scenario.class_order
  if isinstance(order, str) and not scenario.is_order_list(order) and order not in ('ssil', 'facil', 'identity'):
    raise ValueError(f"scenario.class_order={order!r} is unknown; choose 'ssil', 'facil', 'identity' or an "
                     "explicit order of all classes, e.g. --config.scenario.class_order=3,1,0,2")
  declared = methods_lib.declared(config.method.name)
  needs = declared.requires
  got = {path: config[path.split('.')[0]][path.split('.')[1]] for path in needs}
  wrong = [path for path in needs if got[path] != needs[path]]
  if wrong:
    raise ValueError(f'{config.method.name} needs {", ".join(f"{p}={v!r}" for p, v in needs.items())} (got '
                     f'{", ".join(f"{p}={got[p]!r}" for p in wrong)}); drop the override (set_method sets them) '
                     f'or pass {" ".join(f"--config.{p}={needs[p]}" for p in wrong)}')
  expected = set(declared.options) | {'name'}
  given = set(config.method.keys())
  if given != expected:
    raise ValueError(f'config.method for {config.method.name!r} must have exactly the fields {sorted(expected)}; '
                     f'unknown: {sorted(given - expected)}, missing: {sorted(expected - given)} '
                     '(build it with config_base.set_method)')
  for option, valid in declared.choices.items():
    choice(f'method.{option}', config.method[option], valid)
  def at_least(field, value, low):
    if value < low:
      raise ValueError(f'{field}={value} must be >= {low}')
  t = config.train
  for field, low in (('epochs', 1), ('batch_size', 1), ('replay_batch_size', 0), ('factor', 1), ('steps_per_call', 0)):
    at_least(f'train.{field}', t[field], low)
  for field in ('lr', 'gamma'):
    if not t[field] > 0:
      raise ValueError(f'train.{field}={t[field]} must be > 0')
  at_least('train.momentum', t.momentum, 0)
  at_least('train.weight_decay', t.weight_decay, 0)
  ms = list(t.milestones)
  if any(not isinstance(m, int) or m < 1 for m in ms) or ms != sorted(set(ms)):
    raise ValueError(f'train.milestones={tuple(ms)} must be increasing epochs >= 1 (e.g. 40,80), or () for none')
  at_least('memory.size', config.memory.size, 0)
  at_least('scenario.base', config.scenario.base, 1)
  at_least('scenario.step', config.scenario.step, 1)
  at_least('scenario.num_tasks', config.scenario.num_tasks, 0)
  at_least('scenario.nc_first_task', config.scenario.nc_first_task, 0)
  if config.scenario.nc_first_task and not config.scenario.num_tasks:
    raise ValueError('scenario.nc_first_task is part of FACIL\'s split: set scenario.num_tasks too (or use '
                     'scenario.base / scenario.step)')
  at_least('scenario.seed', config.scenario.seed, -1)
  if not 0 <= config.scenario.validation < 1:
    raise ValueError(f'scenario.validation={config.scenario.validation} must be in [0, 1) (FACIL holds out 0.1)')
  if t.schedule == 'patience':
    if not config.scenario.validation > 0:
      raise ValueError('train.schedule=patience reacts to a validation loss: set scenario.validation (e.g. 0.1, '
                       'FACIL\'s share of each class held out)')
    at_least('train.lr_patience', t.lr_patience, 1)
    if not (t.lr_factor > 1 and 0 < t.lr_min <= t.lr):
      raise ValueError(f'train.lr_factor={t.lr_factor} must be > 1 and train.lr_min={t.lr_min} in (0, train.lr]')
  at_least('train.clip_norm', t.clip_norm, 0)
  at_least('dataset.max_per_class', config.dataset.max_per_class, 0)
  at_least('dataset.max_test_per_class', config.dataset.max_test_per_class, 0)
  at_least('eval.batch_size', config.eval.batch_size, 1)
  at_least('checkpoint.keep', config.checkpoint.keep, 1)
  at_least('checkpoint.every_steps', config.checkpoint.every_steps, 0)
  at_least('checkpoint.every_epochs', config.checkpoint.every_epochs, 0)


# Fields that cannot change a run's results (where data lives, logging, checkpoint cadence,
# profiling, evaluation batch size, test hooks): free to differ between a run and its resume.
FREE_FIELDS = ('dataset.root', 'dataset.data_dir', 'dataset.download', 'eval.batch_size', 'log_every_steps',
               'checkpoint', 'profile', 'debug')


def flatten(tree, prefix: str = '') -> dict:
  """{'a': {'b': 1}} -> {'a.b': 1}, for a dict or a ConfigDict."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      out.update(flatten(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def result_fields(config) -> dict:
  """The dotted fields that decide a run's results: every field but FREE_FIELDS. `config` is a
  ConfigDict or the dict of a workdir's config.json (tuples compare as the lists JSON holds)."""
  if isinstance(config, ml_collections.ConfigDict):
    config = json.loads(config.to_json_best_effort())
  fields = {k: v for k, v in flatten(config).items() if not any(k == f or k.startswith(f + '.') for f in FREE_FIELDS)}
  if fields.get('scenario.seed') == -1 and 'seed' in fields:   # the run seed: the same order as naming it
    fields['scenario.seed'] = fields['seed']
  return fields
