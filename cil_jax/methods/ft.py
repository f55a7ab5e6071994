"""FT: fine-tuning with exemplar replay (SS-IL paper's baseline).

CE over all seen classes on one shuffled stream of new data + exemplars; no teacher. The reference
trainer crashes from task 1 on an undefined `prev_new` flag; its intended branch is this plain CE.
With memory.size=0 this is the no-memory lower bound.
"""
from cil_jax.methods.api import Method
from cil_jax.methods.shared import ce_phase

OPTIONS = {}


def make(config) -> Method:
  def phases(t):
    return [ce_phase(config, t, lr_by_task=True)]
  return Method('ft', phases)
