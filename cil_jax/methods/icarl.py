"""iCaRL (Rebuffi et al., CVPR 2017), as in the SS-IL code base, and the original as an option.

variant='ssil' (default, the SS-IL code base's trainer): CE over all seen classes + task-wise KD
  Σ_{s<t} T²·KL_bm per old task block (the same form as SS-IL's, T = 2) on the mixed stream.
variant='original': sigmoid BCE over all seen classes; targets are one-hot for the labels, replaced
  by the teacher's sigmoid outputs on the old classes (use memory.selection='herding' with it).
Evaluation by nearest class mean (NME): μ_c = mean of L2-normalised features (inference mode) over
all new-class training images and the old classes' exemplars, not re-normalised; score −‖f̂ − μ_c‖².
The SS-IL code base computes the means on augmented images (train transform): nme_augment=True;
False uses the test transform, as the original paper.

Deviation: the reference cuts its KD blocks every `step` classes from 0 (right only when base =
step); the true task boundaries are used here.
"""
import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.losses import NEG, at_least_f32, blockwise_kd, cross_entropy
from cil_jax.methods.base import LossInputs, Method, Phase, main_schedule, seen_cross_entropy
from cil_jax.models.heads import l2_normalize


def ce_kd_loss(x: LossInputs, temperature: float):
  """CE over all seen classes + task-wise KD over the old task blocks (iCaRL and EEIL stage 1)."""
  ce = cross_entropy(x.out['logits'], x.batch['label'], x.classes.seen).mean()
  kd = blockwise_kd(x.out['logits'], x.teacher['logits'], x.classes.old_blocks(), temperature).mean()
  return ce + kd, {'ce': ce, 'kd': kd}


def bce_loss(x: LossInputs):
  """Original iCaRL: mean BCE over (batch x seen classes), old-class targets = teacher sigmoids."""
  z = x.out['logits']
  target = jax.nn.one_hot(x.batch['label'], z.shape[-1])
  if x.teacher is not None:
    target = jnp.where(x.classes.old, jax.nn.sigmoid(x.teacher['logits']), target)
  per = jnp.maximum(z, 0) - z * target + jnp.log1p(jnp.exp(-jnp.abs(z)))  # stable BCE with logits
  bce = jnp.sum(jnp.where(x.classes.seen, per, 0.0)) / (z.shape[0] * jnp.sum(x.classes.seen))
  return bce, {'bce': bce}


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


def make(config) -> Method:
  opts = config.method
  if opts.variant not in ('ssil', 'original'):
    raise ValueError(f"method.variant={opts.variant!r} is unknown; choose 'ssil' or 'original'")
  temperature = float(opts.temperature)
  loss = bce_loss if opts.variant == 'original' else (lambda x: ce_kd_loss(x, temperature))
  first_loss = bce_loss if opts.variant == 'original' else seen_cross_entropy

  def phases(t):
    sched = main_schedule(config.train, t, lr_by_task=False)
    if t == 0:
      return [Phase('base', first_loss, stream='mixed', batch_size=config.train.batch_size, **sched)]
    return [Phase('train', loss, stream='mixed', batch_size=config.train.batch_size, teacher='task_start',
                  **sched)]

  if not opts.nme:
    return Method('icarl', phases)
  return Method('icarl', phases, predict=nme_scores,
                after_task=lambda ctx: update_class_means(ctx, bool(opts.nme_augment)),
                init_state=lambda c, t, d: {'class_means': jnp.zeros((c, d))})  # default float: f64 under x64
