"""The report command: metrics from rows, grouping by method over seeds, Markdown / CSV / PNG."""
import csv
import json

import numpy as np

from cil_jax import metrics, report


def _row(task, accs):
  return {'top1': accs, 'top5': [min(100, a + 10) for a in accs], 'task_aware': accs, 'top1_all': float(np.mean(accs)),
          'top5_all': float(np.mean(accs)) + 5, 'old': None if task == 0 else float(np.mean(accs[:-1])),
          'new': accs[-1]}


def _workdir(tmp_path, name, method, seed, rows, memory=100, num_tasks=3):
  d = tmp_path / name
  d.mkdir()
  (d / 'config.json').write_text(json.dumps({'method': {'name': method}, 'memory': {'size': memory}, 'seed': seed}))
  (d / 'results.json').write_text(json.dumps(metrics.summarize(rows, num_tasks)))
  return str(d)


def test_summary_numbers_by_hand():
  rows = [_row(0, [90.0]), _row(1, [60.0, 80.0]), _row(2, [50.0, 70.0, 85.0])]
  s = metrics.summarize(rows, 3)
  np.testing.assert_allclose(s['average_incremental_top1'], (90 + 70 + (50 + 70 + 85) / 3) / 3)
  # forgetting after the last task: task 0 dropped 90 -> 50, task 1 80 -> 70
  np.testing.assert_allclose(s['forgetting_top1'], ((90 - 50) + (80 - 70)) / 2)
  assert s['last_top1'] == (50 + 70 + 85) / 3 and s['num_tasks'] == 3


def test_report_groups_seeds_and_writes_files(tmp_path):
  a = [_row(0, [90.0]), _row(1, [60.0, 80.0]), _row(2, [50.0, 70.0, 85.0])]
  b = [_row(0, [80.0]), _row(1, [50.0, 70.0]), _row(2, [40.0, 60.0, 75.0])]
  dirs = [_workdir(tmp_path, 'ssil0', 'ssil', 0, a), _workdir(tmp_path, 'ssil1', 'ssil', 1, b),
          _workdir(tmp_path, 'ft0', 'ft', 0, b, memory=0),
          _workdir(tmp_path, 'unfinished', 'bic', 0, a[:2])]
  out = str(tmp_path / 'out' / 'table')
  text = report.main(dirs + ['--out', out])
  avg = [metrics.summarize(r, 3)['average_incremental_top1'] for r in (a, b)]
  assert f'| ssil | 2 | {np.mean(avg):.2f} ± {np.std(avg, ddof=1):.2f} |' in text
  ft = metrics.summarize(b, 3)
  assert f'| ft (no memory) | 1 | {ft["average_incremental_top1"]:.2f} | ' in text   # one run: no ± shown
  assert 'bic' not in text                                           # the unfinished run is skipped
  assert text.index('| ssil') < text.index('| ft (no memory)')       # sorted by average top-1
  rows = list(csv.reader(open(out + '.csv')))
  assert len(rows) == 1 + 3 + 2 + 1   # 3 runs, mean and std for ssil, mean only for ft
  assert (tmp_path / 'out' / 'table.png').stat().st_size > 1000
  assert open(out + '.md').read().strip() == text
