"""The `--config file.py[:arg] --config.<field>=<value>` command line shared by main.py and
`python -m cil_jax.data`: the config file found from any directory, its overrides checked against
its fields, every error one line. Light (no JAX, no TensorFlow)."""
from __future__ import annotations

import difflib
import importlib.util
import os
import sys

from absl import flags
from ml_collections import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the project folder
DEFAULT_CONFIG = os.path.join(ROOT, 'configs', 'default.py')


def define_config_flag() -> None:
  # After the light checks: config_flags reads sys.argv's --config.* overrides when defined.
  config_flags.DEFINE_config_file('config', DEFAULT_CONFIG, 'Experiment config file (file.py[:arg]).',
                                  lock_config=True)


def config_arg(argv: list[str]) -> tuple[list[str], int | None]:
  """argv with --config's file made absolute (found from any directory), and its index."""
  for i, a in enumerate(argv):
    if a == '--config' and i + 1 < len(argv):
      i, value = i + 1, argv[i + 1]
    elif a.startswith('--config='):
      value = a[len('--config='):]
    else:
      continue
    path, sep, arg = value.partition(':')
    for candidate in (os.path.abspath(path), os.path.join(ROOT, path)):
      if os.path.isfile(candidate):
        argv = list(argv)
        argv[i] = ('' if argv[i] == value else '--config=') + candidate + sep + arg
        return argv, i
    where = os.getcwd() if os.path.samefile(os.getcwd(), ROOT) else f'{os.getcwd()} and in {ROOT}'
    known = sorted(os.path.join('configs', n) for n in os.listdir(os.path.join(ROOT, 'configs'))
                   if n.endswith('.py') and not n.startswith('_') and not n.endswith('_common.py'))
    close = difflib.get_close_matches(os.path.join('configs', os.path.basename(path)), known, n=1, cutoff=0.75)
    hint = f'did you mean --config {close[0]}{sep}{arg}?' if close else 'pass e.g. --config configs/default.py'
    raise ValueError(f'config file {path} not found (looked in {where}); {hint}')
  return argv, None


def overrides(argv: list[str]) -> dict:
  """{'train.lr': '0.1', ...} from --config.train.lr=0.1 / --config.train.lr 0.1."""
  out = {}
  for i, a in enumerate(argv):
    if a.startswith('--config.'):
      key, eq, value = a[len('--config.'):].partition('=')
      if not eq:
        value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith('--') else 'true'
      out[key] = value
  return out


def load_config_file(value: str):
  path, _, arg = value.partition(':')
  if ROOT not in sys.path:   # config files import configs.* and cil_jax.*
    sys.path.insert(0, ROOT)
  spec = importlib.util.spec_from_file_location('_config_file', path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
    return module.get_config(arg or None)
  except (ValueError, TypeError):  # the config's own message (e.g. ":t3 does not divide ...")
    raise
  except Exception as e:  # noqa: BLE001 - a broken config file: one line naming it
    raise ValueError(f'config file {path} failed: {type(e).__name__}: {e}') from e


def check_command_line(argv: list[str]) -> tuple[list[str], str]:
  """(argv with --config found from any directory, the --config value file[:arg]), after checking
  its overrides name real fields."""
  from cil_jax import config_base
  argv, i = config_arg(argv)
  value = (argv[i][len('--config='):] if argv[i].startswith('--config=') else argv[i]) if i is not None \
      else DEFAULT_CONFIG
  config_base.check_overrides(load_config_file(value), overrides(argv))
  return argv, value


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with every config error as one line that names the fix."""
  from cil_jax import config_base
  try:
    rest = flags.FLAGS(argv)
    config_base.validate(flags.FLAGS.config)
  except (flags.Error, ValueError, TypeError) as e:
    sys.exit(f'error: {e}')
  return rest
