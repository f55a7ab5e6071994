"""The one line a person can act on, for every error that is not a bug. Light: the commands use it
before JAX loads; the run's log (run_log.py) records the same line.

A file system's refusal (a full disk, a quota, a read-only or unwritable folder, a file this user may
not read) is one line naming the place and the fix, wherever it surfaces: an OSError in the
exception's chain, or the message of TensorStore's error (Orbax's checkpoint writes) that carries the
OS error code.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import sys
import warnings

RESUME = 'rerun the same command to resume from the last checkpoint'
_CODE = re.compile(r"\[os_error_code='?(\d+)'?\]|\[Errno (\d+)\]")
_QUOTED = re.compile(r'"(/[^"]+)"')
_ORBAX_TMP = '.orbax-checkpoint-tmp'
_TF_WRAPPERS = re.compile(r'\{\{function_node [^}]*\}\}|\s*\[Op:\w+\]')
_OS_CODES = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def user() -> str:
  """This process's user, as a permission error concerns it."""
  try:
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name
  except (ImportError, KeyError):
    return f'uid {os.geteuid()}'


def os_error(e: BaseException) -> tuple[int, str | None] | None:
  """(errno, path or None) of the file-system refusal behind `e`, for the codes this module explains;
  None when there is none. Looks along the chain (Orbax wraps what its threads raised)."""
  chain, seen = e, set()
  while chain is not None and id(chain) not in seen:
    seen.add(id(chain))
    if isinstance(chain, OSError) and chain.errno in _OS_CODES:
      return chain.errno, chain.filename
    found = _CODE.search(str(chain))
    if found and int(found.group(1) or found.group(2)) in _OS_CODES:   # TensorStore: the path is quoted
      paths = _QUOTED.findall(str(chain))
      return int(found.group(1) or found.group(2)), paths[-1] if paths else None
    chain = chain.__cause__ or chain.__context__
  return None


def _folder(path: str | None) -> str:
  """The folder a failed write was in; Orbax's temporary folders (removed on the next start) cut off."""
  if not path:
    return 'the workdir'
  path = os.path.abspath(path)
  if _ORBAX_TMP in path:
    path = path[:path.index(_ORBAX_TMP)]
  return os.path.dirname(path.rstrip(os.sep)) or os.sep


def os_line(e: BaseException, then: str = RESUME, path: str | None = None) -> str | None:
  """'error: ...' for a file-system refusal behind `e` (os_error), ending with the fix and `then`; None
  for anything else. `path`: the file being written, where the error does not name one (a library's
  write through an open file)."""
  found = os_error(e)
  if found is None:
    return None
  code, path = found[0], found[1] or path
  where = _folder(path)
  if code == errno.ENOSPC:
    return f'error: no space left on the device ({where}); free space in {where}, then {then}'
  if code == errno.EDQUOT:
    return f'error: disk quota exceeded ({where}); free space in {where} or raise the quota, then {then}'
  if code == errno.EROFS:
    return f'error: cannot write to {where} (read-only file system); make it writable, then {then}'
  # EACCES / EPERM: a file that exists and this user may not read is a read; anything else a write
  if path and os.path.exists(path) and not os.access(path, os.R_OK):
    return (f'error: cannot read {path} (permission denied for user {user()}); make it readable for that user '
            f'(chmod, chown), then {then}')
  return (f'error: cannot write to {where} (permission denied for user {user()}); make it writable for that user, '
          f'then {then}')


def one_line(e: BaseException, limit: int = 300, typed: bool = True) -> str:
  """`e` as one short line inside another message: 'Type: message' (the message only, not `typed`), its
  whitespace collapsed (tfds and TensorStore errors span lines), TensorFlow's op wrapper names
  ({{function_node ...}}, [Op:...]) dropped, cut at `limit` characters."""
  text = getattr(e, 'message', None) or str(e)   # a TensorFlow error's message, without its traceback
  text = _TF_WRAPPERS.sub('', text)
  text = ' '.join(text.split())
  if typed:
    text = f'{type(e).__name__}: {text}' if text else type(e).__name__
  return text if len(text) <= limit else text[:limit - 3] + '...'


class UserError(Exception):
  """Mixed into the project's errors whose message is the whole story for a person (what is wrong
  and the fix): the command prints it as one line, without a traceback."""


def error_line(e: BaseException) -> str | None:
  """The command's final line: 'error: ...' naming the fix; None for a bug (shown with its traceback)."""
  found = os_error(e)
  if found and found[0] in (errno.ENOSPC, errno.EDQUOT):   # a full disk, however it is wrapped
    return os_line(e)
  if isinstance(e, (UserError, FloatingPointError)):
    return f'error: {e}'
  if found:
    return os_line(e)
  if type(e) is ValueError:
    return f'error: {e}'
  return None


class _QuietOsErrors(logging.Filter):
  """Drops a log record that carries a file-system refusal (os_error): Orbax's save threads log each
  one with its traceback (four for one full disk), and the main thread raises it again, where the
  command prints its one line."""

  def filter(self, record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return exc is None or os_error(exc) is None


_quiet = _QuietOsErrors()


def _unraisable(args, previous=sys.unraisablehook) -> None:
  if isinstance(args.exc_value, RuntimeError) and str(args.exc_value) == 'Event loop is closed':
    return   # a TensorStore write that ended after Orbax's save had failed and closed its loop: nobody waits
  previous(args)


def quiet_background_os_errors() -> None:
  """Orbax's save threads, after a write failed: their log records (through absl, and asyncio's 'never
  retrieved' for the other writes' futures) of a file-system refusal, the other writes' callbacks
  into the closed event loop (unraisable, one traceback each), and the warning for the writes that
  never started. Idempotent."""
  for name in ('absl', 'asyncio'):   # asyncio: the writes' futures that failed and nobody awaited any more
    logging.getLogger(name).addFilter(_quiet)
  # and the writes that never started, collected when the interpreter ends
  warnings.filterwarnings('ignore', message=r"coroutine '.*write_fragment' was never awaited", category=RuntimeWarning)
  sys.unraisablehook = _unraisable
