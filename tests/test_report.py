"""The report command: metrics from rows, grouping runs by config over seeds, Markdown / CSV / PNG."""
import csv
import json
import os

import numpy as np
import pytest

from cil_jax import config_base
from cil_jax.results import metrics, plots
from cil_jax.tools import report
from helpers import load_config


def _row(task, accs):
  return {'top1': accs, 'top5': [min(100, a + 10) for a in accs], 'task_aware': accs, 'top1_all': float(np.mean(accs)),
          'top5_all': float(np.mean(accs)) + 5, 'old': None if task == 0 else float(np.mean(accs[:-1])),
          'new': accs[-1]}


def _rows(num_tasks, start=90.0):
  """num_tasks result rows, accuracies falling by 10 per task."""
  return [_row(k, [start - 10.0 * (k - j) for j in range(k + 1)]) for k in range(num_tasks)]


def _workdir(tmp_path, name, method, seed, rows, memory=100, num_tasks=3, config=None, fields=None):
  """A finished (or, with fewer rows than num_tasks, unfinished) workdir. `config` replaces the minimal
  config.json (method / memory / seed); `fields` overrides dotted fields of it, e.g. {'train.epochs': 1}."""
  d = tmp_path / name
  d.mkdir()
  config = config or {'method': {'name': method}, 'memory': {'size': memory}, 'seed': seed}
  for dotted, value in (fields or {}).items():
    *parents, leaf = dotted.split('.')
    node = config
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  (d / 'config.json').write_text(json.dumps(config))
  (d / 'results.json').write_text(json.dumps(metrics.summarize(rows, num_tasks)))
  return str(d)


def _full_config(method, seed, **fields):
  """config.json as a run writes it: every field of base_config, both seeds set to `seed`."""
  c = config_base.base_config()
  config_base.set_method(c, method)
  c.seed = c.scenario.seed = seed
  config = json.loads(c.to_json_best_effort())
  for dotted, value in fields.items():
    section, leaf = dotted.split('.')
    config[section][leaf] = value
  return config


def _table_row(text, label):
  """The cells of the Markdown row of `label`."""
  lines = [l for l in text.splitlines() if l.startswith(f'| {label} |')]
  assert len(lines) == 1, f'no single row {label!r} in\n{text}'
  return [c.strip() for c in lines[0].strip('|').split('|')]


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


def test_runs_of_one_method_with_different_configs_are_separate_rows(tmp_path):
  full, smoke = _rows(3), _rows(3, start=60.0)
  dirs = [_workdir(tmp_path, f'full{s}', 'ssil', s, full, fields={'train.epochs': 100, 'scenario.seed': s})
          for s in (0, 1, 2)]
  dirs += [_workdir(tmp_path, f'short{s}', 'ssil', s, smoke, fields={'train.epochs': 1, 'scenario.seed': s})
           for s in (0, 1)]
  dirs += [_workdir(tmp_path, 'ft0', 'ft', 0, smoke, fields={'train.epochs': 1})]
  text = report.main(dirs)
  # only the field that tells the two ssil experiments apart; the unique ft label stays as it is
  assert _table_row(text, 'ssil (train.epochs=1)')[1] == '2'
  assert _table_row(text, 'ssil (train.epochs=100)')[1] == '3'
  assert _table_row(text, 'ft')[1] == '1'
  assert len(text.splitlines()) == 2 + 3


