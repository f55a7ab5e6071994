"""One session in a workdir, around the loop: process 0 makes the workdir, holds its lock and its log;
a start that fails or stops before its first checkpoint leaves no trace. Light (no JAX at import): the
train command takes its stop exception from here before the heavy imports."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import traceback

from cil_jax import errors
from cil_jax.engine import multihost, run_log
from cil_jax.engine import workdir as workdir_lib


class Stopped(BaseException):
  """SIGTERM or SIGINT. saved: the training loop saved a checkpoint at the current step and said so;
  else the signal came outside the loop (start-up, the end), and a start so stopped leaves no trace."""

  def __init__(self, signum: int, saved: bool = False):
    super().__init__(signal.Signals(signum).name)
    self.signum, self.saved = signum, saved


@contextlib.contextmanager
def session(workdir: str):
  """Process 0 makes the workdir, locks it and logs the session (its ending line too); an exception
  before anything was computed removes what this start wrote (and the workdir, if it made it)."""
  import jax
  from jax.experimental import multihost_utils
  first = jax.process_index() == 0   # makes the workdir, holds its lock, writes and cleans up for all
  created = first and not os.path.exists(workdir)
  lock, log, before = None, None, None
  once = threading.Lock()   # the main thread and the watchdog's may both get here

  def forget():   # nothing computed: leave no trace of this start
    if before is None or not once.acquire(blocking=False) or workdir_lib.holds_experiment(workdir):
      return   # (before is None: not process 0, or it could not make the workdir)
    if lock is not None:
      lock.release()
    for name in set(os.listdir(workdir)) - before:
      path = os.path.join(workdir, name)
      if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
      elif os.path.exists(path):
        os.remove(path)
    if created:
      os.rmdir(workdir)
  unregister = multihost.before_exit(forget)   # the watchdog may end a failed start from its thread
  try:
    if first:   # (a full disk or a refused write here is one line too, and leaves no trace)
      os.makedirs(workdir, exist_ok=True)
      before = set(os.listdir(workdir))
      lock = workdir_lib.Lock(workdir)
      log = run_log.RunLog(workdir)
    if jax.process_count() > 1:   # the others start once the workdir exists
      multihost_utils.sync_global_devices('cil_jax: workdir ready')
    yield
  except BaseException as e:
    if log is not None:
      log.note(ending_line(e))
    forget()
    raise
  finally:
    unregister()
    if log is not None:
      log.close()
    if lock is not None:
      lock.release()


def ending_line(e: BaseException) -> str:
  """What ended a session, for its log: the error line the command prints, or a bug's traceback."""
  if isinstance(e, Stopped) and e.saved:   # its message is logged already
    return ''
  line = errors.error_line(e) if isinstance(e, Exception) else None
  if line is None and isinstance(e, Exception):
    return ''.join(traceback.format_exception(e)).rstrip()
  return line or f'stopped ({type(e).__name__})'
