"""`cil-jax train` (and the clone's `python main.py`): runs or resumes a class-incremental experiment.

  cil-jax train                                                  # the shipped config default.py
  cil-jax train --config ssil_imagenet:t5 --workdir runs/ssil_t5 --config.dataset.root=/data/imagenet
  cil-jax train ... (same --workdir again)                       # resumes where it stopped

--config is a file (file.py[:arg]) or the name of a shipped config (ssil_imagenet, configs/ssil_imagenet.py:t5).
Config and workdir errors are one line, found before JAX and TensorFlow are imported.
"""
import os
import signal
import sys
import traceback

from absl import app, flags, logging

from cil_jax import command_line
from cil_jax.tools.launch import QUIET_STOP   # the launcher's stop after another process failed (and was named)

FLAGS = flags.FLAGS
_config_value = ''  # the --config value as given (file[:arg]), for the default workdir


def _define_flags() -> None:
  command_line.define_config_flag()
  flags.DEFINE_string('workdir', None, 'Where checkpoints, results and TensorBoard logs go '
                      '(default: runs/<config name>[_<arg>]).')
  flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() (multi-host; the '
                    'coordinator is taken from the environment, e.g. SLURM or TPU pods; implied under '
                    'cil-jax launch).')


def _initialize_distributed(jax) -> None:
  """jax.distributed from cil-jax launch's environment, else from the cluster's (SLURM,
  Open MPI, ...: jax.distributed detects them). CPU processes exchange collectives over gloo. JAX's
  heartbeat timeout is the backstop of the watchdog's (cil_jax/engine/multihost.py), which says more."""
  from cil_jax.engine import multihost
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  # SIGTERM is the run's own (every process saves the same step, multihost.stop_requested), not the
  # handler JAX's preemption service would install
  jax.config.update('jax_enable_preemption_service', False)
  env = os.environ
  kwargs = {'heartbeat_timeout_seconds': int(2 * multihost.lost_after()) + 10}
  if 'CIL_JAX_COORDINATOR' in env:
    kwargs.update(coordinator_address=env['CIL_JAX_COORDINATOR'], num_processes=int(env['CIL_JAX_NUM_PROCESSES']),
                  process_id=int(env['CIL_JAX_PROCESS_ID']))
    if env.get('CIL_JAX_LOCAL_DEVICES'):
      kwargs['local_device_ids'] = [int(d) for d in env['CIL_JAX_LOCAL_DEVICES'].split(',')]
  jax.distributed.initialize(**kwargs)
  multihost.start_watchdog()
  multihost.connect()


def _stop(signum, frame):
  """SIGTERM outside the training loop (start-up, the end): a start stopped so leaves no trace."""
  del frame
  from cil_jax.engine.session import Stopped
  raise Stopped(signum)


def _quiet_exit(signum, frame) -> None:
  """The launcher's QUIET_STOP: at once, as a kill would (what was saved stays, a failed start is undone),
  without a word and without unwinding (Orbax, in a save with the lost process, would log the stop as
  its own failure, with tracebacks)."""
  del signum, frame
  from cil_jax.engine import multihost
  multihost.run_before_exit()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(128 + signal.SIGTERM)   # 143: stopped with the others, as the launcher counts it


def _ending_quietly() -> None:
  """One of several processes is ending on an error (its line may wait seconds for another process's):
  SIGTERM or Ctrl-C does not cut it off with a traceback."""
  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, signal.SIG_IGN)


def _leave_distributed(status: int, line: str | None = None, tell_others: bool = True) -> None:
  """Ends one of several processes after an error: the others are told (they print the same line and
  stop), and JAX's shutdown barrier, which would wait for them, is skipped."""
  from cil_jax.engine import multihost
  if line is not None:
    print(line, file=sys.stderr, flush=True)
    if tell_others:
      multihost.report_error(line)
  sys.stdout.flush()
  os._exit(status)


def _stopped_without_save(signum: int, distributed: bool) -> None:
  """A signal outside the training loop (or a second Ctrl-C): one line, at once."""
  how = 'stopped (SIGTERM)' if signum == signal.SIGTERM else 'interrupted (Ctrl-C)'
  line = f'{how}; checkpoints saved before stay: run the same command to resume'
  if distributed:
    _leave_distributed(128 + signum, 'error: ' + line)
  print(line, file=sys.stderr, flush=True)
  sys.stdout.flush()
  os._exit(128 + signum)   # the interpreter's shutdown can crash in XLA threads the signal cut short


