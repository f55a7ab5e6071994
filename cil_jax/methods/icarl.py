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

from cil_jax.methods.api import LossInputs, Method, Step
from cil_jax.methods.shared import ce_kd_loss, main_phase, nme_options, seen_cross_entropy

OPTIONS = {
    'temperature': 2.0,
    'variant': 'ssil',               # 'ssil': CE + task-wise KD (SS-IL code base); 'original': sigmoid BCE
    'kd': 'taskwise',                # variant ssil: taskwise (SS-IL code base) | joint | both (IIL-CLSF's idea)
    'pred_loss': 'ce',               # variant ssil: ce | bce (sigmoid, one-hot) | ce+bce (IIL-CLSF's idea)
    'nme': True,                     # evaluate by nearest class mean (False: the CNN head)
    'nme_augment': True,             # class means on train-transform images (the SS-IL code base)
}
CHOICES = {'variant': ('ssil', 'original'), 'kd': ('taskwise', 'joint', 'both'), 'pred_loss': ('ce', 'bce', 'ce+bce')}


def bce_loss(x: LossInputs):
  """Original iCaRL: mean BCE over (batch x seen classes), old-class targets = teacher sigmoids."""
  z = x.out['logits']
  target = jax.nn.one_hot(x.batch['label'], z.shape[-1])
  if x.teacher is not None:
    target = jnp.where(x.classes.old, jax.nn.sigmoid(x.teacher['logits']), target)
  per = jnp.maximum(z, 0) - z * target + jnp.log1p(jnp.exp(-jnp.abs(z)))  # stable BCE with logits
  bce = jnp.sum(jnp.where(x.classes.seen, per, 0.0)) / (z.shape[0] * jnp.sum(x.classes.seen))
  return bce, {'bce': bce}


def make(config) -> Method:
  opts = config.method
  temperature = float(opts.temperature)
  if opts.variant == 'original' and (opts.kd, opts.pred_loss) != ('taskwise', 'ce'):
    raise ValueError("method.kd / method.pred_loss apply to variant='ssil' (the original iCaRL has its own BCE)")
  kd, pred_loss = opts.kd, opts.pred_loss
  loss = bce_loss if opts.variant == 'original' else (lambda x: ce_kd_loss(x, temperature, kd, pred_loss))
  first_loss = bce_loss if opts.variant == 'original' else seen_cross_entropy

  def phases(t):
    if t == 0:
      return [main_phase('base', Step(first_loss), config, t)]
    return [main_phase('train', Step(loss, teacher='task_start'), config, t)]

  if not opts.nme:
    return Method('icarl', phases)
  return Method('icarl', phases, **nme_options(bool(opts.nme_augment)))
