"""Loss building blocks over full-width logits and class masks (shapes stay static under jit).

Logits always span all classes; a boolean mask selects the classes a term may see. Masked entries
are replaced by a large negative number (not -inf) so empty blocks give zeros, never NaNs.
Losses and statistics are computed in float32 or wider (`at_least_f32`): bfloat16 activations are
cast up, float64 (under jax_enable_x64) is kept.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from cil_jax.models.precision import at_least_f32

NEG = -1e30


def masked_log_softmax(z, mask):
  """log-softmax of z over the classes where mask is True; 0 elsewhere."""
  zm = jnp.where(mask, at_least_f32(z), NEG)
  out = zm - jax.nn.logsumexp(zm, axis=-1, keepdims=True)
  return jnp.where(mask, out, 0.0)


def cross_entropy(z, labels, mask):
  """Per-sample CE of integer labels over the masked classes."""
  logp = masked_log_softmax(z, mask)
  return -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]


def blockwise_kd(z, z_teacher, blocks, temperature):
  """Per-sample Σ_blocks T² · KL(softmax(ẑ_b/T) ‖ softmax(z_b/T)), each block with its own softmax.

  blocks: bool [K, C]; an all-False block contributes 0. Averaging over the batch gives the
  reference's `kl_div(..., reduction='batchmean') * T**2` summed over blocks.
  """
  t = temperature
  zs = at_least_f32(z)[:, None, :] / t          # [B, 1, C]; cast before dividing by T
  zt = at_least_f32(z_teacher)[:, None, :] / t
  m = blocks[None]                # [1, K, C]
  log_q = masked_log_softmax(zs, m)
  log_p = masked_log_softmax(zt, m)
  p = jnp.where(m, jnp.exp(log_p), 0.0)
  kl = jnp.sum(p * (log_p - log_q), axis=(-1, -2))
  return (t * t) * kl


def facil_kd(z, z_teacher, mask, temperature, eps=1e-5):
  """Per-sample FACIL LwF distillation (approach/lwf.py `cross_entropy(out, tar, exp=1/T, eps)`) over
  the masked columns: q = softmax(ẑ/T), p = softmax(z/T) + eps/C renormalised (C = the masked
  columns), −Σ_c q_c·log p_c; no T². FACIL raises softmax(z) to the power 1/T and renormalises, which
  is softmax(z/T); this form has no 0^(1/T) in the backward pass. `mask` [C] or [K, C] with z
  [B, 1, C] gives one value per block; an empty mask gives 0."""
  zs, zt = at_least_f32(z) / temperature, at_least_f32(z_teacher) / temperature
  n = jnp.sum(mask, axis=-1, keepdims=True)
  p = jnp.where(mask, jnp.exp(masked_log_softmax(zs, mask)), 0.0)
  p = (p + eps / jnp.maximum(n, 1)) / (1.0 + eps)
  q = jnp.where(mask, jnp.exp(masked_log_softmax(zt, mask)), 0.0)
  return -jnp.sum(jnp.where(mask, q * jnp.log(p), 0.0), axis=-1)


def sigmoid_bce(z, target):
  """Elementwise PyTorch binary_cross_entropy(sigmoid(z), target): −t·log σ(z) − (1−t)·log(1−σ(z)),
  each log clamped at −100 as PyTorch's. The logs come from the logits (log-sigmoid), so they stay
  exact where a float32 sigmoid rounds to 0 or 1."""
  z = at_least_f32(z)
  log_p = jnp.maximum(jax.nn.log_sigmoid(z), -100.0)
  log_not_p = jnp.maximum(jax.nn.log_sigmoid(-z), -100.0)
  return -(target * log_p + (1.0 - target) * log_not_p)


def masked_mean(values, mask):
  """Mean of values [B, C] over the batch and the masked columns (mask [C]); 0 for an empty mask."""
  m = jnp.broadcast_to(mask, values.shape)
  return jnp.sum(jnp.where(m, values, 0.0)) / jnp.maximum(jnp.sum(m), 1)


def blockwise_bce_distillation(z, z_teacher, blocks):
  """Σ_blocks of the mean over batch × block columns of BCE(σ(z), σ(ẑ)) (RethinkSoftmax's BCEd_i);
  an all-False block contributes 0."""
  target = jax.nn.sigmoid(at_least_f32(z_teacher))
  per = sigmoid_bce(z, target)                              # [B, C]
  counts = jnp.sum(blocks, axis=-1) * z.shape[0]            # [K]
  sums = jnp.sum(jnp.where(blocks[None], per[:, None, :], 0.0), axis=(0, 2))   # [K]
  return jnp.sum(sums / jnp.maximum(counts, 1))


def one_hot_bce(z, labels, mask):
  """Mean over batch × masked columns of BCE(σ(z), one-hot(label)) (RethinkSoftmax's BCEp)."""
  target = jax.nn.one_hot(labels, z.shape[-1], dtype=at_least_f32(z).dtype)
  return masked_mean(sigmoid_bce(z, target), mask)
