"""Runs (or resumes) a class-incremental experiment.

  python main.py                                                  # configs/default.py
  python main.py --config configs/ssil_imagenet.py:t5 --workdir runs/ssil_t5 --config.dataset.root=/data/imagenet
  python main.py ... (same --workdir again)                       # resumes where it stopped

Config and workdir errors are one line, found before JAX and TensorFlow are imported. Runnable from
any directory: a relative --config is looked up in the current directory, then in this project.
"""
import contextlib
import errno
import os
import sys

from absl import app, flags, logging

from cil_jax import command_line

ROOT = command_line.ROOT
FLAGS = flags.FLAGS
_config_value = ''  # the --config value as given (file[:arg]), for the default workdir


def _define_flags() -> None:
  command_line.define_config_flag()
  flags.DEFINE_string('workdir', None, 'Where checkpoints, results and TensorBoard logs go '
                      '(default: runs/<config name>[_<arg>]).')
  flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() (multi-host; the '
                    'coordinator is taken from the environment, e.g. SLURM or TPU pods).')


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
  from cil_jax.input_pipeline.streams import MissingTensorFlow
  from cil_jax.scenario import ScenarioError
  chain, seen = e, set()
  while chain is not None and id(chain) not in seen:  # a full disk may surface wrapped by Orbax
    seen.add(id(chain))
    if isinstance(chain, OSError) and chain.errno == errno.ENOSPC:
      return (f'error: no space left on the device ({chain.filename or "writing the workdir"}); free some space, '
              'then rerun the same command to resume from the last checkpoint')
    chain = chain.__cause__ or chain.__context__
  if isinstance(e, (DataError, ScenarioError, workdir_lib.WorkdirError, FloatingPointError, MissingTensorFlow)) \
      or type(e) is ValueError:
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
      from cil_jax.input_pipeline import streams
      try:
        streams.tensorflow()  # here, so that its banners are quieted; runs on device-resident data need none
      except ImportError:
        pass
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
    sys.argv, _config_value = command_line.check_command_line(sys.argv)
  except (ValueError, TypeError) as e:
    sys.exit(f'error: {e}')
  _define_flags()
  app.run(main, flags_parser=command_line.parse_flags)
