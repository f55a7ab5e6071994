"""LUCIR, Learning a Unified Classifier Incrementally via Rebalancing (Hou et al., CVPR 2019), as in
the SS-IL code base (`--trainer rebalancing`).

Model: features without the last ReLU (model.last_relu=False) and the cosine head
(model.head='cosine': logits = η·cos(f, w_c), no bias, one learnable η initialised to 1, shared by
all classes; models/heads.py). A fresh SGD each task at the base lr, as the reference (the main
phase's own optimizer, train.momentum / weight_decay; the lr is not divided by t+1): the columns of
classes not yet imprinted are held still by masked updates, and a momentum buffer carried over from
earlier tasks would move them.

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

import functools

import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.methods.losses import NEG, cross_entropy, facil_kd, one_hot_bce, sigmoid_bce
from cil_jax.methods.api import LossInputs, Method, Optimizer, Phase, Step, default_task_data, masked_logits
from cil_jax.methods.shared import (main_phase, multi_softmax_scores, normalize_rows, seen_cross_entropy,
                                   with_balanced_set, with_head)
from cil_jax.methods.schedules import StepDecay
from cil_jax.models.precision import at_least_f32
from cil_jax.models.heads import l2_normalize

OPTIONS = {
    'form': 'ssil',                  # 'ssil': the SS-IL code base's LUCIR (imprinting; margin ranking on
                                     # logits / detached η); 'facil': FACIL's (no imprinting; margin
                                     # ranking on the unscaled cosines; validation loss = CE)
    'variant': 'lucir',              # lucir | sr | bsr | br2 (RethinkSoftmax's losses, lucir_loss)
    'sr_gamma': 0.1,                 # sr: weight γ of the per-head KD, times λ (the reference hard-codes 0.1)
    'feature_kd_split': 'per_old_task',  # bsr / br2: per_old_task | by_sample_task | reference
                                         # (feature_distillation)
    'multi_softmax': False,          # task-agnostic prediction from each task head's log-softmax (FACIL)
    'lambda_base': 10.0,             # less-forget weight λ_base; λ = λ_base·sqrt(old / new)
    'margin': 0.5,                   # margin ranking margin
    'k': 2,                          # hardest new-class negatives per old-class sample
    'class_balanced_finetuning': False,  # the paper's CBF stage (never called in the SS-IL code base)
    'cbf_epochs': 20,
    'cbf_lr': 0.01,
    'cbf_milestones': (10,),
    'imprint_augment': False,        # imprint from train-transform features (False: test transform)
}
CHOICES = {'form': ('ssil', 'facil'), 'variant': ('lucir', 'sr', 'bsr', 'br2'),
           'feature_kd_split': ('per_old_task', 'by_sample_task', 'reference')}
REQUIRES = {'model.head': 'cosine', 'model.last_relu': False}   # the cosine head, features without the last ReLU


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


def lucir_loss(x: LossInputs, lambda_base: float, margin: float, k: int, form: str = 'ssil',
               variant: str = 'lucir', sr_gamma: float = 0.1, feature_kd_split: str = 'per_old_task'):
  """CE over the seen classes; with a teacher, + λ·less-forget + margin ranking (+ the variant's terms).

  form 'ssil': the margin ranking's cosines are the logits over a detached η (the SS-IL code base);
  'facil': the head's unscaled cosines (FACIL's 'wosigma'), so it sends no gradient to η."""
  c = x.classes
  labels = x.batch['label']
  ce = cross_entropy(x.out['logits'], labels, c.seen).mean()
  if x.teacher is None:
    return ce, {'ce': ce}
  m, e = jnp.sum(c.old), jnp.sum(c.seen)
  lam = lambda_base * jnp.sqrt(m / jnp.maximum(e - m, 1))
  f, f_old = x.out['features'], x.teacher['features']
  lf = less_forget(f, f_old).mean()
  if form == 'facil':
    cos = x.out['cosine']
  else:  # the reference divides the η-scaled logits by η.data: the value is cos, the gradient reaches η
    cos = x.out['logits'] / jax.lax.stop_gradient(x.out['scale'])
  mr = margin_ranking(cos, labels, c.old, c.new, margin, k)
  loss = ce + lam * lf + mr
  metrics = {'ce': ce, 'less_forget': lf, 'margin_ranking': mr, 'lambda': lam}
  if variant == 'sr':   # RethinkSoftmax lucir-sr: γ·λ·Σ_i CE_{T=1} of the σ-scaled cosines per old head
    kd = facil_kd(x.out['logits'][:, None, :], x.teacher['logits'][:, None, :], c.old_blocks(), 1.0)
    kd = kd.sum(-1).mean()
    loss, metrics['kd_tasks'] = loss + sr_gamma * lam * kd, kd
  elif variant in ('bsr', 'br2'):  # per-old-task feature distillation (see feature_distillation)
    cos_part, bce_part = feature_distillation(f, f_old, labels, c, feature_kd_split)
    if variant == 'bsr':
      loss, metrics['less_forget_tasks'] = loss + lam * cos_part, cos_part
    loss, metrics['bce_features'] = loss + lam * bce_part, bce_part
    if variant == 'br2':  # BCE of σ(all seen σ·cos logits) against the one-hot label
      bcep = one_hot_bce(x.out['logits'], labels, c.seen)
      loss, metrics['bce_pred'] = loss + bcep, bcep
  return loss, metrics


def feature_distillation(f, f_old, labels, classes, split: str):
  """(Σ_i mean 1 − cos(f, f_old), Σ_i mean BCE(σ(f), σ(f_old))) over the old tasks i < t, each over
  task i's part of the batch. RethinkSoftmax's lucir-bsr / -br2 slice rows [i·B, (i+1)·B) of the
  B-row batch, which is the whole batch for i = 0 and empty (NaN) for i ≥ 1.
    per_old_task    every part is the whole batch (the one feature vector serves every head): the
                    reference's values at task 2, continued without NaN: t copies of each term
    by_sample_task  task i's part = the batch's samples of task i's classes (exemplars); a task
                    without samples in the batch adds 0, so without exemplars the terms vanish
    reference       what the reference's gradient is: the i = 0 terms over the whole batch only (an
                    empty slice's NaN mean has an empty gradient), at every task
  """
  cos_term = less_forget(f, f_old)                                           # [B]
  bce_term = sigmoid_bce(f, jax.nn.sigmoid(at_least_f32(f_old))).mean(-1)    # [B]: mean over features
  if split in ('per_old_task', 'reference'):
    t = classes.task.astype(cos_term.dtype) if split == 'per_old_task' else 1.0
    return t * cos_term.mean(), t * bce_term.mean()
  member = classes.old_blocks()[:, labels]                                   # [T, B]: sample in old task i
  n = jnp.maximum(jnp.sum(member, -1), 1)
  part = lambda v: jnp.sum(jnp.sum(jnp.where(member, v[None], 0.0), -1) / n)  # noqa: E731
  return part(cos_term), part(bce_term)


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

def imprint_new_classes(ctx, augment: bool):
  """Task start (t >= 1): the new classes' weight columns imprinted from their features (imprint)."""
  params = ctx.state.params
  if ctx.t == 0:
    return params, ctx.method_state
  weight = np.asarray(jax.device_get(params['model']['head']['weight']))
  idx = ctx.new_indices()
  feats = ctx.outputs(idx, augment=augment, stream='imprint', keys=('features',))['features']
  weight = imprint(weight, feats, ctx.train_labels[idx], ctx.tasks.start(ctx.t), ctx.tasks.end(ctx.t))
  return with_head(params, weight=jnp.asarray(weight)), ctx.method_state


