"""Plots and tables from results (one run's workdir, or several for a comparison)."""
from __future__ import annotations

import os


def plot_accuracy(results: dict[str, dict], path: str) -> None:
  """Top-1 on all seen classes after each task, one line per run; written as a PNG."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
  for name, summary in results.items():
    acc = summary['top1_all']
    ax.plot(range(1, len(acc) + 1), acc, marker='o',
            label=f'{name} (avg {summary["average_incremental_top1"]:.1f})')
  ax.set_xlabel('task')
  ax.set_ylabel('top-1 on all seen classes (%)')
  ax.set_ylim(0, 100)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  tmp = path + '.tmp.png'
  fig.savefig(tmp)
  plt.close(fig)
  os.replace(tmp, path)
