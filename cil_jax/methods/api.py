"""The method API, in one module: what a method gives the engine and what the engine gives it back.

A method gives, for each task, a list of *phases* and optional host-side hooks. A phase is a `Step`
(what compiles: the loss, a pure function the engine jits, the teacher use, BN mode, trainable set,
optimizer) plus what only drives it: the learning-rate `Schedule`, the data and stream it trains on,
an optional validation set and a phase-start hook. The engine runs phases and hooks; it knows no
method, and a method sees the engine only through `TaskContext`.

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

from cil_jax.input_pipeline.base import ClassInfo
from cil_jax.methods.losses import NEG
from cil_jax.input_pipeline.scenario import Memory, Tasks, stream_seed
from cil_jax.methods.schedules import Schedule

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


OPTIMIZER_KINDS = ('sgd', 'adamw')


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """A phase's optimizer; the learning rate comes from the phase's schedule.

  sgd:   PyTorch SGD: coupled weight decay (added to the gradient), then momentum (no dampening,
         no Nesterov); momentum=0 is plain SGD.
  adamw: PyTorch AdamW: Adam moments (b1, b2, eps) and decoupled weight decay p -= lr·wd·p.
  clip_norm: PyTorch's clip_grad_norm_ of the raw gradients first (None: no clipping).
  A phase with its own optimizer starts it fresh at the phase start; `None` in a step means the
  run's main optimizer (train.momentum, train.weight_decay; its state may live across tasks).
  """
  momentum: float = 0.9
  weight_decay: float = 1e-4
  kind: str = 'sgd'
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  clip_norm: Optional[float] = None

  def __post_init__(self):
    if self.kind not in OPTIMIZER_KINDS:
      raise ValueError(f'optimizer kind {self.kind!r} is unknown; choose one of {OPTIMIZER_KINDS}')

  @classmethod
  def of_train_config(cls, train_cfg) -> 'Optimizer':
    """The run's main optimizer: SGD with train.momentum, train.weight_decay, train.clip_norm (0: none).
    A method that wants it fresh at each phase start (e.g. each task, as LUCIR's reference) gives it
    to its Step."""
    return cls(momentum=float(train_cfg.momentum), weight_decay=float(train_cfg.weight_decay),
               clip_norm=float(train_cfg.clip_norm) or None)


@dataclasses.dataclass(frozen=True)
class Step:
  """What one compiled train step is; equal steps share one compile, whatever the schedule."""
  loss: LossFn
  teacher: Optional[str] = None       # None | 'task_start' | 'phase_start': when the frozen copy is taken
  bn_train: bool = True               # False: BatchNorm in inference mode, statistics frozen
  trainable: Optional[Callable] = None  # (params, classes) -> pytree of True/False/array multipliers; None = all
  optimizer: Optional[Optimizer] = None
  groups: Optional[Callable] = None   # params -> pytree of group names, for a schedule that gives an lr per
                                      # group (schedules.PerGroup); None: one lr for all parameters


@dataclasses.dataclass(frozen=True)
class Phase:
  """A step and what drives it. `validation` names a set of `Method.task_data` whose loss (the step's,
  inference mode, no augmentation) is computed after every epoch and given to the schedule (needed by
  schedules.Patience). `on_start(ctx) -> (params, method_state)` runs once when the phase starts fresh
  (after its teacher is taken), e.g. to re-initialise the head; it must be deterministic (use
  `ctx.rng(name)`), as it runs again when a run resumes before the phase's first checkpoint (and,
  when the run's very first batch fails to load, on the weights it gave: so it should not depend on
  the arrays it replaces)."""
  name: str
  step: Step
  schedule: Schedule
  stream: str                 # see input_pipeline.streams.STREAM_KINDS
  batch_size: int
  replay_batch_size: int = 0
  data: str = 'train'         # which index sets of `Method.task_data` the stream draws from
  validation: Optional[str] = None
  validation_step: Optional[Step] = None   # whose loss the validation set measures; None: this phase's step
  on_start: Optional[Callable] = None
  augment: bool = True        # False: the batches get the test transform (MGRB's balanced stage)

  def __post_init__(self):
    if self.schedule.needs_validation and self.validation is None:
      raise ValueError(f'phase {self.name!r}: its schedule ({type(self.schedule).__name__}) reacts to a '
                       'validation loss, so the phase needs validation=<a task_data set>')


def masked_logits(outputs, params, state, classes):
  """Default prediction: the logits of the seen classes (others pushed to -inf)."""
  del params, state
  return jnp.where(classes.seen, outputs['logits'], NEG)


def default_task_data(ctx: 'TaskContext') -> dict:
  """{'train': (the task's new data, the memory)}: what most methods train on; with a held-out
  split (scenario.validation), also {'validation': (the task's held-out images, none)}."""
  data = {'train': (ctx.new_indices(), ctx.memory.indices)}
  if ctx.validation is not None:
    data['validation'] = (ctx.validation, np.zeros(0, np.int64))
  return data


@dataclasses.dataclass(frozen=True)
class Method:
  """phases(t) -> list[Phase]. Hooks (host side, optional) receive a `TaskContext`:
    task_data(ctx)   -> {name: (new_indices, memory_indices)}; default {'train': (new data, memory)}
    before_task(ctx) -> (params, state) after e.g. imprinting weights; runs once at the task start
    after_task(ctx)  -> state after the task's phases, before the memory update (class means, stats)
  init_params(num_classes, num_tasks) / init_state(num_classes, num_tasks, feature_dim) give the
  method's own arrays (empty dicts by default).
  A run with scenario.validation > 0 holds that share of each class's training images out for the
  whole run (FACIL's rule): they exist for nothing else (training, exemplars, class means), and each
  task's are `ctx.validation` (task data 'validation'), e.g. for the patience schedule.
  A network that grows per task (DER's backbone per task, MEMO's late blocks): network(t) gives the
  model's extra fields for task t (e.g. {'branches': t + 1}; None, the default: the config's model
  throughout). Where task t's differs from the state's, the engine builds it at the task start, after
  the teacher copy (the teacher is the network before it grew), and fills it with
  grow(ctx, old_variables, new_variables) -> variables (default: engine.factory.carry_over, every
  part that was there keeps its weights); the main optimizer starts fresh for the new parameters."""
  name: str
  phases: Callable[[int], list[Phase]]
  predict: Callable = masked_logits
  task_data: Callable = default_task_data
  before_task: Optional[Callable] = None
  after_task: Optional[Callable] = None
  init_params: Callable = lambda num_classes, num_tasks: {}
  init_state: Callable = lambda num_classes, num_tasks, feature_dim: {}
  network: Optional[Callable[[int], dict]] = None
  grow: Optional[Callable] = None


# Named random streams of TaskContext.rng / outputs(augment=True): the numbers keep the seeds the
# methods had before streams were named, so no result moved. New names take the next free number.
RNG_STREAMS = {'host_pass': 0, 'imprint_kmeans': 7, 'imprint': 11, 'head_init': 12}


@dataclasses.dataclass
class TaskContext:
  """What a method's host-side hooks see: the scenario, the data, the current model and services.
  Built by the engine for each hook call, so `state` / `method_state` are the current ones."""
  t: int
  tasks: Tasks
  config: Any
  memory: Memory
  train_by_class: list            # per incremental class: its training-set indices (file order), less
                                  # the held-out validation images (scenario.validation)
  train_labels: np.ndarray        # incremental label of every training example
  label_map: np.ndarray           # original class id -> incremental label
  class_info: ClassInfo
  validation: Optional[np.ndarray]  # the task's held-out images (scenario.validation), else None
  state: Any                      # the train state (params, batch_stats, optimizer states)
  method_state: dict
  _outputs: Callable              # (indices, augment, seed, keys) -> {key: array} (engine service)

  def new_classes(self) -> list[np.ndarray]:
    """The training indices of each of the current task's classes."""
    return [self.train_by_class[k] for k in range(self.tasks.start(self.t), self.tasks.end(self.t))]

  def new_indices(self) -> np.ndarray:
    return np.concatenate(self.new_classes())

  def seed(self, stream: str, *keys: int) -> int:
    """A 31-bit seed of the named stream (RNG_STREAMS) for this run and task, plus optional keys."""
    if stream not in RNG_STREAMS:
      raise KeyError(f'random stream {stream!r} is not in methods.api.RNG_STREAMS; add it there')
    return stream_seed(int(self.config.seed), self.t, 1000 + RNG_STREAMS[stream], *keys)

  def rng(self, stream: str, *keys: int) -> np.random.Generator:
    """A numpy Generator of the named stream: the same numbers whenever the hook runs again."""
    return np.random.default_rng(self.seed(stream, *keys))

  def outputs(self, indices: np.ndarray, augment: bool = False, stream: str = 'host_pass',
              keys: tuple[str, ...] = ('logits', 'features')) -> dict:
    """Inference-mode logits and/or features (`keys`) of training images, as numpy. augment=True
    uses the training transform, seeded by the named stream (as the SS-IL code base does for its
    class means and statistics); False the test transform. Ask only for what the hook uses: a
    10,000-way head's logits of a task's images are gigabytes."""
    return self._outputs(indices, augment, self.seed(stream), tuple(keys))
