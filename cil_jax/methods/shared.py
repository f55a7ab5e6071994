"""Pieces several methods share, so that no method imports another: the main phase of the SS-IL
code base's trainers, CE and CE + task-wise KD losses, the class-balanced set, nearest-class-mean
evaluation, head surgery."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.methods.losses import NEG, blockwise_kd, cross_entropy, masked_log_softmax, one_hot_bce
from cil_jax.methods.api import LossInputs, Phase, Step, default_task_data
from cil_jax.models.precision import at_least_f32
from cil_jax.models.heads import l2_normalize
from cil_jax.methods.schedules import Patience, Schedule, StepDecay


# --- the main phase ----------------------------------------------------------------------------

def main_schedule(train_cfg, task: int, lr_by_task: bool) -> Schedule:
  """The schedule of a task's main phase (train.schedule), at lr train.lr, or lr/(t+1) with lr_by_task.

  step:     step decay with the reference's `--factor`: from task 1 on, epochs and milestones are
            divided by F (integer division, as the reference).
  patience: FACIL's (schedules.Patience): at most train.epochs epochs, lr /= lr_factor after
            lr_patience epochs without a lower validation loss, stop under lr_min.
  """
  lr = train_cfg.lr / (task + 1) if lr_by_task else train_cfg.lr
  if train_cfg.schedule == 'patience':
    return Patience(lr0=float(lr), epochs=int(train_cfg.epochs), lr_factor=float(train_cfg.lr_factor),
                    lr_patience=int(train_cfg.lr_patience), lr_min=float(train_cfg.lr_min))
  return step_schedule(train_cfg, task, lr_by_task)


def step_schedule(train_cfg, task: int, lr_by_task: bool, method: str = '') -> StepDecay:
  """The step decay of main_schedule, for methods that derive later phases from its milestones."""
  if train_cfg.schedule != 'step':
    raise ValueError(f'{method} derives its later phases from the step schedule\'s epochs and milestones; '
                     'it takes train.schedule=step only')
  f = int(train_cfg.factor) if task >= 1 else 1
  lr = train_cfg.lr / (task + 1) if lr_by_task else train_cfg.lr
  return StepDecay(lr0=float(lr), epochs=int(train_cfg.epochs) // f,
                   milestones=tuple(int(m) // f for m in train_cfg.milestones), gamma=float(train_cfg.gamma))


def main_phase(name: str, step: Step, config, task: int, stream: str = 'mixed', lr_by_task: bool = False,
               **phase_options) -> Phase:
  """A task's main phase: main_schedule, the train batch size, and the held-out validation set when
  the schedule reacts to it."""
  sched = main_schedule(config.train, task, lr_by_task)
  return Phase(name, step, sched, stream=stream, batch_size=config.train.batch_size,
               validation='validation' if sched.needs_validation else None, **phase_options)


def ce_phase(config, task: int, stream: str = 'mixed', lr_by_task: bool = False, name: str = 'train',
             **step_options) -> Phase:
  """A main phase with plain CE over the seen classes: task 0 of most methods, FT, joint."""
  return main_phase(name, Step(seen_cross_entropy, **step_options), config, task, stream, lr_by_task)


# --- losses ------------------------------------------------------------------------------------

def seen_cross_entropy(x: LossInputs):
  """CE over all seen classes, batch mean: the task-0 loss of most methods and FT's loss."""
  ce = cross_entropy(x.out['logits'], x.batch['label'], x.classes.seen).mean()
  return ce, {'ce': ce}


def ce_kd_loss(x: LossInputs, temperature: float, kd: str = 'taskwise', pred_loss: str = 'ce'):
  """Prediction loss over all seen classes + KD (T²·KL, softmax at T) from the teacher: iCaRL and
  EEIL stage 1. The SS-IL code base's form is the default: CE + task-wise KD (one softmax per old
  task block). IIL-CLSF's two ideas as options: kd = 'joint' (one softmax over all old classes),
  'both' (the sum); pred_loss = 'bce' (sigmoid BCE against the one-hot label, mean over batch × seen
  classes, shift-sensitive), 'ce+bce'."""
  z, y, c = x.out['logits'], x.batch['label'], x.classes
  loss, metrics = 0.0, {}
  if pred_loss in ('ce', 'ce+bce'):
    metrics['ce'] = cross_entropy(z, y, c.seen).mean()
    loss = metrics['ce']
  if pred_loss in ('bce', 'ce+bce'):
    metrics['bce'] = one_hot_bce(z, y, c.seen)
    loss = loss + metrics['bce']
  if kd in ('taskwise', 'both'):
    metrics['kd'] = blockwise_kd(z, x.teacher['logits'], c.old_blocks(), temperature).mean()
    loss = loss + metrics['kd']
  if kd in ('joint', 'both'):
    metrics['kd_joint'] = blockwise_kd(z, x.teacher['logits'], c.old[None], temperature).mean()
    loss = loss + metrics['kd_joint']
  return loss, metrics


