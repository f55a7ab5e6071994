"""Accuracy matrices and the summary numbers of class-incremental learning (numpy, host side).

After task k the model is evaluated on the test images of all seen classes:
  top1[k][j], top5[k][j]   task-agnostic: argmax/top-5 over all seen classes, on task j's images
  task_aware[k][j]         argmax restricted to task j's own classes (a secondary diagnostic)
  top1_all[k], top5_all[k] on all seen test images together (the SS-IL table's per-task number)
  average incremental accuracy = mean_k top1_all[k], task 0 included (the SS-IL table)
  forgetting               mean over j < last of (max_{l<last} top1[l][j] - top1[last][j])
  old / new                accuracy on old-class and new-class test images after each task
FACIL's numbers (the IIL-CLSF tables), for both matrices (task_aware, and top1 = task-agnostic):
  average_*                Ā: mean of the lower triangle (k >= j), per-task accuracies unweighted
  mean_forgetting_*        F̄: mean over all j < k of max_{l<k} acc[l][j] - acc[k][j] (may be negative);
                           *_clipped: the same with negative drops counted 0 (the reference's sort trick)
  last_*                   mean over tasks of the last row (FACIL's avg_accs after the last task)
"""
from __future__ import annotations

import numpy as np


def row_from_counts(counts: np.ndarray, task: int) -> dict:
  """Accuracies after `task` from counts [tasks, 4] (top-1 hits, top-5 hits, task-aware hits,
  samples) per task of the sample's label, as the evaluation step accumulates them."""
  counts = np.asarray(counts, np.int64)[:task + 1]
  pct = lambda hits, n: float(100.0 * (hits / n)) if n else None  # noqa: E731  (= 100 * mean, as before)
  row = {'top1': [pct(c[0], c[3]) for c in counts], 'top5': [pct(c[1], c[3]) for c in counts],
         'task_aware': [pct(c[2], c[3]) for c in counts]}
  total = counts.sum(0)
  row['top1_all'] = pct(total[0], total[3])
  row['top5_all'] = pct(total[1], total[3])
  old = counts[:task].sum(0)
  row['old'] = pct(old[0], old[3]) if task > 0 else None
  row['new'] = pct(counts[task][0], counts[task][3])
  return row


def forgetting(matrix: list[list[float]]) -> float | None:
  """Mean drop from the best earlier accuracy of each old task to its accuracy after the last task."""
  last = len(matrix) - 1
  if last < 1:
    return None
  drops = [max(matrix[l][j] for l in range(j, last)) - matrix[last][j] for j in range(last)]
  return float(np.mean(drops))


def lower_triangle_mean(matrix: list[list[float]]) -> float | None:
  """Ā: the mean of acc[k][j] over k >= j (row k = after task k, one entry per task seen)."""
  values = [v for row in matrix for v in row]
  return float(np.mean(values)) if values else None


def mean_forgetting(matrix: list[list[float]]) -> tuple[float | None, float | None]:
  """F̄ over every row: the mean over all j < k of max_{l<k} acc[l][j] - acc[k][j] (FACIL's forg
  matrices), honest and with negative drops counted 0. The IIL-CLSF scripts average the largest
  n(n-1)/2 entries of the n x n forgetting matrix, zeros included: that is the clipped mean."""
  drops = [max(matrix[l][j] for l in range(j, k)) - matrix[k][j] for k in range(1, len(matrix)) for j in range(k)]
  if not drops:
    return None, None
  return float(np.mean(drops)), float(np.mean(np.maximum(drops, 0.0)))


def summarize(rows: list[dict], num_tasks: int | None = None) -> dict:
  """The results file: matrices (row k = after task k) and the summary numbers."""
  out = {key: [r[key] for r in rows] for key in ('top1', 'top5', 'task_aware', 'top1_all', 'top5_all',
                                                 'old', 'new')}
  out['average_incremental_top1'] = float(np.mean(out['top1_all'])) if rows else None
  out['average_incremental_top5'] = float(np.mean(out['top5_all'])) if rows else None
  out['last_top1'] = out['top1_all'][-1] if rows else None
  out['forgetting_top1'] = forgetting(out['top1'])
  for name, key in (('task_aware', 'task_aware'), ('task_agnostic', 'top1')):
    out[f'average_{name}'] = lower_triangle_mean(out[key])
    out[f'mean_forgetting_{name}'], out[f'mean_forgetting_{name}_clipped'] = mean_forgetting(out[key])
    out[f'last_{name}'] = float(np.mean(out[key][-1])) if rows else None
  out['tasks_done'] = len(rows)
  out['num_tasks'] = num_tasks
  if rows and 'wall_time_s' in rows[-1]:   # rows of runs before it have no times
    ends = [r['wall_time_s'] for r in rows]
    out['wall_time'] = {'total_s': ends[-1], 'per_task_s': list(np.diff([0.0] + ends).tolist()),
                        'sessions': rows[-1]['sessions']}
  return out


def _duration(seconds: float) -> str:
  hours, rest = divmod(int(round(seconds)), 3600)
  minutes, seconds = divmod(rest, 60)
  return (f'{hours} h {minutes} min' if hours else f'{minutes} min {seconds} s' if minutes else f'{seconds} s')


def format_table(summary: dict) -> str:
  """A plain-text table: one line per task (counted from 1, as the progress output), then the averages."""
  lines = ['task |  top-1 |  top-5 |   old  |   new  | per-task top-1',
           '-----+--------+--------+--------+--------+---------------']
  fmt = lambda v: '   -  ' if v is None else f'{v:6.2f}'  # noqa: E731
  for k in range(summary['tasks_done']):
    per = ' '.join(f'{v:5.1f}' for v in summary['top1'][k])
    lines.append(f'{k + 1:4d} | {fmt(summary["top1_all"][k])} | {fmt(summary["top5_all"][k])} | '
                 f'{fmt(summary["old"][k])} | {fmt(summary["new"][k])} | {per}')
  lines.append(f'average incremental accuracy (first task included): top-1 {summary["average_incremental_top1"]:.2f}'
               f'  top-5 {summary["average_incremental_top5"]:.2f}')
  if summary['forgetting_top1'] is not None:
    lines.append(f'forgetting (top-1): {summary["forgetting_top1"]:.2f}')
  if summary.get('average_task_aware') is not None:   # two lines of at most 80 columns
    g = lambda key: f'{summary[key]:.2f}'   # noqa: E731
    text = (f'  last {g("last_task_aware")} / {g("last_task_agnostic")}  Ā {g("average_task_aware")} / '
            f'{g("average_task_agnostic")}')
    if summary.get('mean_forgetting_task_aware') is not None:
      text += (f'  F̄ {g("mean_forgetting_task_aware")} / {g("mean_forgetting_task_agnostic")} (clipped '
               f'{g("mean_forgetting_task_aware_clipped")} / {g("mean_forgetting_task_agnostic_clipped")})')
    lines += ['per-task means (FACIL), task-aware / task-agnostic:', text]
  times = []   # this session's (a run's result) and the whole run's (results.json), where known
  if summary.get('wall_time_s') is not None:
    times.append(f'{_duration(summary["wall_time_s"])} this session')
  total = summary.get('wall_time')
  if total is not None:
    times.append(f'{_duration(total["total_s"])} in all ({total["sessions"]} session'
                 f'{"s" if total["sessions"] > 1 else ""})')
  if times:
    lines.append('wall time ' + ', '.join(times))
  return '\n'.join(lines)