def make(config) -> Method:
  opts = config.method
  if int(opts.k) < 1:
    raise ValueError(f'method.k={opts.k} must be >= 1 (hard negatives per old-class sample)')
  if float(opts.sr_gamma) < 0:
    raise ValueError(f'method.sr_gamma={opts.sr_gamma} must be >= 0')
  cbf = bool(opts.class_balanced_finetuning) and int(config.memory.size) > 0 and int(opts.cbf_epochs) > 0
  if cbf and opts.form == 'facil':
    raise ValueError('method.class_balanced_finetuning is not part of FACIL\'s LUCIR (form=facil); drop one')
  loss = functools.partial(lucir_loss, lambda_base=float(opts.lambda_base), margin=float(opts.margin), k=int(opts.k),
                           form=opts.form, variant=opts.variant, sr_gamma=float(opts.sr_gamma),
                           feature_kd_split=opts.feature_kd_split)
  # the run's optimizer, fresh each task (the module docstring)
  optimizer = Optimizer.of_train_config(config.train)
  # FACIL's eval passes no reference model, so its validation loss (patience) is the CE alone
  validation_step = Step(seen_cross_entropy)

  def phases(t):
    main = main_phase('train' if t else 'base', Step(loss, teacher='task_start' if t else None,
                                                     trainable=main_trainable, optimizer=optimizer), config, t,
                      validation_step=validation_step)
    if t == 0 or not cbf:
      return [main]
    ft_step = Step(seen_cross_entropy, trainable=cbf_trainable,
                   optimizer=Optimizer(momentum=0.0, weight_decay=float(config.train.weight_decay)))
    ft_sched = StepDecay(lr0=float(opts.cbf_lr), epochs=int(opts.cbf_epochs),
                         milestones=tuple(int(v) for v in opts.cbf_milestones), gamma=0.1)
    return [main, Phase('balanced_ft', ft_step, ft_sched, stream='mixed', data='balanced',
                        batch_size=config.train.batch_size)]

  # FACIL's LUCIR does not imprint (its comment: left out on purpose)
  before_task = None if opts.form == 'facil' else functools.partial(imprint_new_classes,
                                                                    augment=bool(opts.imprint_augment))
  return Method('lucir', phases, task_data=with_balanced_set if cbf else default_task_data, before_task=before_task,
                predict=multi_softmax_scores if opts.multi_softmax else masked_logits)
