"""Tables and plots from workdirs: a Table-1-style comparison of methods.

    python -m cil_jax.report runs/fmnist/* --out docs/results/fmnist

Each workdir holds config.json and results.json (written by a run). Runs are grouped by experiment:
the same config but for the seeds (config_base.result_fields without seed and scenario.seed; free
fields such as logging or eval batch size may differ), so a group's runs are the seeds of one
experiment. A group is labelled by its method (FT with memory.size=0 is "ft (no memory)", a method's
non-default form or variant is appended: "lucir-facil", "lwf-bsr"); groups that share a method label
also name the fields in which they differ, e.g. "ssil (train.epochs=1)" (three at most, while that
keeps the labels apart). Each group gives the mean ± sample standard deviation (ddof=1, shown for 2
runs or more) over its seeds of: average incremental top-1 and top-5 (task 0 included), last-task
top-1 and forgetting. Writes
<out>.md, <out>.csv (one row per run, then the mean and std of each group) and <out>.png (top-1 on
all seen classes after each task, mean over seeds; groups may have different numbers of tasks), and
prints the Markdown. Skipped paths (missing, given twice, unfinished runs) are named on stderr.
"""
from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import sys

import numpy as np

from cil_jax import config_base
from cil_jax import workdir as workdir_lib
from cil_jax import methods as methods_lib

COLUMNS = (('average_incremental_top1', 'avg top-1'), ('average_incremental_top5', 'avg top-5'),
           ('last_top1', 'last top-1'), ('forgetting_top1', 'forgetting'))
# FACIL's / IIL-CLSF's numbers (metrics.py): per-task means, task-aware and task-agnostic
FACIL_COLUMNS = (('last_task_aware', 'last TAw'), ('last_task_agnostic', 'last TAg'),
                 ('average_task_aware', 'Ā TAw'), ('average_task_agnostic', 'Ā TAg'),
                 ('mean_forgetting_task_aware', 'F̄ TAw'), ('mean_forgetting_task_aware_clipped', 'F̄ TAw clipped'),
                 ('mean_forgetting_task_agnostic', 'F̄ TAg'), ('mean_forgetting_task_agnostic_clipped', 'F̄ TAg clipped'))
TABLES = {'ssil': COLUMNS, 'facil': FACIL_COLUMNS}


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


LABEL_FIELDS = 3   # differing fields a label names at most
# Seeds of one experiment: the fields that runs grouped together may differ in (besides FREE_FIELDS).
SEED_FIELDS = ('seed', 'scenario.seed')
_UNSET = object()   # a field a group's config.json does not have


def method_label(config: dict) -> str:
  name = config['method']['name']
  if name == 'ft' and int(config['memory']['size']) == 0:
    return 'ft (no memory)'
  for option in ('form', 'variant'):   # LUCIR's FACIL form, the rethinking-softmax variants: names of their own
    value, default = config['method'].get(option), methods_lib.OPTIONS.get(name, {}).get(option)
    if value is not None and value != default:
      name = f'{name}-{value}'
  return name


def experiment_fields(config: dict) -> dict:
  """The dotted fields that make runs one experiment: config_base.result_fields less the seeds."""
  return {k: v for k, v in config_base.result_fields(config).items() if k not in SEED_FIELDS}


def _canonical(value) -> str:
  return '\0unset' if value is _UNSET else json.dumps(value, sort_keys=True)


def _short(value) -> str:
  if value is _UNSET:
    return '–'
  return json.dumps(value, separators=(',', ':')) if isinstance(value, (list, dict)) else str(value)


def _as_json(value) -> str:
  return '–' if value is _UNSET else json.dumps(value, sort_keys=True)


