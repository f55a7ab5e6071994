"""What a method is: data, not a subclass tree.

A method gives, for each task, a list of *phases* and optional host-side hooks. A phase is a loss (a
pure function the engine jits), the data and stream it trains on, its schedule, its teacher and
what it may update. The engine runs phases and hooks; it knows no method.

Loss signature:  loss(x: LossInputs) -> (scalar, metrics dict)
Predict:         predict(outputs, params, state, classes) -> scores over all classes (argmax = class)

Parameters are `{'model': ..., 'method': ...}`: the network's and the method's own trainable
arrays (e.g. BiC's bias layers). `state` is the method's non-trainable arrays (class means, IL2M
statistics). Both have fixed shapes for the whole run, so they checkpoint and jit like the model.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import flax.struct
import jax.numpy as jnp
import numpy as np

from cil_jax.losses import NEG, cross_entropy
from cil_jax.scenario import Tasks

LossFn = Callable[['LossInputs'], tuple[Any, dict]]


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


@flax.struct.dataclass
class LossInputs:
  out: dict                  # student outputs: logits [B, C], features, stages
  teacher: Optional[dict]    # frozen teacher's outputs on the same augmented batch (inference mode)
  params: dict               # student params {'model', 'method'}
  teacher_params: Optional[dict]
  batch: dict                # image, label [B] (incremental labels), replay [B] bool (slot is an exemplar)
  classes: Classes
  state: dict                # the method's non-trainable arrays


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """SGD with coupled weight decay. A phase with its own optimizer starts it fresh at the phase start;
  `None` in a phase means the run's main optimizer (whose state may live across tasks)."""
  momentum: float = 0.9
  weight_decay: float = 1e-4


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
  teacher: Optional[str] = None       # None | 'task_start' | 'phase_start': when the frozen copy is taken
  data: str = 'train'                 # which index sets of `Method.task_data` the stream draws from
  bn_train: bool = True               # False: BatchNorm in inference mode, statistics frozen
  trainable: Optional[Callable] = None  # (params, classes) -> pytree of True/False/array multipliers; None = all
  optimizer: Optional[Optimizer] = None
  cosine: bool = False                # cosine annealing of lr over the phase's epochs (per epoch)

  def lr_at(self, epoch: int) -> float:
    """Step decay lr · gamma^(number of milestones <= epoch), as the reference's schedule, or cosine."""
    if self.cosine:
      return float(self.lr * 0.5 * (1 + np.cos(np.pi * epoch / self.epochs)))
    return self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)


def masked_logits(outputs, params, state, classes):
  """Default prediction: the logits of the seen classes (others pushed to -inf)."""
  del params, state
  return jnp.where(classes.seen, outputs['logits'], NEG)


def default_task_data(ctx) -> dict:
  """{'train': (the task's new data, the memory)}: what most methods train on."""
  return {'train': (ctx.new_indices(), ctx.memory.indices)}


@dataclasses.dataclass(frozen=True)
class Method:
  """phases(t) -> list[Phase]. Hooks (host side, optional) receive a `TaskContext` (see train.py):
    task_data(ctx)   -> {name: (new_indices, memory_indices)}; default {'train': (new data, memory)}
    before_task(ctx) -> (params, state) after e.g. imprinting weights; runs once at the task start
    after_task(ctx)  -> state after the task's phases, before the memory update (class means, stats)
  init_params(num_classes, num_tasks) / init_state(num_classes, num_tasks, feature_dim) give the
  method's own arrays (empty dicts by default)."""
  name: str
  phases: Callable[[int], list[Phase]]
  predict: Callable = masked_logits
  task_data: Callable = default_task_data
  before_task: Optional[Callable] = None
  after_task: Optional[Callable] = None
  init_params: Callable = lambda num_classes, num_tasks: {}
  init_state: Callable = lambda num_classes, num_tasks, feature_dim: {}


def with_head(params: dict, **arrays) -> dict:
  """params with some of the head's arrays replaced (imprinted weights, proxies, scale)."""
  head = dict(params['model']['head'], **arrays)
  return dict(params, model=dict(params['model'], head=head))


def main_schedule(train_cfg, task: int, lr_by_task: bool) -> dict:
  """Epochs, milestones and lr of a task's main phase, with the reference's `--factor` and lr/(t+1).

  factor F divides epochs and milestones by F from task 1 on (integer division, as the reference).
  """
  f = int(train_cfg.factor) if task >= 1 else 1
  lr = train_cfg.lr / (task + 1) if lr_by_task else train_cfg.lr
  return dict(epochs=int(train_cfg.epochs) // f, milestones=tuple(int(m) // f for m in train_cfg.milestones),
              gamma=float(train_cfg.gamma), lr=float(lr))


def ce_phase(config, task: int, stream: str = 'mixed', lr_by_task: bool = False, name: str = 'train') -> Phase:
  """A main phase with plain CE over the seen classes: task 0 of most methods, FT, joint."""
  return Phase(name, seen_cross_entropy, stream=stream, batch_size=config.train.batch_size,
               **main_schedule(config.train, task, lr_by_task=lr_by_task))


def seen_cross_entropy(x: LossInputs):
  """CE over all seen classes, batch mean: the task-0 loss of most methods and FT's loss."""
  ce = cross_entropy(x.out['logits'], x.batch['label'], x.classes.seen).mean()
  return ce, {'ce': ce}
