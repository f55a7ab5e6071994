"""A terminal progress line: a header (task/phase/epoch, or the data check's split), a bar, loss terms
and a smoothed img/s, within 80 columns. Redraws in place on a TTY, prints a line per update otherwise
(log files stay readable): the caller decides how often to update."""
from __future__ import annotations

import sys
import time

WIDTH = 80
SMOOTHING = 0.3   # weight of the newest interval in the img/s moving average


def _elapsed(seconds: float) -> str:
  s = int(seconds)
  if s < 60:
    return f'{s}s'
  if s < 3600:
    return f'{s // 60}m{s % 60:02d}s'
  return f'{s // 3600}h{s // 60 % 60:02d}m'


class _Discard:
  def write(self, text):
    pass

  def flush(self):
    pass

  def isatty(self):
    return False


class Progress:
  """`silent`: for the processes other than process 0 of a multi-process run (one voice suffices;
  errors are still printed by every process)."""

  def __init__(self, stream=None, width: int = WIDTH, silent: bool = False):
    self.stream = _Discard() if silent else (stream or sys.stderr)
    self.tty = self.stream.isatty()
    self.width = width
    self.start = time.perf_counter()
    self._last_t, self._last_images = self.start, 0
    self._rate = None
    self._skip_next = True

  def line(self, header: str, step: int, steps: int, images: int, metrics: dict, now: float | None = None,
           extra: str = '') -> str:
    """The text of one update: `header extra [bar] step/steps loss .. <terms> <img/s> <elapsed>`. What
    does not fit in the width goes, in this order: loss terms but the loss (TensorBoard has them all),
    the bar, `extra` (e.g. the lr)."""
    now = time.perf_counter() if now is None else now
    if images > self._last_images:  # a repeated update (end of epoch) keeps the last rate
      if not self._skip_next:  # the first interval after a pause holds a compile or a data warm-up
        rate = (images - self._last_images) / max(now - self._last_t, 1e-9)
        self._rate = rate if self._rate is None else SMOOTHING * rate + (1 - SMOOTHING) * self._rate
      self._skip_next = False
      self._last_t, self._last_images = now, images
    rate = '-' if self._rate is None else f'{self._rate:,.0f}'
    tail = f' {rate} img/s {_elapsed(now - self.start)}'
    count = f' {step}/{steps}'
    names = ['loss'] + sorted(k for k in metrics if k != 'loss')
    terms = [f' {k} {metrics[k]:.4g}' for k in names if k in metrics]
    if extra and len(header) + 1 + len(extra) + len(count) + len(tail) + len(terms[0] if terms else '') <= self.width:
      header = f'{header} {extra}'
    bar_width = max(0, min(10, self.width - len(header) - len(count) - len(tail) - len(terms[0] if terms else '') - 3))
    done = int(bar_width * step / max(steps, 1))
    text = f'{header} [{"#" * done}{"." * (bar_width - done)}]{count}' if bar_width else f'{header}{count}'
    for term in terms:
      if len(text) + len(term) + len(tail) > self.width:
        break
      text += term
    return (text + tail)[:self.width]

  def update(self, header: str, step: int, steps: int, images: int, metrics: dict, extra: str = '') -> None:
    line = self.line(header, step, steps, images, metrics, extra=extra)
    self.stream.write('\r\033[K' + line if self.tty else line + '\n')
    self.stream.flush()

  def reset_rate(self, images: int, forget: bool = False) -> None:
    """Starts the next rate interval now (after a pause such as an evaluation or a compile).
    `forget`: the work per image changes (a new phase: a teacher, other batches), so the old rate
    would be wrong until the new one is measured; '-' is shown instead."""
    self._last_t, self._last_images = time.perf_counter(), images
    self._skip_next = True
    if forget:
      self._rate = None

  def mark(self, images: int, now: float | None = None) -> None:
    """The steps run clean from now on (compiled, first batch loaded): the next interval starts here
    and counts, so that an epoch too short for two log lines still shows its rate."""
    self._last_t = time.perf_counter() if now is None else now
    self._last_images = images
    self._skip_next = False

  def end(self) -> None:
    """Keeps the last line on a terminal: what is written next starts below it."""
    if self.tty:
      self.stream.write('\n')
      self.stream.flush()

  def message(self, text: str) -> None:
    self.stream.write(('\r\033[K' if self.tty else '') + text + '\n')
    self.stream.flush()
