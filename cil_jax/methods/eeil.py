"""EEIL, End-to-End Incremental Learning (Castro et al., ECCV 2018), as in the SS-IL code base.

Stage 1 (every task): iCaRL's loss (CE over all seen + task-wise KD, T = 2), CNN evaluation.
Stage 2 (t >= 1), balanced fine-tuning: a class-balanced set of k = min old-class memory size
images per seen class (old: the first k of each class's memory; new: the class's first k training
images), built before this task's memory update; teacher := the model after stage 1; the run's
optimizer at lr/10 for 3/4 of the epochs with the same schedule; loss = CE over all seen + T²·KL_bm
on the new classes' block only.
"""
import dataclasses
import functools

from cil_jax.methods.losses import blockwise_kd, cross_entropy
from cil_jax.methods.api import LossInputs, Method, Phase, Step
from cil_jax.methods.shared import ce_kd_loss, ce_phase, step_schedule, with_balanced_set

OPTIONS = {
    'temperature': 2.0,
    'kd': 'taskwise',                # stage 1: taskwise (SS-IL code base) | joint | both (IIL-CLSF's idea)
    'pred_loss': 'ce',               # stage 1: ce | bce (sigmoid, one-hot) | ce+bce (IIL-CLSF's idea)
    'bft_lr_factor': 0.1,            # balanced fine-tuning lr = main lr x this
    'bft_epochs_factor': 0.75,       # balanced fine-tuning epochs (and milestones) = main x this
}
CHOICES = {'kd': ('taskwise', 'joint', 'both'), 'pred_loss': ('ce', 'bce', 'ce+bce')}   # as iCaRL's (shared.ce_kd_loss)


def bft_loss(x: LossInputs, temperature: float):
  ce = cross_entropy(x.out['logits'], x.batch['label'], x.classes.seen).mean()
  kd = blockwise_kd(x.out['logits'], x.teacher['logits'], x.classes.new[None], temperature).mean()
  return ce + kd, {'ce': ce, 'kd': kd}


def make(config) -> Method:
  opts = config.method
  stage1_loss = functools.partial(ce_kd_loss, temperature=float(opts.temperature), kd=opts.kd,
                                  pred_loss=opts.pred_loss)
  stage2_loss = functools.partial(bft_loss, temperature=float(opts.temperature))

  def phases(t):
    if t == 0:
      return [ce_phase(config, t, name='base')]
    sched = step_schedule(config.train, t, lr_by_task=False, method='EEIL')
    bft = dataclasses.replace(sched, lr0=sched.lr0 * float(opts.bft_lr_factor),
                              epochs=int(sched.epochs * float(opts.bft_epochs_factor)))
    return [Phase('train', Step(stage1_loss, teacher='task_start'), sched, stream='mixed',
                  batch_size=config.train.batch_size),
            Phase('balanced_ft', Step(stage2_loss, teacher='phase_start'), bft, stream='mixed', data='balanced',
                  batch_size=config.train.batch_size)]

  return Method('eeil', phases, task_data=with_balanced_set)
