"""The `--config file.py[:arg] --config.<field>=<value>` command line shared by `cil-jax train` and
`cil-jax data check`: the config file (a path or a shipped config's name), its overrides checked against
its fields, every error one line. Light (no JAX, no TensorFlow)."""
from __future__ import annotations

import difflib
import importlib.util
import os
import sys

from absl import flags
from ml_collections import config_flags

PACKAGE = os.path.dirname(os.path.abspath(__file__))


def configs_dir() -> str:
  """The shipped configs: inside the installed package (`pip install .`), else the clone's configs/
  (a clone run as it is, or installed with `pip install -e .`)."""
  installed = os.path.join(PACKAGE, 'configs')
  return installed if os.path.isdir(installed) else os.path.join(os.path.dirname(PACKAGE), 'configs')


def shipped_configs() -> list[str]:
  """The names of the shipped experiment configs (their shared parts, *_common.py, are not ones)."""
  return sorted(n[:-3] for n in os.listdir(configs_dir())
                if n.endswith('.py') and not n.startswith('_') and not n.endswith('_common.py'))


def default_config() -> str:
  return os.path.join(configs_dir(), 'default.py')


def define_config_flag() -> None:
  # After the light checks: config_flags reads sys.argv's --config.* overrides when defined.
  config_flags.DEFINE_config_file('config', default_config(), 'Experiment config: a file (file.py[:arg]) or the '
                                  "name of a shipped config (ssil_imagenet[:arg]).", lock_config=True)


def find_config(path: str) -> str | None:
  """The config file that `path` names: a file (relative to the current directory), else a shipped
  config by name: 'ssil_fmnist', 'ssil_fmnist.py' or 'configs/ssil_fmnist.py'."""
  if os.path.isfile(path):
    return os.path.abspath(path)
  name = os.path.basename(path)
  shipped = os.path.join(configs_dir(), name if name.endswith('.py') else name + '.py')
  return shipped if os.path.isfile(shipped) and os.path.dirname(path) in ('', 'configs') else None


def config_arg(argv: list[str]) -> tuple[list[str], int | None]:
  """argv with --config's file made absolute (a file or a shipped config's name), and its index."""
  for i, a in enumerate(argv):
    if a == '--config' and i + 1 < len(argv):
      i, value = i + 1, argv[i + 1]
    elif a.startswith('--config='):
      value = a[len('--config='):]
    else:
      continue
    path, sep, arg = value.partition(':')
    found = find_config(path)
    if found:
      argv = list(argv)
      argv[i] = ('' if argv[i] == value else '--config=') + found + sep + arg
      return argv, i
    name = os.path.splitext(os.path.basename(path))[0]
    close = difflib.get_close_matches(name, shipped_configs(), n=1, cutoff=0.75)
    spelled = close and (os.path.join(os.path.dirname(path), close[0] + '.py') if path.endswith('.py') else close[0])
    hint = f'did you mean --config {spelled}{sep}{arg}?' if close else \
        'pass a file, or a shipped config\'s name such as --config default (cil-jax train --help)'
    raise ValueError(f'config {path} not found: no such file in {os.getcwd()}, nor a shipped config of that '
                     f'name; {hint}')
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


def _shipped_configs_package() -> None:
  """Config files import the shipped configs' shared parts as `configs.*` (from configs.fmnist_common
  import ...): that name is the shipped folder, wherever it is installed, and nothing else is put on
  sys.path."""
  if 'configs' in sys.modules:
    return
  folder = configs_dir()
  spec = importlib.util.spec_from_file_location('configs', os.path.join(folder, '__init__.py'),
                                                submodule_search_locations=[folder])
  module = importlib.util.module_from_spec(spec)
  sys.modules['configs'] = module
  spec.loader.exec_module(module)


def load_config_file(value: str):
  path, _, arg = value.partition(':')
  _shipped_configs_package()
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
      else default_config()
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
