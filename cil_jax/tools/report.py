"""Tables and plots from workdirs: a Table-1-style comparison of methods.

    cil-jax report runs/fmnist/* --out docs/results/fmnist

Each workdir holds config.json and results.json (written by a run). Runs are grouped by experiment:
the same config but for the seeds (config_base.result_fields without seed and scenario.seed; free
fields such as logging or eval batch size may differ), so a group's runs are the seeds of one
experiment; a second run of one seed (the same result fields) is a repeat, skipped, so that each seed
counts once. A group is labelled by its method (FT with memory.size=0 is "ft (no memory)", a method's
non-default form or variant is appended: "lucir-facil", "lwf-bsr"); groups that share a method label
also name the fewest fields that keep them apart, e.g. "ssil (train.epochs=1)" (the smallest set up to
three fields, the first in config order; beyond three a greedy one), and "+N more" for the other fields
in which they differ. Each group gives the mean ± sample standard deviation (ddof=1, shown for 2 runs or
more) over its seeds of: average incremental top-1 and top-5 (task 0 included), last-task top-1 and
forgetting. Writes <out>.md, <out>.csv (one row per run, then the mean and std of each group) and
<out>.png (top-1 on all seen classes after each task, mean over seeds, one line per row in the table's
order, the legend right of the axes; groups may have different numbers of tasks; --x classes puts the
classes learned on the x-axis), and prints the Markdown. Skipped paths (missing, given twice, unfinished
runs, repeats) are named on stderr.
"""
from __future__ import annotations

import argparse
import collections
import csv
import itertools
import json
import os
import sys

import numpy as np

from cil_jax import config_base
from cil_jax import errors
from cil_jax.engine import workdir as workdir_lib
from cil_jax import methods as methods_lib
from cil_jax.results import plots

COLUMNS = (('average_incremental_top1', 'avg top-1'), ('average_incremental_top5', 'avg top-5'),
           ('last_top1', 'last top-1'), ('forgetting_top1', 'forgetting'))
# FACIL's / IIL-CLSF's numbers (metrics.py): per-task means, task-aware and task-agnostic
FACIL_COLUMNS = (('last_task_aware', 'last TAw'), ('last_task_agnostic', 'last TAg'),
                 ('average_task_aware', 'Ā TAw'), ('average_task_agnostic', 'Ā TAg'),
                 ('mean_forgetting_task_aware', 'F̄ TAw'), ('mean_forgetting_task_aware_clipped', 'F̄ TAw clipped'),
                 ('mean_forgetting_task_agnostic', 'F̄ TAg'), ('mean_forgetting_task_agnostic_clipped', 'F̄ TAg clipped'))
TABLES = {'ssil': COLUMNS, 'facil': FACIL_COLUMNS}


LABEL_FIELDS = 3   # labels name the fewest fields: an exact search up to this many, then a greedy one
# Seeds of one experiment: the fields that runs grouped together may differ in (besides FREE_FIELDS).
SEED_FIELDS = ('seed', 'scenario.seed')
_UNSET = object()   # a field a group's config.json does not have


def method_label(config: dict) -> str:
  name = config['method']['name']
  if name == 'ft' and int(config['memory']['size']) == 0:
    return 'ft (no memory)'
  defaults = methods_lib.declared(name).options if name in methods_lib.names() else {}
  for option in ('form', 'variant'):   # LUCIR's FACIL form, the rethinking-softmax variants: names of their own
    value, default = config['method'].get(option), defaults.get(option)
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


def fewest_fields(keys: list, names: list[str], shown) -> list[str] | None:
  """The fewest of `names` whose shown values (shown(key, name): a string) keep all keys apart: the first
  set in config order of each size up to LABEL_FIELDS, else a greedy one (the field that leaves the most
  keys apart first, ties in config order; fields it turns out not to need dropped). None: not even all."""
  column = {n: [shown(k, n) for k in keys] for n in names}

  def distinct(chosen):
    return len(set(zip(*(column[n] for n in chosen)))) if chosen else 1

  def apart(chosen):
    return distinct(chosen) == len(keys)
  if not apart(names):
    return None
  for size in range(1, min(LABEL_FIELDS, len(names)) + 1):
    for chosen in itertools.combinations(names, size):
      if apart(chosen):
        return list(chosen)
  chosen = []
  while not apart(chosen):   # max() keeps the first of equals: config order
    chosen.append(max((n for n in names if n not in chosen), key=lambda n: distinct(chosen + [n])))
  for n in reversed(chosen[:-1]):
    if apart([m for m in chosen if m != n]):
      chosen.remove(n)
  return sorted(chosen, key=names.index)


def group_labels(fields: dict[str, dict], methods: dict[str, str]) -> dict[str, str]:
  """group key -> its label: the method label, plus (field=value, ...) for the fewest fields whose values
  keep apart the groups that share that method label (none when it is unique), '+N more' for the
  other fields that differ among them (each run's config.json has them)."""
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
    # values as printed; as JSON where that is what keeps them apart (the string '1' and the number 1)
    for show in (_short, _as_json):
      shown = fewest_fields(keys, differ, lambda k, n: show(fields[k].get(n, _UNSET)))
      if shown is not None:
        break
    more = f', +{len(differ) - len(shown)} more' if len(shown) < len(differ) else ''
    for k in keys:
      out[k] = f'{label} (' + ', '.join(f'{n}={show(fields[k].get(n, _UNSET))}' for n in shown) + more + ')'
  return out