def default_workdir(config_value: str) -> str:
  """runs/<config name>[_<arg>]: default.py:smoke and default.py:t2 get their own workdirs."""
  path, _, arg = config_value.partition(':')
  name = os.path.splitext(os.path.basename(path))[0]
  return os.path.join('runs', name + ('_' + arg.replace(',', '_') if arg else ''))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # Orbax and TF log every checkpoint step at INFO
  signal.signal(signal.SIGTERM, _stop)   # until the training loop takes SIGTERM over (and after it)
  signal.signal(QUIET_STOP, _quiet_exit)   # another process failed and the launcher named it: exit without a line
  from cil_jax import errors
  errors.quiet_background_os_errors()   # a full disk is the main thread's one line, not Orbax's tracebacks
  config = FLAGS.config
  workdir = FLAGS.workdir or default_workdir(_config_value)
  from cil_jax.engine import workdir as workdir_lib
  from cil_jax.engine.session import Stopped
  try:
    workdir_lib.check_start(config, workdir)   # before the heavy imports: a refusal is instant
  except workdir_lib.WorkdirError as e:
    sys.exit(f'error: {e}')
  except OSError as e:   # a workdir this user may not read
    line = errors.os_line(e, then='rerun the same command')
    if line is None:
      raise
    sys.exit(line)
  distributed = FLAGS.distributed or 'CIL_JAX_COORDINATOR' in os.environ
  try:
    import jax   # TensorFlow is imported (quietly) where a run needs tf.data or a tfds source, not here
    from cil_jax.engine import multihost, train
    if distributed:
      _initialize_distributed(jax)
    train.train_and_evaluate(config, workdir, checked=True)   # (the config was validated as it was parsed)
    multihost.finish()
  except Stopped as e:
    if not e.saved:   # a signal outside the training loop
      _stopped_without_save(e.signum, distributed)
    if distributed:   # every process stops at the same point (multihost.stop_requested)
      _ending_quietly()
    from cil_jax.engine import multihost
    multihost.finish()
    sys.exit(128 + e.signum)  # 143 for SIGTERM, 130 for Ctrl-C, as a shell reports a signal
  except KeyboardInterrupt:   # a second Ctrl-C
    _stopped_without_save(signal.SIGINT, distributed)
  except Exception as e:  # noqa: BLE001 - one clear line for what a person can fix, a traceback for bugs
    if distributed:
      _ending_quietly()
    from cil_jax.engine import multihost
    line = errors.error_line(e)
    if distributed:
      if line is None and type(e).__name__ == 'JaxRuntimeError':   # a collective with a process that left
        relayed = multihost.peer_error()
        if relayed:   # that process's error is the news (the others have it already)
          _leave_distributed(1, 'error: ' + relayed, tell_others=False)
        if 'closed by peer' in str(e):   # it left without a word (killed)
          line = ('error: another process of this run ended (a collective lost its connection to it); relaunch '
                  'the same command on every process to resume from the last checkpoint')
      if line is None:
        traceback.print_exc()
        line = f'error: {errors.one_line(e)} (a bug: see the traceback above)'
      _leave_distributed(1, line)
    if line is None:
      raise
    if errors.os_error(e):   # a write refused mid-run: what Orbax left pending would speak at shutdown
      print(line, file=sys.stderr, flush=True)
      sys.stdout.flush()
      os._exit(1)   # all is saved and closed (Run.run's finally): the interpreter's finalizers add only noise
    sys.exit(line)


HELP = """flags:
  --config FILE[:ARG]       the experiment: a config file, or a shipped config's name (default: default)
  --config.<field>=VALUE    override one field of the config (e.g. --config.train.lr=0.05)
  --workdir DIR             checkpoints, log, results (default: runs/<config name>[_<arg>]); the same
                            DIR again resumes the run
  --distributed             call jax.distributed.initialize() (multi-host; implied under cil-jax launch)"""


def run(argv: list[str]) -> None:
  """The command: argv[0] is the program's name, the flags follow."""
  global _config_value
  if any(a in ('-h', '--help', '-help', '--helpshort') for a in argv[1:]):
    print(__doc__.strip() + '\n\n' + HELP)
    sys.exit(0)
  try:
    argv, _config_value = command_line.check_command_line(argv)
  except (ValueError, TypeError) as e:
    sys.exit(f'error: {e}')
  _define_flags()
  app.run(main, argv=argv, flags_parser=command_line.parse_flags)


if __name__ == '__main__':
  run(sys.argv)
