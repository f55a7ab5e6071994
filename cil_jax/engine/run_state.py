"""What a run is between two steps, and therefore what a checkpoint holds.

Arrays (Orbax StandardSave): the train state, the teacher, the best weights of a schedule that keeps
them (schedules.Patience) and the method state. Meta (JsonSave): the cursor (task, phase, epoch,
step), the exemplar memory (index lists), the schedule's state, the results so far, counters and the
run seed. Batches are a pure function of (seed, task, phase, epoch) and the cursor, so no
data-loader state is needed.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Optional

import jax
import numpy as np

from cil_jax.input_pipeline import scenario


@dataclasses.dataclass
class Cursor:
  """The next thing to run. phase == number of phases means "training of this task is done"."""
  task: int = 0
  phase: int = 0
  epoch: int = 0
  step: int = 0

  def at_task_start(self) -> bool:
    return self.phase == 0 and self.epoch == 0 and self.step == 0

  def at_phase_start(self, p: int) -> bool:
    return (self.phase, self.epoch, self.step) == (p, 0, 0)


@dataclasses.dataclass
class RunState:
  state: Any                          # step.TrainState
  method_state: dict
  teacher: Optional[dict] = None      # frozen {'params', 'batch_stats'}
  best: Optional[dict] = None         # best {'params', 'batch_stats'} of the current phase
  schedule_state: dict = dataclasses.field(default_factory=dict)
  memory: scenario.Memory = dataclasses.field(default_factory=scenario.Memory.empty)
  rows: list = dataclasses.field(default_factory=list)
  cursor: Cursor = dataclasses.field(default_factory=Cursor)
  global_step: int = 0
  images_seen: int = 0
  wall_time_s: float = 0.0            # the run's time over all its sessions, up to this checkpoint
  sessions: int = 0                   # the sessions (starts and resumes) that trained this run
  network: dict = dataclasses.field(default_factory=dict)          # the state's api.Method.network form
  teacher_network: dict = dataclasses.field(default_factory=dict)  # the teacher's (the one before a growth)

  def arrays(self) -> dict:
    arrays = {'state': self.state, 'teacher': self.teacher if self.teacher is not None else {},
              'method_state': self.method_state}
    if self.best is not None:  # only then: checkpoints of runs without best weights keep their layout
      arrays['best'] = self.best
    return arrays

  def meta(self, seed: int) -> dict:
    """Copies: Orbax writes the JSON in a background thread, after the run has moved on."""
    return {'cursor': dataclasses.asdict(self.cursor), 'rows': copy.deepcopy(self.rows),
            'global_step': self.global_step, 'images_seen': self.images_seen,
            'wall_time_s': self.wall_time_s, 'sessions': self.sessions,
            'has_teacher': self.teacher is not None, 'has_best': self.best is not None,
            'schedule_state': copy.deepcopy(self.schedule_state),
            'has_phase_optimizer': bool(jax.tree.leaves(self.state.phase_opt_state)),
            'memory_indices': self.memory.indices.tolist(), 'memory_counts': self.memory.counts.tolist(),
            'seed': int(seed), 'network': dict(self.network), 'teacher_network': dict(self.teacher_network)}

  def save(self, checkpointer, seed: int) -> None:
    checkpointer.save(self.arrays(), self.meta(seed))

  @classmethod
  def restore(cls, checkpointer, step: int, meta: dict, template: 'RunState', sharding,
              teacher_template=None) -> 'RunState':
    """The state saved at `step` (whose meta is `meta`), restored into the structures of `template`: the
    initial state of the network the checkpoint holds (meta['network']), its train state holding the
    optimizer state of the cursor's phase where the checkpoint has one (meta['has_phase_optimizer']);
    `teacher_template`: the teacher's structure where its network is another (default: the state's)."""
    state = template.state
    teacher = (teacher_template or state.teacher_copy()) if meta['has_teacher'] else {}
    target = {'state': state, 'teacher': teacher, 'method_state': template.method_state}
    if meta.get('has_best'):
      target['best'] = state.teacher_copy()
    arrays = jax.device_put(checkpointer.restore_arrays(step, target), sharding)
    return cls(state=arrays['state'], method_state=arrays['method_state'],
               teacher=arrays['teacher'] if meta['has_teacher'] else None,
               best=arrays['best'] if meta.get('has_best') else None,
               schedule_state=meta.get('schedule_state', {}),
               memory=scenario.Memory(np.asarray(meta['memory_indices'], np.int64),
                                      np.asarray(meta['memory_counts'], np.int64)),
               rows=meta['rows'], cursor=Cursor(**meta['cursor']), global_step=meta['global_step'],
               images_seen=meta['images_seen'], wall_time_s=meta.get('wall_time_s', 0.0),
               sessions=meta.get('sessions', 0), network=meta.get('network', {}),
               teacher_network=meta.get('teacher_network', {}))
