"""cil_jax: class-incremental learning in JAX."""
__version__ = '0.1.0'
