"""Method registry: name -> module with `make(config) -> Method` and `OPTIONS` (config.method defaults)."""
from cil_jax.methods import bic, eeil, ft, icarl, il2m, joint, lucir, podnet, ssil

REGISTRY = {'ft': ft, 'ssil': ssil, 'icarl': icarl, 'il2m': il2m, 'eeil': eeil, 'bic': bic, 'joint': joint,
            'podnet': podnet, 'lucir': lucir}


def get(name: str):
  if name not in REGISTRY:
    raise ValueError(f'method.name={name!r} is unknown; choose one of {sorted(REGISTRY)}')
  return REGISTRY[name]
