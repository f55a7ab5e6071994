"""Method registry: name -> module with `make(config) -> Method` and `OPTIONS` (config.method defaults)."""
from cil_jax.methods import ft, ssil

REGISTRY = {'ft': ft, 'ssil': ssil}


def get(name: str):
  if name not in REGISTRY:
    raise ValueError(f'method.name={name!r} is unknown; choose one of {sorted(REGISTRY)}')
  return REGISTRY[name]
