"""LwF, Learning without Forgetting (Li & Hoiem, 2016), as FACIL's approach/lwf.py, and the variants of
"Improving incremental learning: a closer look at the softmax function" (IIL-CLSF; code: the
RethinkSoftmax approaches lwf-s / -sr / -br / -br2 / -bsr on FACIL). `method.variant` picks the loss.

The network is FACIL's multi-head one: a head per task over global labels. Here that is the one
linear head over all classes, read in per-task column blocks (task t's head = the columns of its
classes): the same function and the same PyTorch initialisation, U(±1/sqrt(D)), whatever the head's
width. z_i are the current logits of task i's head, ẑ_i the frozen teacher's (the model after the
previous task, inference mode, on the same augmented batch), t the current task, λ = method.lamb,
T = method.temperature (FACIL: 1 and 2).

  KD(a, b)   = FACIL's cross_entropy(a, b, exp=1/T): softmax(·/T), eps 1e-5/C on the student, no T²
               (losses.facil_kd)
  KD_joint   = KD over the concatenation of all old heads;  KD_i = KD within old head i
  BCEd_i     = mean over batch × head-i columns of BCE(σ(z_i), σ(ẑ_i))   (no temperature)
  BCEp       = mean over batch × current-head columns of BCE(σ(z_t), one-hot(y − offset_t))
  CE         = CE(z_t, y − offset_t) on the current head; with exemplars CE over all heads

  variant | loss (sums over the old tasks i < t; the KD / BCEd terms from task 2 on)
  lwf     | λ·KD_joint + CE
  s       | λ·Σ KD_i + CE
  sr      | 0.5λ·KD_joint + λ·Σ KD_i + CE
  br      | λ·KD_joint + λ·Σ BCEd_i + CE
  br2     | λ·KD_joint + λ·Σ BCEd_i + CE + BCEp (BCEp also on task 1; not with exemplars, as the
          | reference returns before it)
  bsr     | λ·KD_joint + Σ (λ·KD_i + 0.5λ·BCEd_i) + CE

FACIL's training: a fresh optimizer each task, as FACIL builds one per task (the phase's own, with
train.momentum / weight_decay / clip_norm); without exemplars the old heads are left out of it (their
columns are frozen here: an update multiplier of 0); with exemplars (memory.size > 0, FACIL's --num-exemplars)
the exemplars join the task's data and every head trains. The phase runs the protocol's main
schedule (FACIL: patience on the held-out validation loss, whose loss is this one, KD included, as
FACIL's eval). Evaluation: task-agnostic = argmax over all seen heads (with multi_softmax, of each
head's log-softmax), task-aware = argmax within the sample's own head (metrics).
"""
from __future__ import annotations

import functools

from cil_jax.methods.losses import blockwise_bce_distillation, cross_entropy, facil_kd, one_hot_bce
from cil_jax.methods.api import LossInputs, Method, Optimizer, Step, masked_logits
from cil_jax.methods.shared import head_columns_trainable, main_phase, multi_softmax_scores

OPTIONS = {
    'variant': 'lwf',                # lwf | s | sr | br | br2 | bsr (the table above)
    'lamb': 1.0,                     # λ of the distillation terms
    'temperature': 2.0,              # T of the KD terms (FACIL: --T 2)
    'multi_softmax': False,          # task-agnostic prediction from each head's log-softmax (FACIL)
}
CHOICES = {'variant': ('lwf', 's', 'sr', 'br', 'br2', 'bsr')}

# variant -> (weight of KD_joint, of Σ KD_i, of Σ BCEd_i), in units of λ; and whether BCEp is added
WEIGHTS = {'lwf': (1.0, 0.0, 0.0), 's': (0.0, 1.0, 0.0), 'sr': (0.5, 1.0, 0.0), 'br': (1.0, 0.0, 1.0),
           'br2': (1.0, 0.0, 1.0), 'bsr': (1.0, 1.0, 0.5)}


def lwf_loss(x: LossInputs, variant: str, lamb: float, temperature: float, with_exemplars: bool):
  """The variant's loss (module docstring); `with_exemplars`: the task trains on exemplars too."""
  c, z, y = x.classes, x.out['logits'], x.batch['label']
  ce = cross_entropy(z, y, c.seen if with_exemplars else c.new).mean()
  loss, metrics = ce, {'ce': ce}
  if x.teacher is not None:
    zt = x.teacher['logits']
    w_joint, w_tasks, w_bce = WEIGHTS[variant]
    if w_joint:
      kd_joint = facil_kd(z, zt, c.old, temperature).mean()
      loss, metrics['kd_joint'] = loss + w_joint * lamb * kd_joint, kd_joint
    if w_tasks:
      kd_tasks = facil_kd(z[:, None, :], zt[:, None, :], c.old_blocks(), temperature).sum(-1).mean()
      loss, metrics['kd_tasks'] = loss + w_tasks * lamb * kd_tasks, kd_tasks
    if w_bce:
      bce = blockwise_bce_distillation(z, zt, c.old_blocks())
      loss, metrics['bce_distill'] = loss + w_bce * lamb * bce, bce
  if variant == 'br2' and not with_exemplars:
    bcep = one_hot_bce(z, y, c.new)
    loss, metrics['bce_pred'] = loss + bcep, bcep
  return loss, metrics


def make(config) -> Method:
  opts = config.method
  variant = opts.variant
  if not (float(opts.lamb) >= 0 and float(opts.temperature) > 0):
    raise ValueError(f'method.lamb={opts.lamb} must be >= 0 and method.temperature={opts.temperature} > 0')
  memory = int(config.memory.size) > 0
  # one function object per setting, so that equal steps share one compile across tasks
  losses = {w: functools.partial(lwf_loss, variant=variant, lamb=float(opts.lamb),
                                 temperature=float(opts.temperature), with_exemplars=w) for w in (False, True)}
  trainable = {cols: head_columns_trainable(cols) for cols in ('seen', 'new')}
  optimizer = Optimizer.of_train_config(config.train)

  def phases(t):
    with_exemplars = memory and t > 0     # FACIL: len(exemplars_dataset) > 0 (none before task 2)
    step = Step(losses[with_exemplars], teacher='task_start' if t else None,
                trainable=trainable['seen' if with_exemplars or t == 0 else 'new'], optimizer=optimizer)
    return [main_phase('train' if t else 'base', step, config, t)]

  return Method('lwf', phases, predict=multi_softmax_scores if opts.multi_softmax else masked_logits)