def test_labels_name_lucirs_form_and_at_most_three_fields_while_they_stay_apart(tmp_path):
  many = {f'train.f{i}': i for i in range(6)}
  dirs = [_workdir(tmp_path, 'lucir', 'lucir', 0, _rows(3), fields={'method.form': 'ssil'}),
          _workdir(tmp_path, 'lucir_facil', 'lucir', 0, _rows(3), fields={'method.form': 'facil', **many}),
          _workdir(tmp_path, 'a', 'ssil', 0, _rows(3), fields=many),
          _workdir(tmp_path, 'b', 'ssil', 0, _rows(3), fields={k: 9 for k in many}),
          _workdir(tmp_path, 'c', 'icarl', 0, _rows(3), fields=many),
          _workdir(tmp_path, 'd', 'icarl', 0, _rows(3), fields={**many, 'train.f5': 9})]
  text = report.main(dirs)
  assert _table_row(text, 'lucir')[1] == '1' and _table_row(text, 'lucir-facil')[1] == '1'
  # six fields differ between a and b, any one keeps them apart: the first is named; c and d differ in
  # the 6th only, so it is shown
  assert _table_row(text, 'ssil (train.f0=0, +5 more)')[1] == '1'
  assert _table_row(text, 'ssil (train.f0=9, +5 more)')[1] == '1'
  assert _table_row(text, 'icarl (train.f5=5)')[1] == '1' and _table_row(text, 'icarl (train.f5=9)')[1] == '1'
  # x and y differ in their 4th field only, z from x in the first three: g0 and g3 tell them apart
  dirs = [_workdir(tmp_path, name, 'bic', 0, _rows(3), fields={f'train.g{i}': v for i, v in enumerate(values)})
          for name, values in (('x', (1, 1, 1, 1)), ('y', (1, 1, 1, 2)), ('z', (2, 2, 2, 1)))]
  dirs.append(_workdir(tmp_path, 's', 'bic', 0, _rows(3), fields={'train.g0': '1', 'train.g1': 1, 'train.g2': 1,
                                                                   'train.g3': 1}))   # '1', not 1: apart in JSON
  text = report.main(dirs)
  assert _table_row(text, 'bic (train.g0=1, train.g3=2, +2 more)')[1] == '1'
  assert _table_row(text, 'bic (train.g0="1", train.g3=1, +2 more)')[1] == '1'
  assert _table_row(text, 'bic (train.g0=2, train.g3=1, +2 more)')[1] == '1'


def test_grouping_on_full_configs_ignores_seeds_and_free_fields(tmp_path):
  def run(name, method, seed, **fields):
    return _workdir(tmp_path, name, method, seed, _rows(3), config=_full_config(method, seed, **fields))
  dirs = [run('a0', 'ssil', 0),
          run('a1', 'ssil', 1, **{'eval.batch_size': 64, 'checkpoint.every_epochs': 5}),   # free fields
          run('b0', 'ssil', 0, **{'scenario.base': 5, 'scenario.step': 5}),
          run('c0', 'ft', 0, **{'memory.size': 0})]
  out = str(tmp_path / 'full')
  text = report.main(dirs + ['--out', out])
  # base and step differ, base alone keeps the rows apart: the fewest fields, and the count of the rest
  small, large = 'ssil (scenario.base=2, +1 more)', 'ssil (scenario.base=5, +1 more)'
  assert _table_row(text, small)[1] == '2'
  assert _table_row(text, large)[1] == '1'
  assert _table_row(text, 'ft (no memory)')[1] == '1'
  rows = list(csv.reader(open(out + '.csv')))[1:]
  assert [r[0] for r in rows[:4]] == [small, small, large, 'ft (no memory)']
  assert [r[:2] for r in rows[4:]] == [['ft (no memory)', 'mean'], [small, 'mean'], [small, 'std'], [large, 'mean']]


