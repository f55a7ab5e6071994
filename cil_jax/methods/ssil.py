"""SS-IL: separated softmax + task-wise knowledge distillation (Ahn et al., ICCV 2021).

t = 0: CE over the base classes. t >= 1: each step sees B new-class images and R exemplars drawn
from memory, in one forward pass. New samples: log-softmax over the new block only; replay samples:
log-softmax over all old classes only; summed and divided by B + R. Plus, on all B + R samples,
Σ_{s<t} T²·KL(softmax(ẑ_s/T) ‖ softmax(z_s/T)) per old task block s.

Deviation from the reference: the new-sample target is y - m (the reference's y mod (e - m) is
wrong when base is not a multiple of step); masks over full-width logits make this automatic.
"""
import jax.numpy as jnp

from cil_jax.methods.losses import blockwise_kd, masked_log_softmax
from cil_jax.methods.api import LossInputs, Method, Step
from cil_jax.methods.shared import ce_phase, main_phase

OPTIONS = {'temperature': 2.0}      # T of the task-wise KD


def separated_cross_entropy(logits, labels, is_replay, old_mask, new_mask):
  """Per-sample CE: replay samples over old classes, new samples over new classes."""
  mask = jnp.where(is_replay[:, None], old_mask[None], new_mask[None])
  logp = masked_log_softmax(logits, mask)
  return -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]


def ssil_loss(x: LossInputs, temperature: float):
  z = x.out['logits']
  ce = separated_cross_entropy(z, x.batch['label'], x.batch['replay'], x.classes.old, x.classes.new).mean()
  kd = blockwise_kd(z, x.teacher['logits'], x.classes.old_blocks(), temperature).mean()
  return ce + kd, {'ce': ce, 'kd': kd}


def make(config) -> Method:
  temperature = float(config.method.temperature)

  def loss(x):
    return ssil_loss(x, temperature)

  def phases(t):
    if t == 0:
      return [ce_phase(config, t, stream='new', lr_by_task=True, name='base')]
    return [main_phase('train', Step(loss, teacher='task_start'), config, t, stream='new+replay', lr_by_task=True,
                       replay_batch_size=config.train.replay_batch_size)]
  return Method('ssil', phases)
