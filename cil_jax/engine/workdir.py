"""A workdir holds one experiment: its config, checkpoints, results and logs.

A run may resume a workdir only with a config that gives the same results (`config_base.result_fields`);
anything else is refused before any compute, and a refused or failed start writes nothing there. One
process at a time holds the workdir (a lock file, released by the OS even when the process is killed).
Light on purpose (no JAX, no TensorFlow): main.py checks a workdir before the heavy imports.
"""
from __future__ import annotations

import json
import os
from typing import Any

from cil_jax import config_base, errors

CONFIG = 'config.json'
DATASET = 'dataset.json'   # sources.fingerprint of the data the run began with
RESULTS = 'results.json'
CHECKPOINTS = 'checkpoints'
LOCK = 'lock'


class WorkdirError(errors.UserError, ValueError):
  """The workdir cannot be used by this run; the message says why and what to do."""


def _load_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def holds_experiment(workdir: str) -> bool:
  """True when a run has computed something here (a committed checkpoint or results)."""
  ckpt = os.path.join(workdir, CHECKPOINTS)
  has_ckpt = os.path.isdir(ckpt) and any(n.isdigit() for n in os.listdir(ckpt))  # not Orbax's tmp folders
  return has_ckpt or os.path.exists(os.path.join(workdir, RESULTS))


def _show(value) -> str:
  return json.dumps(value) if isinstance(value, (list, dict)) else repr(value)


def folder_problem(folder: str) -> str | None:
  """Why `folder` cannot be (made) a folder: 'is a file' or 'lies under F, which is a file'; None
  when it can. Checked before anything is written (a workdir, an output folder)."""
  path = os.path.abspath(folder)
  while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  if os.path.isdir(path):
    return None
  return 'is a file' if path == os.path.abspath(folder) else f'lies under {path}, which is a file'


def write_problem(folder: str) -> tuple[str, str] | None:
  """(where, why) when this process can neither write `folder` nor make it: `where` is the folder, or
  the existing folder it would be made in; `why` is 'read-only file system' or 'permission denied for
  user U'. None when it can (or when folder_problem applies). Asks the file system, writes nothing."""
  path = os.path.abspath(folder)
  while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    return None
  if os.statvfs(path).f_flag & os.ST_RDONLY:   # os.access alone says yes to root there
    return path, 'read-only file system'
  if not os.access(path, os.W_OK | os.X_OK):
    return path, f'permission denied for user {errors.user()}'
  return None


def cannot_write(folder: str, flag: str) -> str | None:
  """'cannot write to W (why)[, where F would be made]; pass a writable FLAG', or None."""
  problem = write_problem(folder)
  if problem is None:
    return None
  where, why = problem
  made = '' if where == os.path.abspath(folder) else f', where {folder} would be made'
  return f'cannot write to {where} ({why}){made}; pass a writable {flag}'


def check_start(config, workdir: str) -> None:
  """Before a run starts: the workdir holds no other experiment and can be written (unless it holds this
  one, finished: then it is only read)."""
  check_compatible(config, workdir)
  check_writable(workdir)


def check_writable(workdir: str) -> None:
  """Refuses a workdir this process cannot write (a read-only file system, no permission) before
  anything runs. A finished run's workdir is only read (its results are printed): no refusal. An
  unfinished run's is refused with the fix that keeps what it computed."""
  line = cannot_write(workdir, '--workdir')
  if not line or finished_summary(workdir) is not None:
    return
  if holds_experiment(workdir):
    line = (f'{line.partition(";")[0]}, so the run it holds cannot resume; make it writable, or copy it to a '
            'writable place and pass that as --workdir')
  raise WorkdirError(line)


def _check_folder(workdir: str) -> None:
  problem = folder_problem(workdir)
  if problem:
    raise WorkdirError(f'--workdir {workdir} {problem}, not a folder; use another --workdir')


