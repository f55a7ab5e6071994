"""Native code's writes to the process's file descriptors (TensorFlow's, gloo's, libjpeg's banners):
silenced or filtered around the calls that make them, so that the output stays the project's own."""
from __future__ import annotations

import contextlib
import os
import sys


def native_output_silenced(fd: int):
  """Silences file descriptor `fd` (1 or 2: native code's banners) for the block; Python's own
  writes resume after it."""
  return native_output_filtered(fd, drop=None)


@contextlib.contextmanager
def native_output_filtered(fd: int, drop):
  """Holds what is written to file descriptor `fd` during the block and writes it back after, but the
  lines `drop(line)` is true of (a library's noise); Python's own writes to that stream are held too.
  drop=None: everything goes (to the null device: nothing is held)."""
  import tempfile
  stream = sys.stdout if fd == 1 else sys.stderr
  stream.flush()
  saved = os.dup(fd)
  with (open(os.devnull, 'wb') if drop is None else tempfile.TemporaryFile()) as held:
    os.dup2(held.fileno(), fd)
    try:
      yield
    finally:
      if drop is not None:
        stream.flush()
      os.dup2(saved, fd)
      os.close(saved)
      if drop is not None:
        held.seek(0)
        kept = [line for line in held.read().decode(errors='replace').splitlines(keepends=True) if not drop(line)]
        if kept:
          os.write(fd, ''.join(kept).encode())
