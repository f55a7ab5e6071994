"""The watchdog's decisions (cil_jax/engine/multihost.py) over the entries of the key-value store of JAX's
distributed runtime: a peer's error or silence stops this process with one line, a peer that
finished is no loss, a lost coordinator is named; and a peer is told of this process's error."""
import time

from cil_jax.engine import multihost


class Store:
  """The two calls of the runtime's client the watchdog uses."""

  def __init__(self):
    self.data, self.broken = {}, False

  def key_value_set(self, key, value, allow_overwrite=False):
    if self.broken:
      raise RuntimeError('UNAVAILABLE: failed to connect to all addresses')
    assert allow_overwrite or key not in self.data
    self.data[key] = value

  def key_value_dir_get(self, prefix):
    if self.broken:
      raise RuntimeError('UNAVAILABLE: failed to connect to all addresses')
    return [(k, v) for k, v in self.data.items() if k.startswith(prefix)]


def _dog(store, me=0, n=3, lost_after=10.0):
  return multihost.Watchdog(me, n, lost_after, interval=0.01, client=store, start=False)


def test_a_silent_peer_is_lost_after_the_limit_and_a_beating_one_never():
  dog = _dog(Store())
  beats = {'cil_jax/alive/1': '1', 'cil_jax/alive/2': '1'}
  assert dog.check(beats, now=0.0) is None
  for t in range(1, 10):   # peer 1 beats on, peer 2 is silent for 9 s
    beats['cil_jax/alive/1'] = str(t + 1)
    assert dog.check(dict(beats), now=float(t)) is None
  beats['cil_jax/alive/1'] = '11'
  assert dog.check(dict(beats), now=10.5) == (
      'process 2 of 3 stopped responding (no sign of life for 10 s); stopping this one too', True)  # + resume hint


def test_a_peer_that_never_beat_is_lost_too_and_a_finished_one_is_not():
  dog = _dog(Store(), n=2, lost_after=5.0)
  assert dog.check({}, now=0.0) is None
  assert dog.check({}, now=5.5)[0].startswith('process 1 of 2 stopped responding')
  dog = _dog(Store(), n=2, lost_after=5.0)
  assert dog.check({'cil_jax/alive/1': '7'}, now=0.0) is None
  assert dog.check({'cil_jax/alive/1': '7', 'cil_jax/done/1': '1'}, now=60.0) is None


def test_a_peers_error_is_this_processs_line_and_its_own_is_not_repeated():
  dog = _dog(Store(), me=1)
  entries = {'cil_jax/error/2': 'error: bad.JPEG cannot be decoded; remove it', 'cil_jax/alive/0': '1',
             'cil_jax/alive/2': '1'}
  assert dog.check(entries, now=0.0) == (   # it names its own fix: no resume hint
      'bad.JPEG cannot be decoded; remove it (found by process 2 of 3; every process stops)', False)
  assert _dog(Store(), me=2).check(entries, now=0.0) is None   # process 2 prints its own line itself


def test_the_thread_reports_and_exits(monkeypatch):
  lines = []
  monkeypatch.setattr(multihost, "_exit", lambda text, relaunch=True: lines.append(text))
  store = Store()
  teller = multihost.Watchdog(1, 2, 10.0, interval=0.01, client=store, start=False)
  teller.report_error('error: dataset.root does not exist')   # what main.py does before it exits
  dog = multihost.Watchdog(0, 2, 10.0, interval=0.01, client=store)
  deadline = time.monotonic() + 5
  while not lines and time.monotonic() < deadline:
    time.sleep(0.01)
  dog.finish()
  assert lines[0] == 'dataset.root does not exist (found by process 1 of 2; every process stops)'
  assert store.data['cil_jax/done/0'] == '1'

  lines.clear()
  store = Store()
  dog = multihost.Watchdog(1, 2, 10.0, interval=0.01, client=store)
  store.broken = True   # process 0, which holds the store, is gone
  deadline = time.monotonic() + 5
  while not lines and time.monotonic() < deadline:
    time.sleep(0.01)
  dog._stop.set()
  assert lines and lines[0].startswith('lost contact with the coordinator (process 0 of 2): UNAVAILABLE')


def test_exiting_runs_what_a_failed_start_must_undo_and_names_the_fix(monkeypatch, capsys):
  codes, undone = [], []
  monkeypatch.setattr(multihost.os, '_exit', codes.append)
  unregister = multihost.before_exit(lambda: undone.append(1))
  multihost.before_exit(lambda: 1 / 0)   # a failing hook does not stop the exit
  try:
    multihost._exit('x (found by process 1 of 2; every process stops)', relaunch=False)
    multihost._exit('process 1 of 2 stopped responding')
  finally:
    unregister()
    multihost._before_exit.clear()
  assert codes == [1, 1] and undone == [1, 1]
  assert capsys.readouterr().err.split('\n') == [
      '', 'error: x (found by process 1 of 2; every process stops)',
      '', 'error: process 1 of 2 stopped responding. Relaunch the same command on every process to resume from '
      'the last checkpoint', '']
  unregister()   # twice: no error
