"""Runs one command as N cooperating JAX processes on this machine, the way a cluster would.

  cil-jax launch --processes 2 --cpu-devices 2 -- train --config default:smoke
  cil-jax launch --processes 8 --gpus-per-process 1 -- train --config ...
  cil-jax launch --processes 2 -- main.py --config ...     (a script: the clone's main.py)

Each process gets the coordinator address (a free port on the loopback address), the process count
and its id in the environment (CIL_JAX_COORDINATOR, CIL_JAX_NUM_PROCESSES, CIL_JAX_PROCESS_ID, and
CIL_JAX_LOCAL_DEVICES for --gpus-per-process); the train command then calls jax.distributed.initialize with
them. On a cluster, `cil-jax train --distributed` lets jax.distributed detect the same from SLURM, Open MPI
and the other environments it knows.

Process 0's output is shown as is; the others' lines are prefixed with their id. SIGTERM and Ctrl-C
are passed on to every process (they stop together at their next agreement point and save). When a
process fails, the others are stopped (QUIET_STOP, then SIGKILL after --grace seconds) and the
launcher exits with the failed process's status.

One error, one line: the processes run the same command on the same machine, so a bad config or a
missing dataset stops all of them with the same line, and the watchdog relays an error one process
found to the others (cil_jax/engine/multihost.py). The others' error lines are therefore held until all
have stopped. They are shown only if process 0 printed none (the train command exits with status 1 exactly
when it printed an error line) and the stop was not a signal given to all. A process that failed
without a line (a signal, a crash) is named by the launcher.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def process_env(base: dict, i: int, n: int, coordinator: str, cpu_devices: int, gpus_per_process: int) -> dict:
  env = dict(base, CIL_JAX_COORDINATOR=coordinator, CIL_JAX_NUM_PROCESSES=str(n), CIL_JAX_PROCESS_ID=str(i))
  env['PYTHONUNBUFFERED'] = '1'
  if cpu_devices:
    env['JAX_PLATFORMS'] = 'cpu'
    flags = [f for f in env.get('XLA_FLAGS', '').split() if not f.startswith('--xla_force_host_platform_device_count')]
    env['XLA_FLAGS'] = ' '.join(flags + [f'--xla_force_host_platform_device_count={cpu_devices}'])
  if gpus_per_process:
    env['CIL_JAX_LOCAL_DEVICES'] = ','.join(str(d) for d in range(i * gpus_per_process, (i + 1) * gpus_per_process))
  return env


ERROR_STATUS = 1   # the train command's status after printing its one-line error
# The others' stop after one process failed: the launcher has named that process (or it printed its
# line), so the train command exits without a line of its own (status 143), undoing a failed start.
# Not SIGTERM: that is a stop to save a checkpoint at, which a run missing a process cannot do.
QUIET_STOP = signal.SIGUSR1


def _relay(stream, out, prefix: str, held: list | None = None):
  """Copies a process's lines to `out` with its prefix; error lines go to `held` instead (when given),
  blank ones nowhere (they only end another line in place, which a prefixed copy does not need)."""
  for line in iter(stream.readline, ''):
    if not line.strip():
      continue
    if held is not None and line.startswith('error: '):
      held.append(line)
      continue
    out.write(prefix + line)
    out.flush()
  stream.close()


def python_command(command: list[str]) -> list[str]:
  """`train ...` is the package's train command (`cil-jax train ...`); anything else a Python script and
  its arguments (`main.py ...`)."""
  if command[0] == 'train':
    return [sys.executable, '-m', 'cil_jax', *command]
  return [sys.executable, *command]


def launch(command: list[str], processes: int, cpu_devices: int = 0, gpus_per_process: int = 0,
           grace: float = 20.0) -> int:
  """Runs `command` (a Python script and its arguments) as `processes` processes; their exit status."""
  if processes < 1:
    raise ValueError(f'--processes={processes} must be >= 1')
  if not command:
    raise ValueError('no command to launch: put it after --, e.g. -- train --config default:smoke')
  coordinator = f'127.0.0.1:{free_port()}'
  procs, relays = [], {}
  held = {i: [] for i in range(1, processes)}   # the others' error lines (see the module's docstring)
  for i in range(processes):
    env = process_env(os.environ, i, processes, coordinator, cpu_devices, gpus_per_process)
    pipe = None if i == 0 else subprocess.PIPE
    p = subprocess.Popen(python_command(command), env=env, stdout=pipe, stderr=pipe if pipe else None,
                         text=True, start_new_session=True)
    procs.append(p)
    if i:
      relays[i] = [threading.Thread(target=_relay, args=(stream, out, f'[process {i}] ', hold), daemon=True)
                   for stream, out, hold in ((p.stdout, sys.stdout, None), (p.stderr, sys.stderr, held[i]))]
      for t in relays[i]:
        t.start()

  def join_relays(i: int):
    for t in relays.get(i, ()):
      t.join(timeout=5)

  def printed_error(i: int) -> bool:
    return bool(held[i]) if i else procs[0].returncode == ERROR_STATUS

  forwarded = []

  def forward(signum, _frame):
    forwarded.append(signum)
    for p in procs:
      if p.poll() is None:
        p.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)
  old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    failed = None
    while failed is None and any(p.poll() is None for p in procs):
      for i, p in enumerate(procs):
        if p.poll() not in (None, 0, 130, 143):   # 130, 143: stopped by a signal, with the others
          failed = i
          break
      time.sleep(0.2)
    if failed is None:   # all ended before one was seen failing (killed together, say): named all the same
      failed = next((i for i, p in enumerate(procs) if p.returncode not in (0, 130, 143)), None)
    if failed is not None and not forwarded:
      join_relays(failed)
      if printed_error(failed):   # the others' watchdogs stop them with its line within seconds
        _wait(procs, min(grace, 10.0))
      else:
        rc = procs[failed].returncode
        how = f'was killed by {signal.Signals(-rc).name}' if rc < 0 else f'exited with status {rc}'
        print(f'error: process {failed} of {processes} {how}; stopping the others (a relaunch of the same '
              'command resumes from the last checkpoint)', file=sys.stderr, flush=True)
      _stop(procs, grace)
    for p in procs:
      p.wait()
    for i in relays:
      join_relays(i)
    if procs[0].returncode != ERROR_STATUS and not forwarded:   # process 0 said nothing: theirs are the news
      shown = set()
      for i, lines in held.items():
        for line in lines:
          if line not in shown:
            shown.add(line)
            sys.stderr.write(f'[process {i}] {line}')
      sys.stderr.flush()
  finally:
    for s, handler in old.items():
      signal.signal(s, handler)
  codes = [p.returncode for p in procs]
  if failed is not None:
    rc = codes[failed]
    return 128 - rc if rc < 0 else rc   # as a shell reports a signal: 137 for SIGKILL
  return next((c for c in codes if c), 0)   # 143 or 130: stopped together by a signal


def _wait(procs, seconds: float):
  deadline = time.monotonic() + seconds
  while time.monotonic() < deadline and any(p.poll() is None for p in procs):
    time.sleep(0.1)


def _stop(procs, grace: float):
  for p in procs:
    if p.poll() is None:
      p.send_signal(QUIET_STOP)
  deadline = time.monotonic() + grace
  for p in procs:
    left = deadline - time.monotonic()
    try:
      p.wait(timeout=max(left, 0.1))
    except subprocess.TimeoutExpired:
      os.killpg(p.pid, signal.SIGKILL)   # stuck in a collective with the lost process
      p.wait()


def main(argv=None, prog='cil-jax launch') -> int:
  argv = sys.argv[1:] if argv is None else argv
  if '--' in argv:
    cut = argv.index('--')
    own, command = argv[:cut], argv[cut + 1:]
  else:
    own, command = argv, []
  p = argparse.ArgumentParser(prog=prog, description=__doc__.split('\n')[0],
                              usage='%(prog)s --processes N [options] -- train [train flags]')
  p.add_argument('--processes', type=int, required=True, help='how many JAX processes')
  p.add_argument('--cpu-devices', type=int, default=0, help='run on CPU with this many host devices per process '
                 '(testing multi-host on one machine)')
  p.add_argument('--gpus-per-process', type=int, default=0, help='give process i GPUs i*G .. i*G+G-1')
  p.add_argument('--grace', type=float, default=20.0, help='seconds the others get to stop after one fails')
  a = p.parse_args(own)
  try:
    return launch(command, a.processes, a.cpu_devices, a.gpus_per_process, a.grace)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
