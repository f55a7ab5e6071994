"""What a run writes for people: results.json, its accuracy plot and the TensorBoard scalars. Only
process 0 writes; on the others every call is a no-op."""
from __future__ import annotations

import json
import os
from typing import Callable

from cil_jax.engine import workdir as workdir_lib
from cil_jax.results import plots, summaries


class RunWriter:
  def __init__(self, workdir: str, method_name: str, writes: bool, note: Callable[[str], None]):
    """writes: whether this process writes (process 0); note: a line for people (the progress's)."""
    self.workdir, self.method_name, self.writes, self.note = workdir, method_name, writes, note
    self._plot = writes
    self.tensorboard = None
    if writes and not summaries.available():
      note('TensorBoard summaries are off: the tensorboard package is not installed (results.json is written as '
           'usual)')
    elif writes:
      self.tensorboard = summaries.ScalarWriter(os.path.join(workdir, 'tensorboard'))

  def hparams(self, fields: dict) -> None:
    if self.tensorboard is not None:
      self.tensorboard.hparams(fields, trial=os.path.basename(os.path.abspath(self.workdir)))

  def train_scalars(self, step: int, values: dict, lr) -> None:
    """A step's metrics and its lr (a float, or a dict by parameter group)."""
    if self.tensorboard is None:
      return
    scalars = {f'train/{key}': v for key, v in values.items()}
    scalars.update({f'train/lr/{group}': v for group, v in lr.items()} if isinstance(lr, dict) else {'train/lr': lr})
    self.tensorboard.scalars(step, scalars)

  def validation_loss(self, step: int, loss: float) -> None:
    if self.tensorboard is not None:
      self.tensorboard.scalars(step, {'train/val_loss': loss})

  def task_row(self, t: int, row: dict) -> None:
    """A task's evaluation (metrics.row_from_counts), at step t + 1: tasks counted from 1, as in all output."""
    if self.tensorboard is None:
      return
    values = {'eval/top1_all_seen': row['top1_all'], 'eval/top5_all_seen': row['top5_all']}
    values.update({f'eval/top1_{key}': row[key] for key in ('old', 'new') if row[key] is not None})
    self.tensorboard.scalars(t + 1, values)
    self.tensorboard.flush()

  def results(self, summary: dict, plot: bool = True) -> None:
    """results.json (atomically), and its plot unless `plot` is False or matplotlib is missing."""
    if not self.writes:
      return
    workdir_lib.atomic_write(os.path.join(self.workdir, workdir_lib.RESULTS), json.dumps(summary, indent=1))
    if plot and self._plot:
      try:
        plots.plot_accuracy({self.method_name: summary}, os.path.join(self.workdir, 'accuracy.png'))
      except ImportError:  # e.g. an accelerator machine without it: the results stand without their plot
        self.note('accuracy.png is not written: matplotlib is not installed')
        self._plot = False

  def close(self) -> None:
    if self.tensorboard is not None:
      self.tensorboard.close()
