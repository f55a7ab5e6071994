"""Tables and plots from workdirs: a Table-1-style comparison of methods.

    python -m cil_jax.report runs/fmnist/* --out docs/results/fmnist

Each workdir holds config.json and results.json (written by a run). Runs are grouped by method
(FT with memory.size=0 is reported as "ft (no memory)"); each group gives the mean ± sample
standard deviation (ddof=1, shown for 2 runs or more) over its runs (seeds) of: average incremental
top-1 and top-5 (task 0 included), last-task top-1 and forgetting. Writes <out>.md, <out>.csv (one
row per run plus one per group) and <out>.png (top-1 on all seen classes after each task, mean over
runs), and prints the Markdown.
"""
from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import sys

import numpy as np

COLUMNS = (('average_incremental_top1', 'avg top-1'), ('average_incremental_top5', 'avg top-5'),
           ('last_top1', 'last top-1'), ('forgetting_top1', 'forgetting'))


def plot_accuracy(results: dict[str, dict], path: str) -> None:
  """Top-1 on all seen classes after each task, one line per entry; written as a PNG."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=100)
  for name, summary in results.items():
    acc = summary['top1_all']
    ax.plot(range(1, len(acc) + 1), acc, marker='o',
            label=f'{name} (avg {summary["average_incremental_top1"]:.1f})')
  ax.set_xticks(range(1, 1 + max(len(s['top1_all']) for s in results.values())))
  ax.set_xlabel('task')
  ax.set_ylabel('top-1 on all seen classes (%)')
  ax.set_ylim(0, 100)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  tmp = path + '.tmp.png'
  fig.savefig(tmp)
  plt.close(fig)
  os.replace(tmp, path)


def method_label(config: dict) -> str:
  name = config['method']['name']
  if name == 'ft' and int(config['memory']['size']) == 0:
    return 'ft (no memory)'
  return name


def load_runs(workdirs: list[str]) -> list[dict]:
  """[{workdir, label, seed, results}] for every finished run; unfinished ones are reported and skipped."""
  runs = []
  for w in workdirs:
    if not os.path.isdir(w):
      continue
    cfg_path, res_path = os.path.join(w, 'config.json'), os.path.join(w, 'results.json')
    if not (os.path.exists(cfg_path) and os.path.exists(res_path)):
      print(f'skipping {w}: no config.json / results.json (not a finished run)', file=sys.stderr)
      continue
    config, results = json.load(open(cfg_path)), json.load(open(res_path))
    expected = results.get('num_tasks')
    if expected is not None and results['tasks_done'] < expected:
      print(f'skipping {w}: {results["tasks_done"]}/{expected} tasks done', file=sys.stderr)
      continue
    runs.append({'workdir': w, 'label': method_label(config), 'seed': config['seed'], 'results': results})
  return runs


def summarize(runs: list[dict]) -> dict[str, dict]:
  """label -> {n, mean/std per column, mean top1_all curve}; std is the sample std over seeds (ddof=1)."""
  groups = collections.OrderedDict()
  for r in sorted(runs, key=lambda r: r['label']):
    groups.setdefault(r['label'], []).append(r['results'])
  out = {}
  for label, results in groups.items():
    row = {'n': len(results)}
    for key, _ in COLUMNS:
      vals = np.array([r[key] for r in results if r[key] is not None], np.float64)
      std = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
      row[key] = (float(vals.mean()), std) if vals.size else (None, None)
    curves = np.array([r['top1_all'] for r in results], np.float64)
    row['top1_all'] = curves.mean(0).tolist()
    out[label] = row
  return out


def markdown(table: dict[str, dict]) -> str:
  head = '| method | runs | ' + ' | '.join(title for _, title in COLUMNS) + ' |'
  lines = [head, '|' + '---|' * (len(COLUMNS) + 2)]
  order = sorted(table, key=lambda k: -(table[k]['average_incremental_top1'][0] or 0))
  for label in order:
    row = table[label]
    cells = []
    for key, _ in COLUMNS:
      mean, std = row[key]
      if mean is None:
        cells.append('–')
      else:  # a single run has no spread to show
        cells.append(f'{mean:.2f} ± {std:.2f}' if row['n'] > 1 else f'{mean:.2f}')
    lines.append(f'| {label} | {row["n"]} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def write_csv(runs: list[dict], table: dict[str, dict], path: str) -> None:
  with open(path, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['method', 'seed', 'workdir'] + [key for key, _ in COLUMNS])
    for r in runs:
      w.writerow([r['label'], r['seed'], r['workdir']] + [r['results'][key] for key, _ in COLUMNS])
    for label, row in table.items():
      w.writerow([label, 'mean', ''] + [row[key][0] for key, _ in COLUMNS])
      if row['n'] > 1:
        w.writerow([label, 'std', ''] + [row[key][1] for key, _ in COLUMNS])


def main(argv=None) -> str:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('workdirs', nargs='+')
  p.add_argument('--out', default=None, help='output path prefix for .md, .csv and .png')
  a = p.parse_args(argv)
  runs = load_runs(a.workdirs)
  if not runs:
    raise SystemExit('no finished runs among the given workdirs')
  table = summarize(runs)
  text = markdown(table)
  if a.out:
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out + '.md', 'w') as f:
      f.write(text + '\n')
    write_csv(runs, table, a.out + '.csv')
    plot_accuracy({k: {'top1_all': v['top1_all'], 'average_incremental_top1': v['average_incremental_top1'][0]}
                   for k, v in table.items()}, a.out + '.png')
  print(text)
  return text


if __name__ == '__main__':
  main()
