"""The exemplar memory after a task: which images enter it (random or herding priority) and how
many per class (scenario.Memory.update and the memory policy; FACIL's policy re-selects every class)."""
from __future__ import annotations

import numpy as np

from cil_jax.input_pipeline import scenario


def update_memory(ctx, memory_cfg, seed: int) -> scenario.Memory:
  """The memory after task ctx.t: its classes' candidates ranked by memory.selection, then trimmed
  to memory.size by memory.policy. Unchanged without a memory and after the last task."""
  tasks, t = ctx.tasks, ctx.t
  size = int(memory_cfg.size)
  if size == 0 or t == tasks.num_tasks - 1:
    return ctx.memory
  if memory_cfg.policy == 'facil':
    return facil_memory(ctx, size, memory_cfg.selection, seed)
  new_classes = range(tasks.start(t), tasks.end(t))
  by_class = ctx.train_by_class
  if memory_cfg.selection == 'random':
    candidates = [scenario.random_priority(by_class[c], seed, c) for c in new_classes]
  elif memory_cfg.selection == 'file_order':
    candidates = [by_class[c] for c in new_classes]
  else:  # 'herding' (config_base.validate allows no other)
    budget = int(scenario.per_class_sizes(size, tasks.end(t), tasks.num_classes, memory_cfg.policy).max())
    feats = ctx.outputs(ctx.new_indices(), keys=('features',))['features']
    bounds = np.cumsum([0] + [len(by_class[c]) for c in new_classes])
    candidates = [scenario.herding_priority(by_class[c], feats[bounds[i]:bounds[i + 1]], budget)
                  for i, c in enumerate(new_classes)]
  return ctx.memory.update(candidates, size, tasks.num_classes, memory_cfg.policy)


def facil_memory(ctx, size: int, selection: str, seed: int) -> scenario.Memory:
  """FACIL's exemplars (datasets/exemplars_dataset.py, exemplars_selection.py): after each task every
  seen class keeps ceil(M / seen) images (not trimmed to M), selected by the current model from its
  pool: a new class's training images, an old class's current exemplars (FACIL selects from the
  task's train loader, which holds the old classes' exemplars only). Herding runs on the L2-normalised
  inference-mode features of the test transform, as FACIL's; random draws anew from the pool."""
  tasks, t = ctx.tasks, ctx.t
  seen = tasks.end(t)
  quota = scenario.facil_quota(size, seen)
  old = ctx.memory.per_class()
  pools = [old[c] if c < len(old) else ctx.train_by_class[c] for c in range(seen)]
  if selection == 'random':
    sets = [scenario.random_priority(p, scenario.stream_seed(seed, t), c)[:quota] for c, p in enumerate(pools)]
  elif selection == 'file_order':
    sets = [p[:quota] for p in pools]
  else:  # 'herding'
    feats = ctx.outputs(np.concatenate(pools), keys=('features',))['features']
    bounds = np.cumsum([0] + [len(p) for p in pools])
    sets = [scenario.herding_priority(p, feats[bounds[c]:bounds[c + 1]], quota) for c, p in enumerate(pools)]
  return scenario.Memory(np.concatenate(sets).astype(np.int64), np.array([len(s) for s in sets], np.int64))