def _read_json(path: str):
  with open(path) as f:   # closed at once: no ResourceWarning over many workdirs
    return json.load(f)


def load_runs(workdirs: list[str]) -> tuple[list[dict], int]:
  """([{workdir, label, seed, results}] for every finished run, number of paths skipped). Each skipped
  path (missing, not a directory, given before, unfinished, a repeat: the same experiment and seeds as
  an earlier path, which alone counts) is named on stderr with the reason."""
  runs, skipped, seen, first = [], 0, {}, {}

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
    config, results = _read_json(cfg_path), _read_json(res_path)
    expected = results.get('num_tasks')
    if expected is not None and results['tasks_done'] < expected:
      skip(w, f'{results["tasks_done"]}/{expected} tasks done')
      continue
    # a seed counts once: two runs of it are not two samples of the experiment
    same = first.setdefault(json.dumps(config_base.result_fields(config), sort_keys=True), w)
    if same is not w:
      skip(w, f'a repeat of {same} (the same experiment and seed {config.get("seed")}), counted once')
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


def seen_classes(run: dict) -> list[int]:
  """The number of classes seen after each task of a run: its split over the classes of the data it read
  (dataset.json), else of the full dataset (data.EXPECTED); a one-line error where neither is known."""
  from cil_jax.tools import data_check as data
  from cil_jax.input_pipeline import scenario
  from cil_jax.input_pipeline.base import DataError
  import ml_collections
  config, w = run['config'], run['workdir']
  try:
    classes = int(_read_json(os.path.join(w, workdir_lib.DATASET))['classes'])
  except (OSError, ValueError, KeyError, TypeError):   # none (an older run) or unreadable: the dataset's own
    try:
      classes = data.expected_counts(ml_collections.ConfigDict(config.get('dataset', {})))[0]
    except (AttributeError, DataError):
      classes = None
  if not classes:
    raise SystemExit(f'error: --x classes: the number of classes of {w} is unknown (no dataset.json, and '
                     f'dataset.name={config.get("dataset", {}).get("name")} has no fixed number); use --x tasks')
  split = config_base.base_config().scenario.to_dict() | config.get('scenario', {})
  try:
    tasks = scenario.make_tasks(classes, ml_collections.ConfigDict(split))
  except scenario.ScenarioError as e:
    raise SystemExit(f'error: --x classes: {w}: {e}; use --x tasks')
  done = len(run['results']['top1_all'])
  if tasks.num_tasks != done:   # e.g. a config.json edited after the run
    raise SystemExit(f'error: --x classes: {w} has {done} tasks, but its config splits {classes} classes into '
                     f'{tasks.num_tasks}; use --x tasks')
  return [tasks.end(t) for t in range(done)]


def table_order(table: dict[str, dict], columns=COLUMNS) -> list[str]:
  """The labels best first (the first column's mean): the rows of the Markdown, the legend of the plot."""
  return sorted(table, key=lambda k: -(table[k][columns[0][0]][0] or 0))


def markdown(table: dict[str, dict], columns=COLUMNS) -> str:
  head = '| method | runs | ' + ' | '.join(title for _, title in columns) + ' |'
  lines = [head, '|' + '---|' * (len(columns) + 2)]
  for label in table_order(table, columns):
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


def main(argv=None, prog='cil-jax report') -> str:
  p = argparse.ArgumentParser(prog=prog, description=__doc__.split('\n')[0])
  p.add_argument('workdirs', nargs='+')
  p.add_argument('--out', default=None, help='output path prefix for .md, .csv and .png (a folder: '
                                             'FOLDER/report.md, ...)')
  p.add_argument('--table', choices=('auto',) + tuple(TABLES), default='auto',
                 help="columns: 'ssil' (average incremental / last top-1 over all seen images, SS-IL's table), "
                      "'facil' (per-task means: task-aware and task-agnostic last accuracy, Ā, F̄); auto: facil "
                      "when every run uses FACIL's split (scenario.num_tasks > 0)")
  p.add_argument('--x', choices=tuple(plots.X_AXES), default='tasks',
                 help="the plot's x-axis: tasks learned, or the number of classes learned after each task "
                      "(PyCIL's plots)")
  a = p.parse_args(argv)
  if a.x != 'tasks' and not a.out:
    p.error(f'--x {a.x} sets the x-axis of the plot, which only --out writes')
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
    group = {r['label']: r for r in runs}   # a run of each group: their splits are the same
    curves = {k: {'top1_all': table[k]['top1_all'],
                  'average_incremental_top1': table[k]['average_incremental_top1'][0],
                  'classes': seen_classes(group[k]) if a.x == 'classes' else None}   # errors before any file
              for k in table_order(table, columns)}
    try:
      os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
      with open(out + '.md', 'w') as f:
        f.write(text + '\n')
      write_csv(runs, table, out + '.csv', columns)
      plots.plot_accuracy(curves, out + '.png', a.x)
    except OSError as e:   # a full disk or a folder gone read-only after the check: one line
      line = errors.os_line(e, then='run the same command again', path=out)
      if line is None:
        raise
      raise SystemExit(line) from None
  print(text)
  if out:
    print(f'wrote {out}.md, {out}.csv and {out}.png', file=sys.stderr)
  print(f'{_count(len(runs), "run")} used in {_count(len(table), "group")}, {skipped} skipped', file=sys.stderr)
  return text


def _count(n: int, noun: str) -> str:
  return f'{n} {noun}' + ('' if n == 1 else 's')


if __name__ == '__main__':
  main()
