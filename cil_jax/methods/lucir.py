"""LUCIR, Learning a Unified Classifier Incrementally via Rebalancing (Hou et al., CVPR 2019), as in
the SS-IL code base (`--trainer rebalancing`).

Model: features without the last ReLU (model.last_relu=False) and the cosine head
(model.head='cosine': logits = η·cos(f, w_c), no bias, one learnable η initialised to 1, shared by
all classes; models/heads.py). A fresh SGD each task at the base lr (train.reset_optimizer_each_task
=True in configs/lucir_*.py; the lr is not divided by t+1).

Task 0: CE over the seen classes on η·cos.
Task start (t >= 1): new-class weight columns are imprinted: w_c = normalise(mean_i f̂_i)·mean_{o<m} ‖w_o‖,
  the mean of the L2-normalised features (inference mode) of class c's training images, scaled to the
  mean norm of the old columns. η carries over.
Main phase (t >= 1; teacher = the model at the task start, inference mode, same augmented batch):
  loss = CE(η·cos over the seen classes)
       + λ · mean_i (1 − cos(f_i, f_old_i))                    less-forget, λ = λ_base·sqrt(m/(e−m))
       + mean over pairs max(0, margin − cos_iy + cos_ik)     margin ranking
  m old and e seen classes. Margin ranking: for each sample i of an old class, its K hardest new-class
  cosines cos_ik (top-K over the new classes) against its true-class cosine; the mean runs over the
  n_old·K pairs (PyTorch MarginRankingLoss as the reference calls it), 0 without old samples. As the
  reference, the cosines fed to it are the logits divided by a detached η (value cos, but gradient
  reaches η through this term too: d/dη = cos/η).
  Old-class columns are frozen: lr 0 and wd 0 (an update multiplier of 0 on their columns); the
  new columns, η and the backbone train.
Class-balanced fine-tuning (option class_balanced_finetuning, off as in the SS-IL table: the reference
  defines it but never calls it): t >= 1 with memory, after the main phase, on EEIL's balanced set
  (k = min old-class memory size images per seen class); head weight columns of all seen classes only
  (old ones unfrozen; η and the backbone frozen; BatchNorm in train mode, its statistics keep
  updating, as the reference's model.train()); CE over the seen classes; plain SGD (no momentum,
  wd as train.weight_decay) lr cbf_lr = 0.01, ×0.1 at cbf_milestones = (10,), cbf_epochs = 20.
Evaluation: argmax of η·cos over the seen classes (CNN).

Deviations from the reference:
- Imprinting uses the new classes' *training* images; the reference's loader is left in its test
  mode at that point and imprints from the new classes' test images (a leak of the test set).
  The test transform (no augmentation) is used by default, as the reference's test-mode loader and
  the original LUCIR code; imprint_augment=True uses the train transform.
- The head is sized for all classes from the start (fixed shapes); the columns of future classes are
  held still (lr 0, wd 0) until their task imprints them; the reference creates them at their task.
  They take no part in any loss, so training is the same.
- With fewer new classes than K, the margin ranking uses all of them (the reference's topk fails).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.losses import NEG, at_least_f32, cross_entropy
from cil_jax.methods.api import LossInputs, Method, Optimizer, Phase, Step, default_task_data
from cil_jax.methods.shared import main_schedule, normalize_rows, seen_cross_entropy, with_balanced_set, with_head
from cil_jax.schedules import StepDecay
from cil_jax.models.heads import l2_normalize


# --- losses ------------------------------------------------------------------------------------

def less_forget(features, old_features):
  """Per-sample 1 − cos(f, f_old) (CosineEmbeddingLoss with target 1, before its batch mean)."""
  f, g = l2_normalize(at_least_f32(features)), l2_normalize(at_least_f32(old_features))
  return 1.0 - jnp.sum(f * g, axis=-1)


def margin_ranking(cos, labels, old, new, margin: float, k: int):
  """Mean over the (old-class sample, hard negative) pairs of max(0, margin − cos_y + cos_neg).

  cos [B, C]; old, new bool [C]. The negatives of a sample are its k largest new-class cosines
  (all new classes when there are fewer than k). 0 when the batch has no old-class sample.
  """
  k = min(k, cos.shape[-1])
  gt = jnp.take_along_axis(cos, labels[:, None], axis=-1)              # [B, 1]
  hard = jax.lax.top_k(jnp.where(new, cos, NEG), k)[0]                 # [B, k]
  valid = (hard > NEG / 2) & old[labels][:, None]                      # [B, k]
  hinge = jnp.where(valid, jnp.maximum(0.0, margin - gt + hard), 0.0)
  return jnp.sum(hinge) / jnp.maximum(jnp.sum(valid), 1)


def lucir_loss(x: LossInputs, lambda_base: float, margin: float, k: int):
  """CE over the seen classes; with a teacher, + λ·less-forget + margin ranking."""
  c = x.classes
  labels = x.batch['label']
  ce = cross_entropy(x.out['logits'], labels, c.seen).mean()
  if x.teacher is None:
    return ce, {'ce': ce}
  m, e = jnp.sum(c.old), jnp.sum(c.seen)
  lam = lambda_base * jnp.sqrt(m / jnp.maximum(e - m, 1))
  lf = less_forget(x.out['features'], x.teacher['features']).mean()
  # the reference divides the η-scaled logits by η.data: the value is cos, the gradient reaches η
  cos = x.out['logits'] / jax.lax.stop_gradient(x.out['scale'])
  mr = margin_ranking(cos, labels, c.old, c.new, margin, k)
  return ce + lam * lf + mr, {'ce': ce, 'less_forget': lf, 'margin_ranking': mr, 'lambda': lam}


# --- trainable masks ---------------------------------------------------------------------------

def main_trainable(params, classes):
  """Everything trains except the weight columns of old (and future) classes: lr 0, wd 0."""
  mask = jax.tree.map(lambda _: True, params)
  mask['model']['head']['weight'] = classes.new.astype(jnp.float32)   # [C] over the [D, C] columns
  return mask


def cbf_trainable(params, classes):
  """Class-balanced fine-tuning: the weight columns of all seen classes; η and backbone frozen."""
  mask = jax.tree.map(lambda _: False, params)
  mask['model']['head']['weight'] = classes.seen.astype(jnp.float32)
  return mask


# --- imprinting --------------------------------------------------------------------------------

def imprint(weight: np.ndarray, features: np.ndarray, labels: np.ndarray, start: int, end: int) -> np.ndarray:
  """Weight [D, C] with columns [start, end) replaced by normalise(mean of the class's normalised
  features) · mean norm of the columns [0, start); other columns unchanged. Computed in float64,
  returned in the weight's dtype (at least float32)."""
  dtype = at_least_f32(np.asarray(weight)).dtype
  w = np.array(weight, np.float64, copy=True)
  if start == 0:
    raise ValueError('imprinting needs old classes (task >= 1)')
  norm = np.linalg.norm(w[:, :start], axis=0).mean()
  f = normalize_rows(np.asarray(features, np.float64))
  for c in range(start, end):
    sel = labels == c
    if not sel.any():
      raise ValueError(f'class {c} has no training image to imprint its weights from')
    mu = f[sel].mean(0)
    w[:, c] = mu / max(np.linalg.norm(mu), 1e-12) * norm
  return w.astype(dtype)


