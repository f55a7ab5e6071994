"""The exemplar memory after a task: which new-class images enter it (random or herding priority)
and how many per class (scenario.Memory.update and the memory policy)."""
from __future__ import annotations

import numpy as np

from cil_jax import scenario


def update_memory(ctx, memory_cfg, seed: int) -> scenario.Memory:
  """The memory after task ctx.t: its classes' candidates ranked by memory.selection, then trimmed
  to memory.size by memory.policy. Unchanged without a memory and after the last task."""
  tasks, t = ctx.tasks, ctx.t
  size = int(memory_cfg.size)
  if size == 0 or t == tasks.num_tasks - 1:
    return ctx.memory
  new_classes = range(tasks.start(t), tasks.end(t))
  by_class = ctx.train_by_class
  if memory_cfg.selection == 'random':
    candidates = [scenario.random_priority(by_class[c], seed, c) for c in new_classes]
  else:  # 'herding' (config_base.validate allows no other)
    budget = int(scenario.per_class_sizes(size, tasks.end(t), tasks.num_classes, memory_cfg.policy).max())
    feats = ctx.outputs(ctx.new_indices())['features']
    bounds = np.cumsum([0] + [len(by_class[c]) for c in new_classes])
    candidates = [scenario.herding_priority(by_class[c], feats[bounds[i]:bounds[i + 1]], budget)
                  for i, c in enumerate(new_classes)]
  return ctx.memory.update(candidates, size, tasks.num_classes, memory_cfg.policy)