def test_csv_rows_per_run_then_per_group(tmp_path):
  a, b = _rows(3), _rows(3, start=70.0)
  dirs = [_workdir(tmp_path, 'e1s0', 'ssil', 0, a, fields={'train.epochs': 1}),
          _workdir(tmp_path, 'e2s0', 'ssil', 0, b, fields={'train.epochs': 2}),
          _workdir(tmp_path, 'e1s1', 'ssil', 1, b, fields={'train.epochs': 1})]
  out = str(tmp_path / 'table')
  report.main(dirs + ['--out', out])
  rows = list(csv.reader(open(out + '.csv')))
  assert rows[0][:3] == ['method', 'seed', 'workdir']
  one, two = 'ssil (train.epochs=1)', 'ssil (train.epochs=2)'
  assert [r[:3] for r in rows[1:4]] == [[one, '0', dirs[0]], [two, '0', dirs[1]], [one, '1', dirs[2]]]
  assert [r[:2] for r in rows[4:]] == [[one, 'mean'], [one, 'std'], [two, 'mean']]
  avg = [metrics.summarize(r, 3)['average_incremental_top1'] for r in (a, b)]
  np.testing.assert_allclose(float(rows[4][3]), np.mean(avg), atol=5e-5)   # to 4 decimals
  np.testing.assert_allclose(float(rows[5][3]), np.std(avg, ddof=1), atol=5e-5)
  np.testing.assert_allclose(float(rows[6][3]), avg[1], atol=5e-5)
  assert all(len(cell.partition('.')[2]) <= 4 for r in rows[1:] for cell in r[3:])


def test_out_may_be_a_folder_and_a_file_in_its_way_is_one_line(tmp_path, capsys):
  d = _workdir(tmp_path, 'ssil0', 'ssil', 0, _rows(3))
  (tmp_path / 'tables').mkdir()
  report.main([d, '--out', str(tmp_path / 'tables')])
  assert sorted(os.listdir(tmp_path / 'tables')) == ['report.csv', 'report.md', 'report.png']
  assert f"wrote {tmp_path / 'tables' / 'report'}.md" in capsys.readouterr().err
  report.main([d, '--out', str(tmp_path / 'new') + os.sep])   # a trailing separator: a folder to make
  assert sorted(os.listdir(tmp_path / 'new')) == ['report.csv', 'report.md', 'report.png']
  (tmp_path / 'notes').write_text('a file')
  with pytest.raises(SystemExit):
    report.main([d, '--out', str(tmp_path / 'notes' / 'x')])
  assert f"x: {tmp_path / 'notes'} is a file, so it cannot hold the report" in capsys.readouterr().err


def test_a_workdir_given_twice_counts_once(tmp_path, monkeypatch, capsys):
  d = _workdir(tmp_path, 'ssil0', 'ssil', 0, _rows(3))
  other = _workdir(tmp_path, 'ssil1', 'ssil', 1, _rows(3, start=80.0))
  monkeypatch.chdir(tmp_path)
  text = report.main([d, d, d + os.sep, os.path.join('.', 'ssil0'), other])
  assert _table_row(text, 'ssil')[1] == '2'
  err = capsys.readouterr().err
  assert err.count('skipping') == 3 and 'same workdir as' in err
  assert err.strip().splitlines()[-1] == '2 runs used in 1 group, 3 skipped'


def test_missing_paths_are_reported(tmp_path, capsys):
  d = _workdir(tmp_path, 'ssil0', 'ssil', 0, _rows(3))
  (tmp_path / 'a_file').write_text('')
  missing = str(tmp_path / 'nope')
  report.main([d, missing, str(tmp_path / 'a_file'), _workdir(tmp_path, 'half', 'ssil', 1, _rows(2))])
  err = capsys.readouterr().err
  assert f'skipping {missing}: no such directory' in err
  assert f'skipping {tmp_path / "a_file"}: not a directory' in err
  assert '2/3 tasks done' in err
  assert err.strip().splitlines()[-1] == '1 run used in 1 group, 3 skipped'


def test_nothing_usable_is_a_one_line_error(tmp_path):
  with pytest.raises(SystemExit, match='no finished runs among the given workdirs'):
    report.main([str(tmp_path / 'nope')])