# --- the method --------------------------------------------------------------------------------

def make(config) -> Method:
  opts = config.method
  lambda_base, margin, k = float(opts.lambda_base), float(opts.margin), int(opts.k)
  if k < 1:
    raise ValueError(f'method.k={k} must be >= 1 (hard negatives per old-class sample)')
  cbf = bool(opts.class_balanced_finetuning) and int(config.memory.size) > 0 and int(opts.cbf_epochs) > 0

  def loss(x):
    return lucir_loss(x, lambda_base, margin, k)

  def phases(t):
    sched = main_schedule(config.train, t, lr_by_task=False)
    main = Phase('train' if t else 'base', Step(loss, teacher='task_start' if t else None, trainable=main_trainable),
                 sched, stream='mixed', batch_size=config.train.batch_size)
    if t == 0 or not cbf:
      return [main]
    ft_step = Step(seen_cross_entropy, trainable=cbf_trainable,
                   optimizer=Optimizer(momentum=0.0, weight_decay=float(config.train.weight_decay)))
    ft_sched = StepDecay(lr0=float(opts.cbf_lr), epochs=int(opts.cbf_epochs),
                         milestones=tuple(int(v) for v in opts.cbf_milestones), gamma=0.1)
    return [main, Phase('balanced_ft', ft_step, ft_sched, stream='mixed', data='balanced',
                        batch_size=config.train.batch_size)]

  def before_task(ctx):
    params = ctx.state.params
    if ctx.t == 0:
      return params, ctx.method_state
    weight = np.asarray(jax.device_get(params['model']['head']['weight']))
    idx = ctx.new_indices()
    feats = ctx.outputs(idx, augment=bool(opts.imprint_augment), stream='imprint')['features']
    weight = imprint(weight, feats, ctx.train_labels[idx], ctx.tasks.start(ctx.t), ctx.tasks.end(ctx.t))
    return with_head(params, weight=jnp.asarray(weight)), ctx.method_state

  return Method('lucir', phases, task_data=with_balanced_set if cbf else default_task_data, before_task=before_task)
