"""What a method is: data, not a subclass tree.

A method gives, for each task, a list of *phases*. A phase is a loss (a pure function the engine
jits), the stream it trains on, and its schedule. The engine runs phases; it knows no method.

Loss signature:  loss(outputs, teacher_outputs, batch, classes) -> (scalar, metrics dict)
  outputs          the student's model outputs (train mode): logits [B, C], features, stages
  teacher_outputs  the frozen teacher's outputs on the same augmented batch (inference mode), or
                   None when the phase has no teacher
  batch            dict(image, label [B] incremental labels, replay [B] bool: slot is an exemplar)
  classes          `Classes`: masks of seen/old/new classes and task blocks, as arrays
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.struct
import jax.numpy as jnp
import numpy as np

from cil_jax.losses import cross_entropy
from cil_jax.scenario import Tasks

LossFn = Callable[..., tuple[Any, dict]]


@flax.struct.dataclass
class Classes:
  """Class boundaries of the current task as arrays, so one compiled step serves every task."""
  seen: Any      # bool [C]   classes learned so far, including the current task's
  old: Any       # bool [C]   classes of earlier tasks
  new: Any       # bool [C]   classes of the current task
  blocks: Any    # bool [T, C] blocks[s] = classes of task s
  task: Any      # int32 []   current task index

  @classmethod
  def for_task(cls, tasks: Tasks, t: int) -> 'Classes':
    c = np.arange(tasks.num_classes)
    task_of = tasks.task_of_class()
    return cls(seen=jnp.asarray(c < tasks.end(t)), old=jnp.asarray(c < tasks.start(t)),
               new=jnp.asarray((c >= tasks.start(t)) & (c < tasks.end(t))),
               blocks=jnp.asarray(task_of[None, :] == np.arange(tasks.num_tasks)[:, None]),
               task=jnp.asarray(t, jnp.int32))

  def old_blocks(self):
    """blocks of the earlier tasks only (rows s >= task are all False)."""
    return self.blocks & (jnp.arange(self.blocks.shape[0]) < self.task)[:, None]


@dataclasses.dataclass(frozen=True)
class Phase:
  name: str
  loss: LossFn
  stream: str                 # see input_pipeline.streams.STREAM_KINDS
  batch_size: int
  epochs: int
  lr: float
  milestones: tuple[int, ...] = ()
  gamma: float = 0.1
  replay_batch_size: int = 0
  uses_teacher: bool = False

  def lr_at(self, epoch: int) -> float:
    """Step decay: lr · gamma^(number of milestones <= epoch), as the reference's schedule."""
    return self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  phases: Callable[[int], list[Phase]]          # task -> phases
  uses_teacher: bool = False                    # keep a frozen copy of the model from each task start


def main_schedule(train_cfg, task: int, lr_by_task: bool) -> dict:
  """Epochs, milestones and lr of a task's main phase, with the reference's `--factor` and lr/(t+1).

  factor F divides epochs and milestones by F from task 1 on (integer division, as the reference).
  """
  f = int(train_cfg.factor) if task >= 1 else 1
  lr = train_cfg.lr / (task + 1) if lr_by_task else train_cfg.lr
  return dict(epochs=int(train_cfg.epochs) // f, milestones=tuple(int(m) // f for m in train_cfg.milestones),
              gamma=float(train_cfg.gamma), lr=float(lr))


def seen_cross_entropy(outputs, teacher_outputs, batch, classes):
  """CE over all seen classes, batch mean: the task-0 loss of most methods and FT's loss."""
  del teacher_outputs
  ce = cross_entropy(outputs['logits'], batch['label'], classes.seen).mean()
  return ce, {'ce': ce}
