"""Several JAX processes (multi-host): what they must agree on besides the collectives.

- `stop_requested`: SIGTERM or Ctrl-C reaches the processes at different steps. Each one checks every
  process's flag at the same agreement points, so all of them save the same checkpoint and stop.
- `Watchdog`: a thread per process that turns a lost process, or an error found by one process, into
  the same one clear line on every process and a prompt exit. Without it, the others would wait in a
  collective until JAX's own heartbeat timeout aborts them with a native stack dump.

Both use the key-value store of JAX's distributed runtime (the coordinator, in process 0). One
process: nothing here does anything.
"""
from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np

from cil_jax.errors import one_line
from cil_jax.native_output import native_output_silenced

PREFIX = 'cil_jax/'
LOST_AFTER_S = 30.0   # default CIL_JAX_LOST_AFTER: a process silent this long is taken as lost
_watchdog = None


def lost_after() -> float:
  return float(os.environ.get('CIL_JAX_LOST_AFTER', LOST_AFTER_S))


def stop_requested(local: int) -> int:
  """The signal number any process received (0: none). With several processes every one of them
  must call this at the same point of the run (it is a collective)."""
  import jax
  if jax.process_count() == 1:
    return local
  from jax.experimental import multihost_utils
  return int(np.max(multihost_utils.process_allgather(np.int32(local))))


def check_same(text: str, differs: str) -> None:
  """Raises base.DataError `process i of n {differs}` where process i's `text` is not process 0's
  (a collective: every process calls it at the same point; nothing to do for one process)."""
  import jax
  if jax.process_count() == 1:
    return
  import hashlib
  from jax.experimental import multihost_utils
  from cil_jax.input_pipeline.base import DataError
  digest = np.frombuffer(hashlib.sha1(text.encode()).digest(), np.uint8)
  every = np.asarray(multihost_utils.process_allgather(digest)).reshape(jax.process_count(), -1)
  other = [i for i in range(1, len(every)) if not np.array_equal(every[i], every[0])]
  if other:
    raise DataError(f'process {other[0]} of {len(every)} {differs}')


def _client():
  from jax._src import distributed   # the runtime's client; jax has no public handle on its store
  return distributed.global_state.client


class Watchdog:
  """Beats every `interval` s in the store and reads the others' beats and errors."""

  def __init__(self, process: int, processes: int, lost_after_s: float, interval: float = 1.0, client=None,
               start: bool = True):
    self.me, self.n, self.lost_after, self.interval = process, processes, lost_after_s, interval
    self.client = client or _client()
    self._seen = {}   # peer -> (its last beat, when that changed on this clock)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, name='cil_jax-watchdog', daemon=True)
    if start:
      self._thread.start()

  def _loop(self):
    beat = 0
    while not self._stop.is_set():
      beat += 1
      try:
        self.client.key_value_set(f'{PREFIX}alive/{self.me}', str(beat), allow_overwrite=True)
        entries = dict(self.client.key_value_dir_get(PREFIX))
      except Exception as e:  # noqa: BLE001 - the coordinator is gone, whatever the error says
        if not self._stop.is_set():
          _exit(f'lost contact with the coordinator (process 0 of {self.n}): {one_line(e, 200, typed=False)}')
        return
      problem = self.check(entries, time.monotonic())
      if problem:
        _exit(*problem)
      self._stop.wait(self.interval)

  def _relayed(self, entries: dict) -> str | None:
    errors = sorted((int(k.rsplit('/', 1)[1]), v) for k, v in entries.items() if '/error/' in k)
    if errors and errors[0][0] != self.me:
      who, line = errors[0]
      return f'{line.removeprefix("error: ")} (found by process {who} of {self.n}; every process stops)'
    return None

  def peer_error(self, wait_s: float) -> str | None:
    """Another process's error line, relayed, if one arrives within wait_s (None: none did)."""
    deadline = time.monotonic() + wait_s
    while True:
      try:
        line = self._relayed(dict(self.client.key_value_dir_get(PREFIX)))
      except Exception:  # noqa: BLE001 - the coordinator is gone: nobody can tell
        return None
      if line or time.monotonic() >= deadline:
        return line
      time.sleep(self.interval / 4)

  def check(self, entries: dict, now: float) -> tuple[str, bool] | None:
    """What stops this process, given the store's entries at time `now`: (the line, whether a
    relaunch resumes), or None. A relayed error names its own fix; a lost process needs the hint."""
    relayed = self._relayed(entries)
    if relayed:
      return relayed, False
    lost = self._lost(entries, now)
    return (lost, True) if lost else None

  def _lost(self, entries: dict, now: float) -> str | None:
    for peer in range(self.n):
      if peer == self.me or f'{PREFIX}done/{peer}' in entries:
        continue
      value = entries.get(f'{PREFIX}alive/{peer}')
      if peer not in self._seen or self._seen[peer][0] != value:
        self._seen[peer] = (value, now)
      elif now - self._seen[peer][1] > self.lost_after:
        return (f'process {peer} of {self.n} stopped responding (no sign of life for {self.lost_after:.0f} s); '
                'stopping this one too')
    return None

  def report_error(self, line: str) -> None:
    """Tells the others (their watchdogs print `line` and exit). Process 0 holds the store: it waits
    until they could read it; the others may exit at once (waiting, they would see process 0 go
    and abort)."""
    try:
      self.client.key_value_set(f'{PREFIX}error/{self.me}', line, allow_overwrite=True)
    except Exception:  # noqa: BLE001 - the coordinator is gone already: nothing to tell
      return
    if self.me == 0:
      time.sleep(3 * self.interval)

  def finish(self) -> None:
    """This process is done (finished or stopped with the others): its silence is no loss."""
    try:
      self.client.key_value_set(f'{PREFIX}done/{self.me}', '1', allow_overwrite=True)
    except Exception:  # noqa: BLE001
      pass
    self._stop.set()
    if self._thread.is_alive():
      self._thread.join(timeout=5 * self.interval)