def group_labels(fields: dict[str, dict], methods: dict[str, str]) -> dict[str, str]:
  """group key -> its label: the method label, plus (field=value, ...) for the fields whose values
  differ among the groups that share that method label (none when it is unique)."""
  sharing = collections.defaultdict(list)
  for key, label in methods.items():
    sharing[label].append(key)
  out = {}
  for label, keys in sharing.items():
    if len(keys) == 1:
      out[keys[0]] = label
      continue
    names = list(dict.fromkeys(name for k in keys for name in fields[k]))   # config order
    differ = [n for n in names if len({_canonical(fields[k].get(n, _UNSET)) for k in keys}) > 1]
    def named(k, shown, show=_short):
      more = f', +{len(differ) - len(shown)} more' if len(shown) < len(differ) else ''
      return f'{label} (' + ', '.join(f'{n}={show(fields[k].get(n, _UNSET))}' for n in shown) + more + ')'
    # the first fields that differ (each run's config.json has the rest) while the labels stay apart;
    # else all of them; else all of them as JSON (the string '1' and the number 1 print alike)
    for labels in ({k: named(k, differ[:LABEL_FIELDS]) for k in keys}, {k: named(k, differ) for k in keys},
                   {k: named(k, differ, _as_json) for k in keys}):
      if len(set(labels.values())) == len(keys):
        break
    out.update(labels)
  return out


def load_runs(workdirs: list[str]) -> tuple[list[dict], int]:
  """([{workdir, label, seed, results}] for every finished run, number of paths skipped). Each skipped
  path (missing, not a directory, given before, unfinished) is named on stderr with the reason."""
  runs, skipped, seen = [], 0, {}

  def skip(w, why):
    nonlocal skipped
    skipped += 1
    print(f'skipping {w}: {why}', file=sys.stderr)

  for w in workdirs:
    if not os.path.isdir(w):
      skip(w, 'not a directory' if os.path.exists(w) else 'no such directory')
      continue
    real = os.path.realpath(w)   # one workdir spelt two ways is still one run
    if real in seen:
      skip(w, f'same workdir as {seen[real]}')
      continue
    seen[real] = w
    cfg_path, res_path = os.path.join(w, 'config.json'), os.path.join(w, 'results.json')
    if not (os.path.exists(cfg_path) and os.path.exists(res_path)):
      skip(w, 'no config.json / results.json (not a finished run)')
      continue
    config, results = json.load(open(cfg_path)), json.load(open(res_path))
    expected = results.get('num_tasks')
    if expected is not None and results['tasks_done'] < expected:
      skip(w, f'{results["tasks_done"]}/{expected} tasks done')
      continue
    fields = experiment_fields(config)
    runs.append({'workdir': w, 'method': method_label(config), 'fields': fields, 'config': config,
                 'key': json.dumps(fields, sort_keys=True), 'seed': config.get('seed'), 'results': results})
  labels = group_labels({r['key']: r['fields'] for r in runs}, {r['key']: r['method'] for r in runs})
  for r in runs:
    r['label'] = labels[r['key']]
  return runs, skipped


def summarize(runs: list[dict], columns=COLUMNS) -> dict[str, dict]:
  """label -> {n, mean/std per column, mean top1_all curve}; std is the sample std over seeds (ddof=1)."""
  groups = collections.OrderedDict()
  for r in sorted(runs, key=lambda r: r['label']):
    groups.setdefault(r['label'], []).append(r)
  out = {}
  for label, group in groups.items():
    results = [r['results'] for r in group]
    row = {'n': len(results)}
    for key in dict.fromkeys([key for key, _ in columns] + ['average_incremental_top1']):  # + the plot's
      vals = np.array([r[key] for r in results if r.get(key) is not None], np.float64)
      std = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
      row[key] = (float(vals.mean()), std) if vals.size else (None, None)
    lengths = [len(r['top1_all']) for r in results]
    if len(set(lengths)) > 1:   # one config, different T: not seeds of one experiment (e.g. other code)
      raise SystemExit(f'error: the runs of {label!r} have different numbers of tasks: '
                       + ', '.join(f'{r["workdir"]} ({n})' for r, n in zip(group, lengths)))
    row['top1_all'] = np.mean(np.array([r['top1_all'] for r in results], np.float64), 0).tolist()
    out[label] = row
  return out


