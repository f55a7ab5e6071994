"""Every IIL-CLSF loss as a run on FACIL's protocol (Fashion-MNIST smoke, 2 tasks), and a LwF-BSR run
killed inside a patience phase resuming to the uninterrupted run's results, bit for bit."""
import json
import os
import signal

import pytest

from cil_jax.engine import train
from cil_jax.methods import lucir, lwf
from helpers import check_summary, load_config
from test_resume import _assert_same_run, _run

# Every variant's loss is checked against numpy in tests/test_facil.py; as runs: the variants whose
# wiring differs (per-head KD, BCE with the prediction term, LUCIR's feature split), and LwF-BSR below.
RUNS = [('lwf_fmnist.py', '', v) for v in ('s', 'br2')] + [('lucir_facil.py', 'fmnist,', v) for v in ('lucir', 'bsr')]
assert set(v for _, _, v in RUNS) | {'bsr'} <= set(lwf.CHOICES['variant']) | set(lucir.CHOICES['variant'])


@pytest.mark.parametrize('config,dataset,variant', RUNS)
def test_every_variant_runs_on_facils_protocol(idx_dir, tmp_path, config, dataset, variant):
  c = load_config(config, f'{dataset}t2,smoke,variant={variant}', **{'dataset.root': idx_dir})
  assert (c.scenario.num_tasks, c.scenario.validation, c.train.schedule) == (2, 0.1, 'patience')
  summary = train.train_and_evaluate(c, str(tmp_path))
  check_summary(summary, 2)
  assert len(summary['task_aware'][1]) == 2
  for key in ('average_task_aware', 'average_task_agnostic', 'last_task_aware', 'last_task_agnostic',
              'mean_forgetting_task_aware', 'mean_forgetting_task_aware_clipped'):
    assert summary[key] is not None
  assert summary['last_task_aware'] >= summary['last_task_agnostic']   # the task id can only help


BSR = ('configs/lwf_fmnist.py:t2,smoke,variant=bsr',)


def test_lwf_bsr_killed_inside_a_patience_phase_resumes_exactly(idx_dir, tmp_path):
  """11 steps per epoch (180 images, batch 16), at most 3 epochs per task with patience 1. Killed at
  global step 40 (task 2, its second epoch), the run resumes from step 38's checkpoint."""
  ref = tmp_path / 'ref'
  r = _run(ref, idx_dir, config=BSR[0])
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'validation loss' in r.stderr
  killed = tmp_path / 'killed'
  r = _run(killed, idx_dir, '--config.debug.kill_at_step=40', config=BSR[0])
  assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
  assert not os.path.exists(killed / 'results.json') or json.load(open(killed / 'results.json'))['tasks_done'] < 2
  r = _run(killed, idx_dir, config=BSR[0])
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'resumed from checkpoint' in r.stderr and 'task 2/2, train epoch' in r.stderr
  _assert_same_run(ref, killed)
  want, got = (json.load(open(d / 'results.json')) for d in (ref, killed))
  for key in ('average_task_aware', 'mean_forgetting_task_aware', 'last_task_agnostic'):
    assert got[key] == want[key]
