"""EEIL, End-to-End Incremental Learning (Castro et al., ECCV 2018), as in the SS-IL code base.

Stage 1 (every task): iCaRL's loss (CE over all seen + task-wise KD, T = 2), CNN evaluation.
Stage 2 (t >= 1), balanced fine-tuning: a class-balanced set of k = min old-class memory size
images per seen class (old: the first k of each class's memory; new: the class's first k training
images), built before this task's memory update; teacher := the model after stage 1; the run's
optimizer at lr/10 for 3/4 of the epochs with the same schedule; loss = CE over all seen + T²·KL_bm
on the new classes' block only.
"""
import numpy as np

from cil_jax.losses import blockwise_kd, cross_entropy
from cil_jax.methods.base import LossInputs, Method, Phase, ce_phase, default_task_data, main_schedule
from cil_jax.methods.icarl import ce_kd_loss


def bft_loss(x: LossInputs, temperature: float):
  ce = cross_entropy(x.out['logits'], x.batch['label'], x.classes.seen).mean()
  kd = blockwise_kd(x.out['logits'], x.teacher['logits'], x.classes.new[None], temperature).mean()
  return ce + kd, {'ce': ce, 'kd': kd}


def balanced_set(memory_per_class: list, new_class_indices: list) -> tuple[np.ndarray, np.ndarray]:
  """(new part, old part): k = min old-class memory size images of every seen class."""
  k = min(len(m) for m in memory_per_class)
  old = np.concatenate([m[:k] for m in memory_per_class])
  new = np.concatenate([c[:k] for c in new_class_indices])
  return new, old


def with_balanced_set(ctx) -> dict:
  """Task data: {'train': (new data, memory)} plus, from task 1 on with a memory, the class-balanced
  set as 'balanced' (EEIL; also PODNet's and LUCIR's fine-tuning)."""
  data = default_task_data(ctx)
  if ctx.t > 0 and ctx.memory.size:
    data['balanced'] = balanced_set(ctx.memory.per_class(), ctx.new_classes())
  return data


def make(config) -> Method:
  opts = config.method
  temperature = float(opts.temperature)

  def stage1_loss(x):
    return ce_kd_loss(x, temperature)

  def stage2_loss(x):
    return bft_loss(x, temperature)

  def phases(t):
    if t == 0:
      return [ce_phase(config, t, name='base')]
    sched = main_schedule(config.train, t, lr_by_task=False)
    bft = dict(sched, lr=sched['lr'] * float(opts.bft_lr_factor),
               epochs=int(sched['epochs'] * float(opts.bft_epochs_factor)))
    return [Phase('train', stage1_loss, stream='mixed',
                  batch_size=config.train.batch_size, teacher='task_start', **sched),
            Phase('balanced_ft', stage2_loss, stream='mixed', data='balanced',
                  batch_size=config.train.batch_size, teacher='phase_start', **bft)]

  return Method('eeil', phases, task_data=with_balanced_set)