def test_groups_with_different_numbers_of_tasks(tmp_path):
  dirs = [_workdir(tmp_path, f't3s{s}', 'ssil', s, _rows(3), num_tasks=3, fields={'scenario.step': 4})
          for s in (0, 1)]
  dirs += [_workdir(tmp_path, f't5s{s}', 'ssil', s, _rows(5, start=80.0 + s), num_tasks=5,
                    fields={'scenario.step': 2}) for s in (0, 1)]
  out = str(tmp_path / 'table')
  text = report.main(dirs + ['--out', out])
  assert _table_row(text, 'ssil (scenario.step=4)')[1] == '2'
  assert _table_row(text, 'ssil (scenario.step=2)')[1] == '2'
  table = report.summarize(report.load_runs(dirs)[0])
  assert len(table['ssil (scenario.step=4)']['top1_all']) == 3
  np.testing.assert_allclose(table['ssil (scenario.step=2)']['top1_all'],
                             np.mean([metrics.summarize(_rows(5, start=80.0 + s), 5)['top1_all'] for s in (0, 1)], 0))
  assert (tmp_path / 'table.png').stat().st_size > 1000
  assert len(list(csv.reader(open(out + '.csv')))) == 1 + 4 + 4


def test_runs_of_one_group_with_different_lengths_are_an_error(tmp_path):
  # same config, different task counts: results from different code, not seeds of one experiment
  dirs = [_workdir(tmp_path, 'x0', 'ssil', 0, _rows(3), num_tasks=3),
          _workdir(tmp_path, 'x1', 'ssil', 1, _rows(5), num_tasks=5)]
  with pytest.raises(SystemExit) as e:
    report.main(dirs)
  message = str(e.value)
  assert '\n' not in message and dirs[0] in message and dirs[1] in message and 'ssil' in message


def test_facil_table_shows_task_aware_and_task_agnostic(tmp_path, capsys):
  """Runs on FACIL's split get the FACIL columns by default, labelled by variant; means over seeds."""
  ws = []
  for seed in (0, 1):
    for variant in ('lwf', 'bsr'):
      ws.append(_workdir(tmp_path, f'{variant}{seed}', 'lwf', seed, _rows(3, 90.0 + seed),
                         fields={'scenario.num_tasks': 3, 'method.variant': variant}))
  text = report.main(ws)
  assert 'last TAw' in text and 'Ā TAg' in text and 'avg top-1' not in text
  want = np.mean([metrics.summarize(_rows(3, 90.0 + s), 3)['average_task_aware'] for s in (0, 1)])
  assert _table_row(text, 'lwf-bsr')[4].startswith(f'{want:.2f} ±')
  assert _table_row(text, 'lwf')[1] == '2'
  assert 'avg top-1' in report.main(ws + ['--table', 'ssil'])
  assert 'two protocols' not in capsys.readouterr().err
  mixed = ws + [_workdir(tmp_path, 'ssil0', 'ssil', 0, _rows(3))]
  assert 'avg top-1' in report.main(mixed)   # not all on FACIL's split: SS-IL's columns, and a note
  assert "note: 4 runs use FACIL's split (scenario.num_tasks > 0) and 1 the SS-IL split" in capsys.readouterr().err


def _mgrb_workdir(tmp_path, name, path, arg, seed, rows):
  """A workdir of configs/<path>:<arg> as a run writes its config.json, seed `seed`."""
  c = load_config(path, arg, seed=seed)
  return _workdir(tmp_path, name, 'mgrb', seed, rows, num_tasks=len(rows), config=json.loads(c.to_json_best_effort()))


