"""The Orbax CheckpointManager under a run: a pytree of arrays (StandardSave) and a JSON dict
(JsonSave) per checkpoint; what goes in them is run_state.RunState's business. A save that was cut
off (killed mid-write) is never committed and is ignored on restore.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies


class Checkpointer:
  def __init__(self, directory: str, keep: int = 2):
    self.manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(
            preservation_policy=policies.LatestN(keep), create=True, cleanup_tmp_directories=True),
        item_names=('arrays', 'meta'))

  def latest(self) -> int | None:
    return self.manager.latest_step()

  def save(self, arrays: Any, meta: dict) -> None:
    step = (self.latest() or 0) + 1
    self.manager.save(step, args=ocp.args.Composite(
        arrays=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)), force=True)

  def restore_meta(self, step: int) -> dict:
    return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta']

  def restore_arrays(self, step: int, target: Any) -> Any:
    """Restores into the structure, shapes and shardings of `target` (a pytree of arrays)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return self.manager.restore(step, args=ocp.args.Composite(
        arrays=ocp.args.StandardRestore(abstract)))['arrays']

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
