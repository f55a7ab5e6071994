"""What the loop does besides training, as hooks called in list order at its boundaries (train.loop):
the progress line and TensorBoard scalars, checkpoints, the profiler window, test fault injection and
the stop agreement. A call runs a chunk of K steps, so an interval is met when a multiple of it lies in
the chunk (`crossed`), whatever K is."""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
from typing import Any

import jax
import numpy as np

from cil_jax.engine import multihost
from cil_jax.engine.session import Stopped


@dataclasses.dataclass
class Chunk:
  """One call's steps [k, k + n) of the epoch, global steps (before, before + n]; metrics stacked [n]
  (a scalar each when n = 1)."""
  k: int
  n: int
  before: int
  metrics: Any

  def crossed(self, every: int) -> bool:
    """A multiple of `every` among the epoch's steps k + 1 .. k + n."""
    return crossed(every, self.k, self.k + self.n)


def crossed(every: int, before: int, after: int) -> bool:
  """A multiple of `every` (> 0) lies in (before, after]."""
  return every > 0 and after // every > before // every


class Hook:
  """The loop's boundaries, each a no-op here: `ep` is the train.Epoch running."""

  def start_epoch(self, run, ep) -> None:
    pass

  def after_chunk(self, run, ep, chunk: Chunk) -> None:
    pass

  def epoch_trained(self, run, ep) -> None:
    """The epoch's steps are done (validation and the schedule's verdict come next)."""

  def end_epoch(self, run, ep, last: bool) -> None:
    """The epoch is over; `last`: its phase too."""

  def end_training(self, run, t: int) -> None:
    """Task t's phases are done (its hooks, memory update and evaluation come next)."""

  def end_task(self, run, t: int, row: dict) -> None:
    pass

  def close(self, run) -> None:
    pass


class Logger(Hook):
  """The progress line and the train scalars every log_every_steps, from the previous interval's
  metrics (ready by then: no stall), and the epoch's last step with one sync per epoch; the task's
  evaluation to TensorBoard."""

  def __init__(self, every: int):
    self.every = every

  def start_epoch(self, run, ep):
    self.pending = self.last = None   # (metrics, step, images seen) of the interval not shown yet; last metrics
    run.progress.reset_rate(run.rs.images_seen, forget=ep.epoch == 0)

  def after_chunk(self, run, ep, chunk):
    if chunk.crossed(self.every):
      if self.pending is not None:
        metrics, step, images = self.pending
        self._log(run, ep, ep.lr_of_step(step - 1), step, metrics, images)
      self.pending = chunk.metrics, chunk.k + chunk.n, run.rs.images_seen
    self.last = chunk.metrics

  def epoch_trained(self, run, ep):
    if self.last is not None:
      self._log(run, ep, ep.lr_of_step(ep.steps - 1) if ep.per_step else ep.lr_start, ep.steps, self.last)

  def _log(self, run, ep, lr, step, metrics, images=None):
    """metrics of one step, or stacked [K] over a chunk of K steps (the last one is shown); `images`:
    the images seen up to that step (default: now), whose time the fetch of its metrics completes."""
    fetched = {k: np.asarray(v).reshape(-1) for k, v in jax.device_get(metrics).items()}
    values = {k: float(v[-1]) for k, v in fetched.items()}
    if not np.isfinite(fetched['loss']).all():
      raise FloatingPointError(f'loss is {values["loss"]} at {ep.header}, step {step}: training '
                               'diverged; lower train.lr (with a new --workdir: the lr is part of the experiment) '
                               'or check the data')
    run.progress.update(ep.header, step, ep.steps, run.rs.images_seen if images is None else images, values,
                        extra=lr_text(lr))
    run.writer.train_scalars(run.rs.global_step, values, lr)

  def end_task(self, run, t, row):
    run.writer.task_row(t, row)