def markdown(table: dict[str, dict], columns=COLUMNS) -> str:
  head = '| method | runs | ' + ' | '.join(title for _, title in columns) + ' |'
  lines = [head, '|' + '---|' * (len(columns) + 2)]
  order = sorted(table, key=lambda k: -(table[k][columns[0][0]][0] or 0))
  for label in order:
    row = table[label]
    cells = []
    for key, _ in columns:
      mean, std = row[key]
      if mean is None:
        cells.append('–')
      else:  # a single run has no spread to show
        cells.append(f'{mean:.2f} ± {std:.2f}' if row['n'] > 1 else f'{mean:.2f}')
    name = label.replace('|', '\\|')   # a field value must not split the Markdown row
    lines.append(f'| {name} | {row["n"]} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def write_csv(runs: list[dict], table: dict[str, dict], path: str, columns=COLUMNS) -> None:
  with open(path, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['method', 'seed', 'workdir'] + [key for key, _ in columns])
    for r in runs:
      w.writerow([r['label'], r['seed'], r['workdir']] + [_cell(r['results'].get(key)) for key, _ in columns])
    for label, row in table.items():
      w.writerow([label, 'mean', ''] + [_cell(row[key][0]) for key, _ in columns])
      if row['n'] > 1:
        w.writerow([label, 'std', ''] + [_cell(row[key][1]) for key, _ in columns])


def _cell(value):
  """A CSV number to 4 decimals (58.96666666666666 -> 58.9667), anything else as it is."""
  return round(float(value), 4) if isinstance(value, (float, np.floating)) else value


def main(argv=None, prog='python -m cil_jax.report') -> str:
  p = argparse.ArgumentParser(prog=prog, description=__doc__.split('\n')[0])
  p.add_argument('workdirs', nargs='+')
  p.add_argument('--out', default=None, help='output path prefix for .md, .csv and .png (a folder: '
                                             'FOLDER/report.md, ...)')
  p.add_argument('--table', choices=('auto',) + tuple(TABLES), default='auto',
                 help="columns: 'ssil' (average incremental / last top-1 over all seen images, SS-IL's table), "
                      "'facil' (per-task means: task-aware and task-agnostic last accuracy, Ā, F̄); auto: facil "
                      "when every run uses FACIL's split (scenario.num_tasks > 0)")
  a = p.parse_args(argv)
  out = a.out
  if out and (out.endswith(os.sep) or os.path.isdir(out)):
    out = os.path.join(out, 'report')
  folder = out and os.path.dirname(os.path.abspath(out))
  problem = out and workdir_lib.folder_problem(folder)
  if problem:
    p.error(f'--out {a.out}: {folder} {problem}, so it cannot hold the report')
  unwritable = out and workdir_lib.cannot_write(folder, '--out')
  if unwritable:   # a read-only or unwritable folder: one line, before the runs are read
    print(f'error: --out {a.out}: {unwritable}', file=sys.stderr)
    raise SystemExit(2)
  runs, skipped = load_runs(a.workdirs)
  if not runs:
    raise SystemExit('no finished runs among the given workdirs')
  kind = a.table
  facil = sum(int(r['config'].get('scenario', {}).get('num_tasks', 0)) > 0 for r in runs)
  if kind == 'auto':
    kind = 'facil' if facil == len(runs) else 'ssil'
  if 0 < facil < len(runs):
    print(f'note: {_count(facil, "run")} use FACIL\'s split (scenario.num_tasks > 0) and {len(runs) - facil} the '
          'SS-IL split (scenario.base / step): one table, two protocols', file=sys.stderr)
  columns = TABLES[kind]
  table = summarize(runs, columns)
  text = markdown(table, columns)
  if out:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + '.md', 'w') as f:
      f.write(text + '\n')
    write_csv(runs, table, out + '.csv', columns)
    plot_accuracy({k: {'top1_all': v['top1_all'], 'average_incremental_top1': v['average_incremental_top1'][0]}
                   for k, v in table.items()}, out + '.png')
  print(text)
  if out:
    print(f'wrote {out}.md, {out}.csv and {out}.png', file=sys.stderr)
  print(f'{_count(len(runs), "run")} used in {_count(len(table), "group")}, {skipped} skipped', file=sys.stderr)
  return text


def _count(n: int, noun: str) -> str:
  return f'{n} {noun}' + ('' if n == 1 else 's')


if __name__ == '__main__':
  main()