def test_labels_of_many_mixed_runs_name_the_fewest_fields(tmp_path):
  """18 MGRB runs of two datasets, three variants, three seeds: eleven fields differ, three keep the six
  rows apart, and only those three are named (all eleven were, once)."""
  dirs, want = [], {}
  for path, dataset in (('mgrb_fmnist.py', 'fashion_mnist'), ('mgrb_cifar10.py', 'cifar10')):
    for arg, hierarchy, cb in (('ont', 'dataset', True), ('vis', 'visual', True),
                               ('ont,cb_loss=false', 'dataset', False)):
      label = f'mgrb (dataset.name={dataset}, method.hierarchy={hierarchy}, method.cb_loss={cb}, +8 more)'
      for seed in (0, 1, 2):
        rows = _rows(6, start=90.0 - len(want) - seed)
        dirs.append(_mgrb_workdir(tmp_path, f'{dataset}-{arg}_s{seed}', path, arg, seed, rows))
      want[label] = np.mean([metrics.summarize(_rows(6, 90.0 - len(want) - s), 6)['average_incremental_top1']
                             for s in (0, 1, 2)])
  text = report.main(dirs)
  assert len(text.splitlines()) == 2 + 6
  for label, avg in want.items():
    assert _table_row(text, label)[1:3] == ['3', f'{avg:.2f} ± 1.00']
  assert report.main(dirs[::-1]) == text   # the same labels whatever the order of the paths
  # beyond three fields the labels still stay apart: the values of f0..f3 pick each of 5 groups
  values = [(0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1)]
  dirs = [_workdir(tmp_path, f'w{i}', 'icarl', 0, _rows(3), fields={**{f'train.f{j}': v for j, v in enumerate(vs)},
                                                                    'train.g': i % 2})
          for i, vs in enumerate(values)]
  text = report.main(dirs)
  assert _table_row(text, 'icarl (train.f0=0, train.f1=0, train.f2=0, train.f3=1, +1 more)')[1] == '1'


def test_fewest_fields_exact_up_to_three_then_greedy():
  def fewest(rows, names):
    return report.fewest_fields(list(range(len(rows))), names, lambda k, n: str(rows[k][names.index(n)]))
  names = ['a', 'b', 'c', 'd', 'e']
  # c alone keeps them apart; a, b together also would, but two fields are more than one
  assert fewest([(0, 0, 0, 0, 0), (0, 1, 1, 0, 0), (1, 0, 2, 0, 0)], names) == ['c']
  assert fewest([(0, 0, 0, 0, 0), (1, 1, 0, 0, 0)], names) == ['a']   # of equals, the first in config order
  # neither b nor d alone
  assert fewest([(0, 0, 0, 0, 0), (0, 1, 0, 0, 0), (0, 0, 0, 1, 0), (0, 1, 0, 1, 0)], names) == ['b', 'd']
  # four needed: the greedy search finds them, in config order
  rows = [(0, 0, 0, 0, 9), (1, 0, 0, 0, 9), (0, 1, 0, 0, 9), (0, 0, 1, 0, 9), (0, 0, 0, 1, 9)]
  assert fewest(rows, names) == ['a', 'b', 'c', 'd']
  assert fewest([(0, 0, 0, 0, 0), (0, 0, 0, 0, 0)], names) is None   # alike in every field


def test_a_repeated_seed_counts_once_and_is_named(tmp_path, capsys):
  a, b, c = _rows(3), _rows(3, start=80.0), _rows(3, start=70.0)
  dirs = [_workdir(tmp_path, 's0', 'ssil', 0, a), _workdir(tmp_path, 's1', 'ssil', 1, b),
          _workdir(tmp_path, 's0_again', 'ssil', 0, c, fields={'eval.batch_size': 64})]   # a free field
  out = str(tmp_path / 'table')
  text = report.main(dirs + ['--out', out])
  avg = [metrics.summarize(r, 3)['average_incremental_top1'] for r in (a, b)]   # not c: seed 0 once
  assert _table_row(text, 'ssil')[1:3] == ['2', f'{np.mean(avg):.2f} ± {np.std(avg, ddof=1):.2f}']
  err = capsys.readouterr().err
  assert f'skipping {dirs[2]}: a repeat of {dirs[0]} (the same experiment and seed 0), counted once' in err
  assert err.strip().splitlines()[-1] == '2 runs used in 1 group, 1 skipped'
  assert [r[2] for r in csv.reader(open(out + '.csv'))][1:3] == dirs[:2]
  # another scenario.seed is another class order: not a repeat
  d = _workdir(tmp_path, 's0_order1', 'ssil', 0, c, fields={'scenario.seed': 1})
  assert _table_row(report.main(dirs[:2] + [d]), 'ssil')[1] == '3'


