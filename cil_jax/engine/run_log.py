"""`<workdir>/log.txt`: everything a run prints, each line with its local time, appended across the
sessions of the run (a marker line opens each one). It is what a cluster job leaves behind when its
terminal is gone: progress at the logging interval, validation losses, lr decays and restores, the
per-task evaluations, resume and stop messages, the results table and the error that ended a session.

What Python writes to stdout and stderr is copied (native libraries' own writes to the file descriptors
are not); a terminal's in-place redraws of the progress line become one log line each.
"""
from __future__ import annotations

import os
import re
import shlex
import socket
import sys
import time

NAME = 'log.txt'
_CONTROL = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')   # the progress line's erase-line codes


def _now() -> str:
  return time.strftime('%Y-%m-%d %H:%M:%S')


class _Tee:
  """A text stream that writes through to `stream` and copies whole lines to the log."""

  def __init__(self, stream, log: 'RunLog'):
    self._stream, self._log, self._partial = stream, log, ''

  def write(self, text: str) -> int:
    written = self._stream.write(text)
    self._partial += text
    *lines, self._partial = re.split(r'[\r\n]', self._partial)
    self._log.lines(lines)
    return written

  def flush(self) -> None:
    self._stream.flush()

  def finish(self) -> None:
    self._log.lines([self._partial])
    self._partial = ''

  def __getattr__(self, name):   # isatty, fileno, encoding, ...: the stream's own
    return getattr(self._stream, name)


class RunLog:
  """Open while a session of the run is; `close` (idempotent) puts the streams back."""

  def __init__(self, workdir: str, argv: list[str] | None = None):
    self.path = os.path.join(workdir, NAME)
    resumed = os.path.exists(self.path) and os.path.getsize(self.path) > 0
    self._file = open(self.path, 'a', encoding='utf-8')
    command = ' '.join(shlex.quote(a) for a in (sys.argv if argv is None else argv))
    self.lines([f'==== {"resumed" if resumed else "started"}: {command} (host {socket.gethostname()}, '
                f'pid {os.getpid()})'])   # (a full disk: the run goes on without its log, as below)
    self._tees = [_Tee(sys.stdout, self), _Tee(sys.stderr, self)]
    sys.stdout, sys.stderr = self._tees

  def _write(self, line: str) -> None:
    self._file.write(f'{_now()} {line}\n')
    self._file.flush()

  def lines(self, lines: list[str]) -> None:
    if self._file is None:
      return
    try:
      for line in lines:
        line = _CONTROL.sub('', line).rstrip()
        if line:
          self._write(line)
    except OSError:   # a full or vanished disk: the run's own error says so; the terminal still shows all
      self._file = None

  def note(self, line: str) -> None:
    """Lines for the log alone (the error that ends the session: the command prints it later)."""
    self.lines(line.splitlines())

  def close(self) -> None:
    if not self._tees:
      return
    for tee in self._tees:
      tee.finish()
    if sys.stdout is self._tees[0]:
      sys.stdout = self._tees[0]._stream
    if sys.stderr is self._tees[1]:
      sys.stderr = self._tees[1]._stream
    self._tees = []
    if self._file is not None:
      try:
        self._file.close()
      except OSError:
        pass
      self._file = None
