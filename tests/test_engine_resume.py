"""Killed inside a patience phase (validation, best-weight restores, an early stop) or inside a
warm-up (per-step, per-group lr; AdamW; a phase-start hook), a run resumes to the uninterrupted
run's results and final parameters, bit for bit. The method is tests/engine_worker.py's probe."""
import json
import os
import re
import signal
import subprocess
import sys

import pytest

from test_resume import _assert_same_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(kind, workdir, idx_dir, *args):
  cmd = [sys.executable, os.path.join(ROOT, 'tests', 'engine_worker.py'), kind, str(workdir), idx_dir,
         *map(str, args)]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def references(idx_dir, tmp_path_factory):
  out = {}
  for kind in ('patience', 'warmup'):
    workdir = tmp_path_factory.mktemp(f'{kind}_uninterrupted')
    r = _run(kind, workdir, idx_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    out[kind] = (workdir, r.stderr)
  return out


def test_the_probe_runs_exercise_what_they_claim(references):
  log = references['patience'][1]
  assert log.count('best weights restored') >= 3 and 'the schedule ends the phase early' in log
  assert 'validation loss' in log
  log = references['warmup'][1]
  assert 'lr 0.000143/0.001' in log and 'lr 0.001/0.001' in log   # the backbone warms up (1/7 of the lr at
  # step 1 of 7), the head does not


def _steps_run(log):
  """Global steps of a run, from its progress lines ('task 2/2 train ep 5/≤8 ... 7/12 loss')."""
  per_epoch = {}
  for task, epoch, n in re.findall(r'task (\d+)/\d+ train ep (\d+)/\S+ .*? \d+/(\d+) loss', log):
    per_epoch[task, epoch] = int(n)
  return sum(per_epoch.values())


# patience: 6 steps per epoch in task 1, 12 in task 2; where patience stops a phase depends on the
# CPU's rounding, so the kill step is counted from the reference run: 4 steps before its end, inside
# the epoch whose end stops task 2's phase, after restores (the checkpoint 2 steps before the kill
# holds best weights and a schedule state that has seen decays).
# warmup: 7 steps per epoch in task 1, 13 in task 2. Step 22 with a checkpoint every 4 steps: task
# 2's first step, inside its warm-up epoch, so the resume starts that task again (its phase-start
# hook runs again) from the checkpoint after task 1.
@pytest.mark.parametrize('kind,kill_at,every,sig', [('patience', -4, 2, signal.SIGKILL),
                                                    ('warmup', 22, 4, signal.SIGKILL)])
def test_killed_probe_resumes_to_identical_results(references, idx_dir, tmp_path, kind, kill_at, every, sig):
  if kill_at < 0:   # counted from the reference run's end
    total = _steps_run(references[kind][1])
    assert total > 6 * 8, 'the reference run shows its progress lines'
    kill_at += total
  r = _run(kind, tmp_path, idx_dir, kill_at, every)
  assert r.returncode == -sig, r.stderr[-3000:]
  assert not os.path.exists(tmp_path / 'results.json') or \
      json.load(open(tmp_path / 'results.json'))['tasks_done'] < 2
  r = _run(kind, tmp_path, idx_dir)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'resumed from checkpoint' in r.stderr
  _assert_same_run(references[kind][0], tmp_path)