def check_compatible(config, workdir: str) -> None:
  """Refuses a config that would give other results than the experiment the workdir holds."""
  _check_folder(workdir)
  if not holds_experiment(workdir):
    return
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    raise WorkdirError(f'{workdir} holds checkpoints or results but no {CONFIG}, so its experiment is unknown; '
                       'use a new --workdir (or delete this one to start over)')
  try:
    there = config_base.result_fields(_load_json(path))
  except (OSError, ValueError) as e:
    raise WorkdirError(f'{path} is unreadable ({e}); use a new --workdir') from e
  here = config_base.result_fields(config)
  absent = object()
  # A field added to the project after the workdir's run began is absent there; at its default (which
  # keeps the earlier behaviour, as every new field must) it changes nothing.
  base = config_base.base_config()
  config_base.set_method(base, config.method.name)   # the method's options at their defaults too
  defaults = config_base.result_fields(base)
  differ = sorted(k for k in set(there) | set(here) if there.get(k, absent) != here.get(k, absent)
                  and not (k not in there and k in defaults and here.get(k, absent) == defaults[k]))
  if not differ:
    return
  show = lambda v: 'absent' if v is absent else _show(v)  # noqa: E731
  shown = ', '.join(f'{k} {show(there.get(k, absent))} there, {show(here.get(k, absent))} here' for k in differ[:6])
  more = f' and {len(differ) - 6} more' if len(differ) > 6 else ''
  if 'method.name' in differ:  # another method: only its own config files can resume it
    back = f"the workdir's method config (configs/{there['method.name']}_*.py) and its settings"
  else:
    back = ' '.join(f'--config.{k}={_flag_value(there[k])}' for k in differ if k in there) or \
        f'the config it was started with ({path})'
  raise WorkdirError(f'{workdir} holds another experiment ({shown}{more}); use a new --workdir for this config, '
                     f'or resume the workdir with {back}')


def _flag_value(value) -> str:
  if isinstance(value, list):
    return ','.join(str(v) for v in value) if value else "''"
  return str(value)


def finished_summary(workdir: str) -> dict | None:
  """The results of the finished run in `workdir` (check_compatible first), else None. Read-only:
  works on a read-only workdir."""
  path = os.path.join(workdir, RESULTS)
  if not os.path.exists(path):
    return None
  summary = _load_json(path)
  if summary.get('num_tasks') is None or summary['tasks_done'] < summary['num_tasks']:
    return None
  return summary


def write_config(config, workdir: str) -> None:
  """The effective config, written once the run has started (so a refused start leaves no trace)."""
  text = config.to_json_best_effort(indent=1)
  atomic_write(os.path.join(workdir, CONFIG), text)


def check_dataset(fingerprint: dict, workdir: str) -> None:
  """Refuses to resume on other data than the run began with (`sources.fingerprint`): its
  checkpoints index the images by position."""
  path = os.path.join(workdir, DATASET)
  if not holds_experiment(workdir) or not os.path.exists(path):
    return
  try:
    there = _load_json(path)
  except (OSError, ValueError) as e:
    there = e
  if not isinstance(there, dict):
    why = type(there).__name__ if isinstance(there, Exception) else 'not a JSON object'
    raise WorkdirError(f'{path} is unreadable ({why}); use a new --workdir, or delete that file if the data is as '
                       'it was when the run began')
  changes = []
  if there.get('classes') != fingerprint['classes']:
    changes.append(f'{fingerprint["classes"]} classes, {there.get("classes")} at the start')
  for split in ('train', 'test'):
    was, now = there.get(split) if isinstance(there.get(split), dict) else {}, fingerprint[split]
    if was.get('images') != now['images']:
      changes.append(f'{split}: {now["images"]} images, {was.get("images")} at the start')
    elif was.get('digest') != now['digest']:
      changes.append(f'{split}: other file names or labels than at the start')
  if not changes:
    return
  raise WorkdirError(f'the dataset changed since the run in {workdir} began ({"; ".join(changes)}); to resume, '
                     'put the files back as they were (an unreadable image: a readable one at the same path), or '
                     'start this config in a new --workdir')


def write_dataset(fingerprint: dict, workdir: str) -> None:
  atomic_write(os.path.join(workdir, DATASET), json.dumps(fingerprint, indent=1))


def atomic_write(path: str, text: str) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    f.write(text)
  os.replace(tmp, path)


class Lock:
  """An exclusive lock on the workdir for this process (fcntl; freed by the OS when the process dies)."""

  def __init__(self, workdir: str):
    import fcntl
    self.path = os.path.join(workdir, LOCK)
    self.file = open(self.path, 'a+')
    try:
      fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      self.file.seek(0)
      owner = self.file.read().strip() or 'unknown'
      self.file.close()
      raise WorkdirError(f'another process (pid {owner}) is running in {workdir}; wait for it to finish, or stop '
                         'it, or use another --workdir') from None
    self.file.seek(0)
    self.file.truncate()
    self.file.write(str(os.getpid()))
    self.file.flush()

  def release(self) -> None:
    if not self.file.closed:
      self.file.close()  # closing frees the flock; the file stays (removing it could race a waiting process)
