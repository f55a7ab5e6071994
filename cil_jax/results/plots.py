"""The accuracy plot of one run (its workdir's accuracy.png) and of a report (one line per experiment)."""
from __future__ import annotations

import os


# More than 10 lines stay apart: the 10 colours, then a line style per 10 lines, and a marker cycle of
# 7 (prime to 10): no two of the first 40 lines share colour and style.
LINE_STYLES = ('-', '--', ':', '-.')
MARKERS = ('o', 's', '^', 'D', 'v', 'P', 'X')
LEGEND_WIDTH = 52   # characters per legend line; longer labels wrap at their ', '
X_AXES = {'tasks': 'tasks learned', 'classes': 'classes learned'}


def line_style(i: int) -> dict:
  return {'color': f'C{i % 10}', 'linestyle': LINE_STYLES[i // 10 % len(LINE_STYLES)],
          'marker': MARKERS[i % len(MARKERS)]}


def _wrap(label: str) -> str:
  """A legend label on lines of about LEGEND_WIDTH characters, broken after a field's ', ' only."""
  lines = []
  for part in label.split(', '):
    if lines and len(lines[-1]) + 2 + len(part) <= LEGEND_WIDTH:
      lines[-1] += ', ' + part
    else:
      lines[-1:] = [lines[-1] + ','] if lines else []
      lines.append(part)
  return '\n  '.join(lines)


def plot_accuracy(results: dict[str, dict], path: str, x: str = 'tasks') -> None:
  """accuracy_figure written as a PNG, the legend within it."""
  tmp = path + '.tmp.png'
  accuracy_figure(results, x).savefig(tmp, bbox_inches='tight')   # the figure grows to hold the legend
  os.replace(tmp, path)


def accuracy_figure(results: dict[str, dict], x: str = 'tasks'):
  """Top-1 on all seen classes after each task, one line per entry (in the given order) with the legend
  right of the axes. x='classes': each entry's 'classes' (classes seen after each task) on the x-axis,
  as PyCIL's plots."""
  from matplotlib.figure import Figure   # no pyplot: no global state, no backend to switch
  from matplotlib.ticker import MaxNLocator
  labels = {name: _wrap(f'{name} (avg {s["average_incremental_top1"]:.1f})') for name, s in results.items()}
  lines = sum(label.count('\n') + 1 for label in labels.values())
  # the legend goes right of the axes, never over a curve; a long one makes the figure taller
  fig = Figure(figsize=(6.5, max(4.2, 1.0 + 0.16 * lines)), dpi=100)
  ax = fig.add_subplot()
  ticks = set()
  for i, (name, summary) in enumerate(results.items()):
    acc = summary['top1_all']
    xs = summary['classes'] if x == 'classes' else range(1, len(acc) + 1)
    ticks.update(xs)
    ax.plot(xs, acc, markersize=4, label=labels[name], **line_style(i))
  if len(ticks) <= 12:
    ax.set_xticks(sorted(ticks))
  else:   # e.g. 20 tasks or 100 classes
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.set_xlabel(X_AXES[x])
  ax.set_ylabel('top-1 on all seen classes (%)')
  ax.set_ylim(0, 100)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.02, 1), borderaxespad=0, handlelength=3)
  return fig
