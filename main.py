"""Runs (or resumes) a class-incremental experiment.

  python main.py                                                  # configs/default.py
  python main.py --config configs/ssil_imagenet.py:t5 --workdir runs/ssil_t5 --config.dataset.root=/data/imagenet
  python main.py ... (same --workdir again)                       # resumes where it stopped

Config and workdir errors are one line, found before JAX and TensorFlow are imported. Runnable from
any directory: a relative --config is looked up in the current directory, then in this project.
"""
import contextlib
import errno
import importlib.util
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(ROOT, 'configs', 'default.py')
FLAGS = flags.FLAGS
_config_value = ''  # the --config value as given (file[:arg]), for the default workdir


def _define_flags() -> None:
  # After the light checks: config_flags reads sys.argv's --config.* overrides when defined.
  config_flags.DEFINE_config_file('config', DEFAULT_CONFIG, 'Experiment config file (file.py[:arg]).',
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, 'Where checkpoints, results and TensorBoard logs go '
                      '(default: runs/<config name>[_<arg>]).')
  flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() (multi-host; the '
                    'coordinator is taken from the environment, e.g. SLURM or TPU pods).')


def _config_arg(argv: list[str]) -> tuple[list[str], int | None]:
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
    raise ValueError(f'config file {path} not found (looked in {os.getcwd()} and in {ROOT}); '
                     'pass e.g. --config configs/default.py')
  return argv, None


def _overrides(argv: list[str]) -> dict:
  """{'train.lr': '0.1', ...} from --config.train.lr=0.1 / --config.train.lr 0.1."""
  out = {}
  for i, a in enumerate(argv):
    if a.startswith('--config.'):
      key, eq, value = a[len('--config.'):].partition('=')
      if not eq:
        value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith('--') else 'true'
      out[key] = value
  return out


def _load_config_file(value: str):
  path, _, arg = value.partition(':')
  spec = importlib.util.spec_from_file_location('_config_file', path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
    return module.get_config(arg or None)
  except (ValueError, TypeError):  # the config's own message (e.g. ":t3 does not divide ...")
    raise
  except Exception as e:  # noqa: BLE001 - a broken config file: one line naming it
    raise ValueError(f'config file {path} failed: {type(e).__name__}: {e}') from e


def _check_command_line(argv: list[str]) -> list[str]:
  """argv with --config found from any directory, after checking its overrides name real fields."""
  from cil_jax import config_base
  global _config_value
  argv, i = _config_arg(argv)
  _config_value = (argv[i][len('--config='):] if argv[i].startswith('--config=') else argv[i]) if i is not None \
      else DEFAULT_CONFIG
  config_base.check_overrides(_load_config_file(_config_value), _overrides(argv))
  return argv


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with every config error as one line that names the fix."""
  from cil_jax import config_base
  try:
    rest = FLAGS(argv)
    config_base.validate(FLAGS.config)
  except (flags.Error, ValueError, TypeError) as e:
    sys.exit(f'error: {e}')
  return rest


def default_workdir(config_value: str) -> str:
  """runs/<config name>[_<arg>]: default.py:smoke and default.py:t2 get their own workdirs."""
  path, _, arg = config_value.partition(':')
  name = os.path.splitext(os.path.basename(path))[0]
  return os.path.join('runs', name + ('_' + arg.replace(',', '_') if arg else ''))


@contextlib.contextmanager
def _quiet_native_stderr():
  """Silences file descriptor 2 (native code's output) for the block; Python errors still show."""
  sys.stderr.flush()
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def _error_line(e: BaseException) -> str | None:
  """The one line for an error a person can act on; None for a bug (shown with its traceback)."""
  from cil_jax import workdir as workdir_lib
  from cil_jax.input_pipeline.sources import DataError
  from cil_jax.scenario import ScenarioError
  chain, seen = e, set()
  while chain is not None and id(chain) not in seen:  # a full disk may surface wrapped by Orbax
    seen.add(id(chain))
    if isinstance(chain, OSError) and chain.errno == errno.ENOSPC:
      return (f'error: no space left on the device ({chain.filename or "writing the workdir"}); free some space, '
              'then rerun the same command to resume from the last checkpoint')
    chain = chain.__cause__ or chain.__context__
  if isinstance(e, (DataError, ScenarioError, workdir_lib.WorkdirError, FloatingPointError)) or type(e) is ValueError:
    return f'error: {e}'
  return None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # Orbax and TF log every checkpoint step at INFO
  config = FLAGS.config
  workdir = FLAGS.workdir or default_workdir(_config_value)
  from cil_jax import workdir as workdir_lib
  try:
    workdir_lib.check_compatible(config, workdir)   # before the heavy imports: a refusal is instant
  except workdir_lib.WorkdirError as e:
    sys.exit(f'error: {e}')
  try:
    with _quiet_native_stderr():  # TensorFlow's native start-up banners, written before any log setting applies
      import jax
      from cil_jax import train
      import tensorflow as tf
      tf.config.set_visible_devices([], 'GPU')  # tf.data only; the accelerators belong to JAX
    if FLAGS.distributed:
      jax.distributed.initialize()
    train.train_and_evaluate(config, workdir)
  except KeyboardInterrupt:  # Ctrl-C before the training loop took over the signal (or a second one)
    print('interrupted (Ctrl-C); checkpoints saved before stay: run the same command to resume', file=sys.stderr)
    sys.exit(130)
  except Exception as e:  # noqa: BLE001 - one clear line for what a person can fix, a traceback for bugs
    from cil_jax import train
    if isinstance(e, train.Preempted):
      sys.exit(128 + e.signum)  # 143 for SIGTERM, 130 for Ctrl-C, as a shell reports a signal
    line = _error_line(e)
    if line is None:
      raise
    sys.exit(line)


if __name__ == '__main__':
  sys.path.insert(0, ROOT)
  try:
    sys.argv = _check_command_line(sys.argv)
  except (ValueError, TypeError) as e:
    sys.exit(f'error: {e}')
  _define_flags()
  app.run(main, flags_parser=_parse_flags)
