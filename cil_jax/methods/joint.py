"""Joint training: the upper bound every CIL study reports. Each task trains on all the training
data of every class seen so far (no memory limit), CE over the seen classes, continuing from the
previous task's model. Its lower-bound twin is FT with memory.size=0 (configs/ft_nomem_*.py)."""
import numpy as np

from cil_jax.methods.api import Method
from cil_jax.methods.shared import ce_phase

OPTIONS = {}


def make(config) -> Method:
  if config.train.schedule != 'step':   # its task data holds no validation set of all seen tasks
    raise ValueError('joint takes train.schedule=step only')

  def phases(t):
    return [ce_phase(config, t)]

  def task_data(ctx):
    seen = np.concatenate([ctx.train_by_class[c] for c in range(ctx.tasks.end(ctx.t))])
    return {'train': (seen, np.zeros(0, np.int64))}

  return Method('joint', phases, task_data=task_data)