# --- the class-balanced set (EEIL; LUCIR's and PODNet's fine-tuning) ----------------------------

def balanced_set(memory_per_class: list, new_class_indices: list) -> tuple[np.ndarray, np.ndarray]:
  """(new part, old part): k = min old-class memory size images of every seen class."""
  k = min(len(m) for m in memory_per_class)
  old = np.concatenate([m[:k] for m in memory_per_class])
  new = np.concatenate([c[:k] for c in new_class_indices])
  return new, old


def with_balanced_set(ctx) -> dict:
  """Task data: {'train': (new data, memory)} plus, from task 1 on with a memory, the class-balanced
  set as 'balanced'."""
  data = default_task_data(ctx)
  if ctx.t > 0 and ctx.memory.size:
    data['balanced'] = balanced_set(ctx.memory.per_class(), ctx.new_classes())
  return data


# --- nearest class mean (iCaRL; PODNet's option) -----------------------------------------------

def normalize_rows(f):
  return f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)


def class_means(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
  """μ_c = mean of the L2-normalised features of class c (zeros for classes without samples), summed
  in float64, returned in the features' dtype (at least float32)."""
  f = normalize_rows(at_least_f32(np.asarray(features)))
  sums = np.zeros((num_classes, f.shape[1]), np.float64)
  np.add.at(sums, labels, f)
  counts = np.bincount(labels, minlength=num_classes)[:, None]
  return (sums / np.maximum(counts, 1)).astype(f.dtype)


def nme_scores(outputs, params, state, classes):
  """−‖f̂ − μ_c‖² over the seen classes."""
  del params
  f = l2_normalize(outputs['features'])
  mu = state['class_means']
  d = jnp.sum(f * f, -1, keepdims=True) - 2 * f @ mu.T + jnp.sum(mu * mu, -1)[None]
  return jnp.where(classes.seen, -d, NEG)


def update_class_means(ctx, augment: bool) -> dict:
  """Means over the new classes' training images + the old classes' exemplars (before the memory
  update); old-class means are recomputed with the current model too. Stored in the dtype the state
  was created with (init_state), so it stays fixed for the run."""
  idx = np.concatenate([ctx.new_indices(), ctx.memory.indices])
  feats = ctx.outputs(idx, augment=augment, keys=('features',))['features']
  means = class_means(feats, ctx.train_labels[idx], ctx.tasks.num_classes)
  dtype = ctx.method_state['class_means'].dtype
  return dict(ctx.method_state, class_means=jnp.asarray(means, dtype))


def nme_options(augment: bool) -> dict:
  """The Method fields of NME evaluation: predict, the class-means hook and their state."""
  return dict(predict=nme_scores, after_task=lambda ctx: update_class_means(ctx, augment),
              init_state=lambda c, t, d: {'class_means': jnp.zeros((c, d))})  # default float: f64 under x64


# --- FACIL's multi-head network: per-task column blocks of the one head ------------------------

def head_columns_trainable(columns: str):
  """A trainable mask: the backbone and the head's scalars (a cosine head's scale) train, the head's
  class columns only for the classes `columns` names ('new': the current task's head, FACIL's
  optimizer without exemplars; 'seen': every head so far). Future classes' columns stay still."""
  def trainable(params, classes):
    cols = getattr(classes, columns).astype(jnp.float32)
    mask = jax.tree.map(lambda _: True, params)
    mask['model']['head'] = jax.tree.map(lambda p: cols if p.ndim and p.shape[-1] == cols.shape[0] else True,
                                         params['model']['head'])
    return mask
  return trainable


def multi_softmax_scores(outputs, params, state, classes):
  """FACIL's multi_softmax: each seen task head's log-softmax, concatenated (argmax = task-agnostic
  prediction; within a head the order is that of the logits)."""
  del params, state
  blocks = classes.blocks & classes.seen[None]                           # [T, C]
  per_head = masked_log_softmax(outputs['logits'][:, None, :], blocks[None])   # [B, T, C]: 0 off-block
  return jnp.where(classes.seen, jnp.sum(per_head, axis=1), NEG)


# --- head surgery ------------------------------------------------------------------------------

def with_head(params: dict, **arrays) -> dict:
  """params with some of the head's arrays replaced (imprinted weights, proxies, scale)."""
  head = dict(params['model']['head'], **arrays)
  return dict(params, model=dict(params['model'], head=head))
