"""The numeric policy of the project: losses, statistics and the pooled features are computed in
float32 or wider, whatever the compute dtype of the network (bfloat16 activations are cast up, float64
under jax_enable_x64 is kept)."""
import jax.numpy as jnp


def at_least_f32(x):
  """x cast up to float32 when narrower (bfloat16, float16, ints, bools); float32 and float64 are
  kept. Never downcasts, so x64 runs stay float64. Works on jax and numpy arrays alike."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))
