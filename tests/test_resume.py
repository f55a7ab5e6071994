"""A run killed at any step resumes from its workdir and ends exactly like an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(workdir, idx_dir, *extra, config='configs/default.py:smoke'):
  cmd = [sys.executable, 'main.py', '--config', config, f'--config.dataset.root={idx_dir}',
         '--config.checkpoint.every_steps=2', '--workdir', str(workdir), *extra]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _final_params(workdir):
  """The last checkpoint's state, on this process's first device whatever devices and processes
  saved it."""
  import jax
  import orbax.checkpoint as ocp
  mngr = ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'), item_names=('arrays', 'meta'),
                               item_handlers={'arrays': ocp.StandardCheckpointHandler(),
                                              'meta': ocp.JsonCheckpointHandler()})
  step = mngr.latest_step()
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        mngr.item_metadata(step)['arrays'])
  arrays = mngr.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(target)))['arrays']
  return [np.asarray(x) for x in jax.tree.leaves(arrays['state'])]


@pytest.fixture(scope='module')
def reference(idx_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('uninterrupted')
  r = _run(workdir, idx_dir)
  assert r.returncode == 0, r.stderr[-3000:]
  return workdir


# Global steps: 3 per task in this config. Step 5 is mid-task 1 between two checkpoints (every 2
# steps); step 9 ends task 2's training, before its memory update and evaluation.
@pytest.mark.parametrize('kill_at,sig,code', [(5, 'KILL', -signal.SIGKILL), (9, 'KILL', -signal.SIGKILL),
                                              (7, 'TERM', 143)])
def test_killed_run_resumes_to_identical_results(reference, idx_dir, tmp_path, kill_at, sig, code):
  r = _run(tmp_path, idx_dir, f'--config.debug.kill_at_step={kill_at}', f'--config.debug.kill_signal={sig}')
  assert r.returncode == code, r.stderr[-3000:]
  assert not os.path.exists(tmp_path / 'results.json') or \
      json.load(open(tmp_path / 'results.json'))['tasks_done'] < 5
  r = _run(tmp_path, idx_dir)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'resumed from checkpoint' in r.stderr
  _assert_same_run(reference, tmp_path)


CHUNKED = ('--config.train.steps_per_call=2', '--config.checkpoint.every_steps=0')


@pytest.fixture(scope='module')
def reference_chunked(idx_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('uninterrupted_chunked')
  r = _run(workdir, idx_dir, *CHUNKED)
  assert r.returncode == 0, r.stderr[-3000:]
  return workdir


# 3 steps per task, 2 per call: each task is a chunk of 2 steps and a single step. Killed after
# global step 5 (the chunk of task 2's steps 4-5), the run resumes from task 1's end; stopped by
# SIGTERM there, it saves after the chunk and resumes at task 2's single step.
@pytest.mark.parametrize('kill_at,sig,code', [(5, 'KILL', -signal.SIGKILL), (4, 'TERM', 143)])
def test_chunked_run_killed_resumes_to_identical_results(reference_chunked, idx_dir, tmp_path, kill_at, sig, code):
  r = _run(tmp_path, idx_dir, *CHUNKED, f'--config.debug.kill_at_step={kill_at}', f'--config.debug.kill_signal={sig}')
  assert r.returncode == code, r.stderr[-3000:]
  r = _run(tmp_path, idx_dir, *CHUNKED)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'resumed from checkpoint' in r.stderr
  _assert_same_run(reference_chunked, tmp_path)


def _assert_same_run(reference, tmp_path):
  want = json.load(open(reference / 'results.json'))
  got = json.load(open(tmp_path / 'results.json'))
  for key in ('top1', 'top5', 'task_aware', 'top1_all', 'average_incremental_top1', 'forgetting_top1'):
    assert got[key] == want[key], key
  for a, b in zip(_final_params(reference), _final_params(tmp_path)):
    np.testing.assert_array_equal(a, b)  # bit for bit on CPU


BIC = ('configs/bic_fmnist.py:smoke', '--config.memory.size=200')


def test_bic_killed_inside_the_bias_correction_stage_resumes_exactly(idx_dir, tmp_path):
  """Global steps 1-3: task 0; 4-7: task 1 training; 8-9: its bias-correction stage (own optimizer,
  frozen backbone). Killed after step 9, the run resumes from step 8's checkpoint inside that stage."""
  ref = tmp_path / 'ref'
  r = _run(ref, idx_dir, BIC[1], config=BIC[0])
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'bias_correction' in r.stderr
  killed = tmp_path / 'killed'
  r = _run(killed, idx_dir, BIC[1], '--config.debug.kill_at_step=9', config=BIC[0])
  assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
  r = _run(killed, idx_dir, BIC[1], config=BIC[0])
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'resumed from checkpoint' in r.stderr and 'task 2/5, bias_correction epoch' in r.stderr
  _assert_same_run(ref, killed)


def test_resume_from_the_checkpoint_after_an_own_optimizer_stage(idx_dir, tmp_path):
  """Resuming from the checkpoint saved when BiC's bias stage (own optimizer) has just ended, before
  the task's evaluation, gives the uninterrupted run's results."""
  import shutil
  from cil_jax.engine import train
  from cil_jax.engine.checkpoint import Checkpointer
  from helpers import load_config
  # 4 tasks of 3, 3, 3 and 1 classes
  c = load_config('bic_fmnist.py', 'smoke', **{'dataset.root': idx_dir, 'checkpoint.keep': 100,
                                               'scenario.base': 3, 'scenario.step': 3})
  full = tmp_path / 'full'
  want = train.train_and_evaluate(c, str(full))
  ckpt = Checkpointer(str(full / 'checkpoints'))
  steps = sorted(ckpt.manager.all_steps())
  after_stage = [s for s in steps if ckpt.restore_meta(s)['cursor'] == {'task': 1, 'phase': 2, 'epoch': 0, 'step': 0}]
  assert after_stage, 'no checkpoint between the bias stage and the evaluation'
  ckpt.close()
  cut = tmp_path / 'cut'
  shutil.copytree(full, cut)
  for s in steps:
    if s > after_stage[0]:
      shutil.rmtree(cut / 'checkpoints' / str(s))
  (cut / 'results.json').unlink()  # the cut run has not finished (else it would only print its results)
  got = train.train_and_evaluate(c, str(cut))
  assert got['top1'] == want['top1'] and got['average_incremental_top1'] == want['average_incremental_top1']