_before_exit = []   # what a failed start must undo (session.session) when the watchdog ends it


def before_exit(fn):
  """Runs fn() if the watchdog ends this process; returns a function that unregisters it."""
  _before_exit.append(fn)
  return lambda: _before_exit.remove(fn) if fn in _before_exit else None


def run_before_exit() -> None:
  """What before_exit registered (a failed start's cleanup), for an exit that skips Python's unwinding."""
  for fn in list(_before_exit):
    try:
      fn()
    except Exception:  # noqa: BLE001 - exiting anyway; the error line is what counts
      pass


def _exit(text: str, relaunch: bool = True) -> None:
  hint = '. Relaunch the same command on every process to resume from the last checkpoint' if relaunch else ''
  sys.stderr.write(f'\nerror: {text}{hint}\n')
  sys.stderr.flush()
  run_before_exit()
  os._exit(1)   # the main thread may be blocked in a collective with the lost process


def start_watchdog() -> None:
  import jax
  global _watchdog
  if jax.process_count() > 1 and _watchdog is None:
    _watchdog = Watchdog(jax.process_index(), jax.process_count(), lost_after())


def connect() -> None:
  """The processes' first collectives, with native stdout silenced: gloo connects a set of devices at
  its first collective and prints a banner line per device there. The run uses two sets: one device
  per process (the agreements, multihost_utils) and all devices (the train and eval steps)."""
  import jax
  import jax.numpy as jnp
  from jax.experimental import multihost_utils
  from jax.sharding import Mesh, NamedSharding, PartitionSpec
  with native_output_silenced(1):
    multihost_utils.sync_global_devices('cil_jax: connected')
    ones = jax.make_array_from_process_local_data(
        NamedSharding(Mesh(np.array(jax.devices()), ('d',)), PartitionSpec('d')),
        np.ones(jax.local_device_count(), np.float32))
    jax.block_until_ready(jax.jit(jnp.sum)(ones))


def peer_error(wait_s: float = 5.0) -> str | None:
  """The error another process found, as this one prints it; for a collective that failed because
  that process left (gloo: 'Connection closed by peer'), which is only the consequence."""
  return _watchdog.peer_error(wait_s) if _watchdog is not None else None


def report_error(line: str) -> None:
  """A one-line error found by this process: the others stop with it (no-op for one process)."""
  if _watchdog is not None:
    _watchdog.report_error(line)


def finish() -> None:
  if _watchdog is not None:
    _watchdog.finish()