def _many_curves(n, tasks=6):
  return {f'mgrb (method.f{i}={i}, method.beta={20 + i}.0, method.cb_loss=True, +8 more)':
          {'top1_all': [90.0 - i - 5 * k for k in range(tasks)], 'average_incremental_top1': 80.0 - i,
           'classes': [5 + k for k in range(tasks)]} for i in range(n)}


def test_plot_of_many_runs_keeps_them_apart_and_the_legend_outside(tmp_path):
  import warnings
  curves = _many_curves(24)
  with warnings.catch_warnings():
    warnings.simplefilter('error')   # no matplotlib warning either
    fig = plots.accuracy_figure(curves)
    plots.plot_accuracy(curves, str(tmp_path / 'many.png'))
  ax, = fig.axes
  lines = ax.get_lines()
  assert len({(l.get_color(), l.get_linestyle(), l.get_marker()) for l in lines}) == 24
  assert len({(l.get_color(), l.get_linestyle()) for l in lines}) == 24
  legend = ax.get_legend()
  assert [t.get_text().replace('\n  ', ' ') for t in legend.get_texts()] == [
      f'{name} (avg {c["average_incremental_top1"]:.1f})' for name, c in curves.items()]   # the given order
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.image import imread
  renderer = FigureCanvasAgg(fig).get_renderer()
  box, tight = legend.get_window_extent(renderer), fig.get_tightbbox(renderer)   # pixels, inches
  assert box.x0 > ax.get_window_extent(renderer).x1   # right of the axes: over no curve
  # the saved area (bbox_inches='tight') holds the legend: nothing cut off
  assert tight.x0 * fig.dpi <= box.x0 and box.x1 <= tight.x1 * fig.dpi
  assert tight.y0 * fig.dpi <= box.y0 and box.y1 <= tight.y1 * fig.dpi
  height, width, _ = imread(str(tmp_path / 'many.png')).shape
  assert width >= round(tight.width * fig.dpi) and height >= round(tight.height * fig.dpi)


def test_plot_x_axis_classes(tmp_path):
  fmnist = {'dataset': {'name': 'fashion_mnist'}}
  dirs = [_workdir(tmp_path, f'b{s}', 'ssil', s, _rows(4), num_tasks=4,
                   fields={**fmnist, 'scenario': {'base': 4, 'step': 2}}) for s in (0, 1)]
  dirs.append(_workdir(tmp_path, 'facil', 'lwf', 0, _rows(3), fields={**fmnist, 'scenario': {'num_tasks': 3}}))
  kept = _workdir(tmp_path, 'kept', 'bic', 0, _rows(3), fields={**fmnist, 'scenario': {'base': 2, 'step': 2}})
  (tmp_path / 'kept' / 'dataset.json').write_text(json.dumps({'classes': 6}))   # the classes the run read
  runs, _ = report.load_runs(dirs + [kept])
  assert [report.seen_classes(r) for r in runs] == [[4, 6, 8, 10], [4, 6, 8, 10], [4, 7, 10], [2, 4, 6]]
  out = str(tmp_path / 'classes')
  report.main(dirs + [kept, '--out', out, '--x', 'classes'])
  assert (tmp_path / 'classes.png').stat().st_size > 1000
  fig = plots.accuracy_figure(_many_curves(3), x='classes')
  assert [list(l.get_xdata()) for l in fig.axes[0].get_lines()] == [[5, 6, 7, 8, 9, 10]] * 3
  assert fig.axes[0].get_xlabel() == 'classes learned'
  with pytest.raises(SystemExit, match='number of classes of .* is unknown'):   # no dataset named: one line
    report.main([_workdir(tmp_path, 'bare', 'ssil', 0, _rows(3)), '--out', str(tmp_path / 'x'), '--x', 'classes'])
  assert not (tmp_path / 'x.md').exists()
  with pytest.raises(SystemExit):
    report.main(dirs + ['--x', 'classes'])   # no --out, no plot