class Checkpoints(Hook):
  """Every checkpoint.every_steps (global steps) and every_epochs (and a phase's last epoch); at the end
  of a task's training (so that a kill during its hooks, memory update or evaluation does not redo the
  training) unless the last epoch's save holds it; after the task."""

  def __init__(self, every_steps: int, every_epochs: int):
    self.every_steps, self.every_epochs = every_steps, every_epochs

  def after_chunk(self, run, ep, chunk):
    if crossed(self.every_steps, chunk.before, run.rs.global_step):
      run.save()

  def end_epoch(self, run, ep, last):
    if self.every_epochs and ((ep.epoch + 1) % self.every_epochs == 0 or last):
      run.save()

  def end_training(self, run, t):
    if run.rs.cursor != run.saved_cursor:
      run.save()

  def end_task(self, run, t, row):
    run.save()


class Profiler(Hook):
  """XLA's trace of global steps [start, start + num): it starts and stops at the first chunk boundary at
  or after them."""

  def __init__(self, start: int, num: int, logdir: str):
    self.first, self.last, self.logdir = start, start + num, logdir

  def after_chunk(self, run, ep, chunk):
    now = run.rs.global_step
    if chunk.before < self.first <= now:
      jax.profiler.start_trace(self.logdir)
    elif chunk.before < self.last <= now:
      jax.block_until_ready(run.rs.state.params)
      jax.profiler.stop_trace()
      run.progress.message(f'profiler trace of steps {self.first}..{now} written to {self.logdir} (open the '
                           'Profile tab of TensorBoard)')


class FaultInjection(Hook):
  """debug.kill_at_step: a real signal to this process (or debug.kill_process's), for the resume tests."""

  def __init__(self, debug):
    self.debug = debug

  def after_chunk(self, run, ep, chunk):
    step = int(self.debug.kill_at_step)
    if chunk.before < step <= run.rs.global_step and int(self.debug.kill_process) in (-1, jax.process_index()):
      os.kill(os.getpid(), getattr(signal, 'SIG' + self.debug.kill_signal))


class StopAgreement(Hook):
  """SIGTERM (preemption) and Ctrl-C: a checkpoint at the current step, then Stopped. Several processes
  decide together, at agreement points only (a collective, at the same steps on all: log and checkpoint
  boundaries, epoch and task ends), so that they save the same checkpoint."""

  def __init__(self, log_every: int, ckpt_every: int):
    self.log_every, self.ckpt_every = log_every, ckpt_every
    self.signum = 0   # the signal received, 0 for none
    self._handlers = {}

  def install(self, run) -> None:
    if threading.current_thread() is threading.main_thread():
      self._handlers = {sig: signal.signal(sig, lambda s, _: self._on_signal(run, s))
                        for sig in (signal.SIGTERM, signal.SIGINT)}

  def _on_signal(self, run, signum):
    if self.signum and signum == signal.SIGINT:  # a second Ctrl-C: stop now, without the save
      raise KeyboardInterrupt
    if not self.signum:
      run.progress.message(f'{signal.Signals(signum).name}: saving a checkpoint at the next step, then stopping'
                           + (' (Ctrl-C again stops at once)' if signum == signal.SIGINT else ''))
    self.signum = signum

  def after_chunk(self, run, ep, chunk):
    agreed = (chunk.crossed(self.log_every) or crossed(self.ckpt_every, chunk.before, run.rs.global_step)
              or chunk.k + chunk.n == ep.steps)
    if not agreed and jax.process_count() > 1:
      return
    stop = multihost.stop_requested(self.signum)
    if stop:
      run.save()
      raise Stopped(stop, saved=True)

  def end_task(self, run, t, row):
    stop = multihost.stop_requested(self.signum)
    if stop:  # a signal during the evaluation: the task's checkpoint is saved
      raise Stopped(stop, saved=True)

  def close(self, run):
    for sig, handler in self._handlers.items():
      signal.signal(sig, handler)


def lr_values(lr) -> str:
  """'0.1', or '0.000143/0.001' for an lr per parameter group."""
  return '/'.join(f'{v:.3g}' for v in lr.values()) if isinstance(lr, dict) else f'{lr:.3g}'


def lr_text(lr) -> str:
  return 'lr ' + lr_values(lr)
