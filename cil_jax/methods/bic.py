"""BiC, Bias Correction (Wu et al., CVPR 2019), as in the SS-IL code base.

Training (t >= 1): λ = m/e; loss = λ·KL_bm(softmax(ẑ'_O/T) ‖ softmax(z_O/T)) (no T²) + (1−λ)·CE over
all seen, where ẑ' are the teacher's logits with the previous task's bias layer applied to its
newest classes. A held-out set of 20 % of the memory (half from it: the last entries of each old class's
memory; half from the new classes' training data) is removed from training and then trains a new
two-scalar bias layer q = α·z + β on the newest task's logits: backbone frozen in inference mode,
CE, plain SGD (no momentum, no weight decay) at lr/100 for 2x the epochs, ×gamma after epochs
2·milestone (the reference decays after the epoch numbered 2·milestone). Evaluation applies the
newest bias layer. Bias layers are method parameters [T, 2] (α, β), initialised to (1, 0); the
main phases leave them alone (the reference gives each bias layer its own optimizer, so the main
optimizer's weight decay never shrinks it before its bias stage).

Held-out set, as the reference's loader: its size is 20 % of the memory actually held (not of M);
each half is split evenly over the classes of that half, and the remainder of the memory half is
taken one exemplar each from the largest old classes (highest label first among equals).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.methods.losses import NEG, blockwise_kd, cross_entropy
from cil_jax.methods.api import LossInputs, Method, Optimizer, Phase, Step, default_task_data
from cil_jax.methods.shared import ce_phase, step_schedule
from cil_jax.methods.schedules import StepDecay

OPTIONS = {
    'temperature': 2.0,
    'heldout_fraction': 0.2,         # share of the memory held out to train the bias layer
}


def apply_bias(logits, bias, block):
  """α·z + β on the classes of `block` (bool [C]); bias = (α, β)."""
  return jnp.where(block, bias[0] * logits + bias[1], logits)


def bic_loss(x: LossInputs, temperature: float):
  c = x.classes
  prev_block = c.blocks[jnp.maximum(c.task - 1, 0)]
  teacher = apply_bias(x.teacher['logits'], x.teacher_params['method']['bias'][c.task - 1], prev_block)
  lam = jnp.sum(c.old) / jnp.sum(c.seen)
  kd = blockwise_kd(x.out['logits'], teacher, c.old[None], temperature).mean() / temperature ** 2
  ce = cross_entropy(x.out['logits'], x.batch['label'], c.seen).mean()
  return lam * kd + (1 - lam) * ce, {'ce': ce, 'kd': kd}


def bias_loss(x: LossInputs):
  c = x.classes
  z = apply_bias(x.out['logits'], x.params['method']['bias'][c.task], c.new)
  ce = cross_entropy(z, x.batch['label'], c.seen).mean()
  return ce, {'ce': ce}


def predict(outputs, params, state, classes):
  del state
  z = apply_bias(outputs['logits'], params['method']['bias'][classes.task], classes.new)
  return jnp.where(classes.seen, z, NEG)


def model_only(params, classes):
  """Trainable mask of the main phases: the network; the bias layers get no gradient and no decay."""
  del classes
  return {'model': jax.tree.map(lambda _: True, params['model']), 'method': {'bias': False}}


def only_bias(params, classes):
  """Trainable mask: the bias layers only (the backbone gets no gradient at all). Only the current
  task's row moves: the gradient reaches no other row, and plain SGD has no momentum to carry."""
  del classes
  return {'model': jax.tree.map(lambda _: False, params['model']), 'method': {'bias': True}}


def heldout_split(memory_per_class: list, new_class_indices: list, fraction: float):
  """(train new, train memory, held-out new, held-out memory), as the reference's loader.

  size = fraction · (exemplars held), half of it from the memory and half from the new classes.
  Memory: per old class its last `half // n_old` entries, then one more (its last remaining) from each
  of the `half mod n_old` largest classes. New classes: per class its last `half // n_new` images.
  """
  sizes = np.array([len(m) for m in memory_per_class], np.int64)
  half = int(sizes.sum() * fraction + 1e-9) // 2
  keep = np.maximum(sizes - half // max(len(sizes), 1), 0)
  extra = half - int(np.sum(sizes - keep))
  order = np.lexsort((-np.arange(len(keep)), -keep))   # largest first, then highest label
  keep[order[:max(extra, 0)]] -= 1
  keep = np.maximum(keep, 0)
  per_new = half // len(new_class_indices)
  keep_mem = [m[:k] for m, k in zip(memory_per_class, keep)]
  val_mem = [m[k:] for m, k in zip(memory_per_class, keep)]
  keep_new = [c[:max(len(c) - per_new, 0)] for c in new_class_indices]
  val_new = [c[max(len(c) - per_new, 0):] for c in new_class_indices]
  cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)  # noqa: E731
  return cat(keep_new), cat(keep_mem), cat(val_new), cat(val_mem)


def make(config) -> Method:
  opts = config.method
  loss = functools.partial(bic_loss, temperature=float(opts.temperature))

  def phases(t):
    if t == 0:
      return [ce_phase(config, t, name='base', trainable=model_only)]
    sched = step_schedule(config.train, t, lr_by_task=False, method='BiC')
    bias_sched = StepDecay(lr0=sched.lr0 / 100, epochs=2 * sched.epochs, gamma=sched.gamma,
                           milestones=tuple(2 * m + 1 for m in sched.milestones))
    bias_step = Step(bias_loss, bn_train=False, trainable=only_bias, optimizer=Optimizer(momentum=0.0, weight_decay=0.0))
    return [Phase('train', Step(loss, teacher='task_start', trainable=model_only), sched, stream='mixed',
                  batch_size=config.train.batch_size),
            Phase('bias_correction', bias_step, bias_sched, stream='mixed', data='heldout',
                  batch_size=config.train.batch_size)]

  def task_data(ctx):
    if ctx.t == 0 or not ctx.memory.size:
      return default_task_data(ctx)
    new, mem, val_new, val_mem = heldout_split(ctx.memory.per_class(), ctx.new_classes(),
                                               float(opts.heldout_fraction))
    return {'train': (new, mem), 'heldout': (val_new, val_mem)}

  return Method('bic', phases, predict=predict, task_data=task_data,
                init_params=lambda c, t: {'bias': jnp.tile(jnp.array([[1.0, 0.0]]), (t, 1))})  # default float
