"""Loss building blocks over full-width logits and class masks (shapes stay static under jit).

Logits always span all classes; a boolean mask selects the classes a term may see. Masked entries
are replaced by a large negative number (not -inf) so empty blocks give zeros, never NaNs.
Losses and statistics are computed in float32 or wider (`at_least_f32`): bfloat16 activations are
cast up, float64 (under jax_enable_x64) is kept.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

NEG = -1e30


def at_least_f32(x):
  """x cast up to float32 when narrower (bfloat16, float16, ints, bools); float32 and float64 are
  kept. Never downcasts, so x64 runs stay float64. Works on jax and numpy arrays alike."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


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
