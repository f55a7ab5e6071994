"""A terminal progress bar: task/phase/epoch, loss terms and img/s. Redraws in place on a TTY,
prints a line per update otherwise (log files stay readable)."""
from __future__ import annotations

import sys
import time


class Progress:
  def __init__(self, stream=None, width: int = 24):
    self.stream = stream or sys.stderr
    self.tty = self.stream.isatty()
    self.width = width
    self.start = time.perf_counter()
    self._last_t, self._last_images = self.start, 0
    self._rate = 0.0

  def update(self, header: str, step: int, steps: int, images: int, metrics: dict) -> None:
    now = time.perf_counter()
    if images > self._last_images:  # a repeated update (end of epoch) keeps the last rate
      self._rate = (images - self._last_images) / max(now - self._last_t, 1e-9)
      self._last_t, self._last_images = now, images
    rate = self._rate
    done = int(self.width * step / max(steps, 1))
    bar = '#' * done + '.' * (self.width - done)
    terms = ' '.join(f'{k} {v:.4f}' for k, v in sorted(metrics.items()))
    line = f'{header} [{bar}] {step}/{steps} {terms} {rate:,.0f} img/s {now - self.start:,.0f}s'
    if self.tty:
      self.stream.write('\r\033[K' + line)
    else:
      self.stream.write(line + '\n')
    self.stream.flush()

  def reset_rate(self, images: int) -> None:
    self._last_t, self._last_images = time.perf_counter(), images

  def message(self, text: str) -> None:
    self.stream.write(('\r\033[K' if self.tty else '') + text + '\n')
    self.stream.flush()
