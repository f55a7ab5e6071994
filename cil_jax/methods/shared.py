"""Pieces several methods share, so that no method imports another: the main phase of the SS-IL
code base's trainers, CE and CE + task-wise KD losses, the class-balanced set, nearest-class-mean
evaluation, head surgery."""
from __future__ import annotations

import numpy as np
import jax.numpy as jnp

from cil_jax.losses import NEG, at_least_f32, blockwise_kd, cross_entropy
from cil_jax.methods.api import LossInputs, Phase, Step, default_task_data
from cil_jax.models.heads import l2_normalize
from cil_jax.schedules import StepDecay


# --- the main phase ----------------------------------------------------------------------------

def main_schedule(train_cfg, task: int, lr_by_task: bool) -> StepDecay:
  """The step decay of a task's main phase, with the reference's `--factor` and lr/(t+1).

  factor F divides epochs and milestones by F from task 1 on (integer division, as the reference).
  """
  f = int(train_cfg.factor) if task >= 1 else 1
  lr = train_cfg.lr / (task + 1) if lr_by_task else train_cfg.lr
  return StepDecay(lr0=float(lr), epochs=int(train_cfg.epochs) // f,
                   milestones=tuple(int(m) // f for m in train_cfg.milestones), gamma=float(train_cfg.gamma))


def ce_phase(config, task: int, stream: str = 'mixed', lr_by_task: bool = False, name: str = 'train',
             **step_options) -> Phase:
  """A main phase with plain CE over the seen classes: task 0 of most methods, FT, joint."""
  return Phase(name, Step(seen_cross_entropy, **step_options), main_schedule(config.train, task, lr_by_task),
               stream=stream, batch_size=config.train.batch_size)


# --- losses ------------------------------------------------------------------------------------

def seen_cross_entropy(x: LossInputs):
  """CE over all seen classes, batch mean: the task-0 loss of most methods and FT's loss."""
  ce = cross_entropy(x.out['logits'], x.batch['label'], x.classes.seen).mean()
  return ce, {'ce': ce}


def ce_kd_loss(x: LossInputs, temperature: float):
  """CE over all seen classes + task-wise KD over the old task blocks (iCaRL and EEIL stage 1)."""
  ce = cross_entropy(x.out['logits'], x.batch['label'], x.classes.seen).mean()
  kd = blockwise_kd(x.out['logits'], x.teacher['logits'], x.classes.old_blocks(), temperature).mean()
  return ce + kd, {'ce': ce, 'kd': kd}


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
  feats = ctx.outputs(idx, augment=augment)['features']
  means = class_means(feats, ctx.train_labels[idx], ctx.tasks.num_classes)
  dtype = ctx.method_state['class_means'].dtype
  return dict(ctx.method_state, class_means=jnp.asarray(means, dtype))


def nme_options(augment: bool) -> dict:
  """The Method fields of NME evaluation: predict, the class-means hook and their state."""
  return dict(predict=nme_scores, after_task=lambda ctx: update_class_means(ctx, augment),
              init_state=lambda c, t, d: {'class_means': jnp.zeros((c, d))})  # default float: f64 under x64


# --- head surgery ------------------------------------------------------------------------------

def with_head(params: dict, **arrays) -> dict:
  """params with some of the head's arrays replaced (imprinted weights, proxies, scale)."""
  head = dict(params['model']['head'], **arrays)
  return dict(params, model=dict(params['model'], head=head))
