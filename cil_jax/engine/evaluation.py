"""Passes over data that do not train: test accuracy (counts accumulated on the devices, one fetch),
inference-mode outputs of training images for the methods' host-side hooks, and a phase's
validation loss. A tf.data failure in any of them names the unreadable image."""
from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from cil_jax.results import metrics as metrics_lib
from cil_jax.engine import parallel
from cil_jax.errors import one_line
from cil_jax.input_pipeline import image_checks, streams
from cil_jax.input_pipeline.base import DataError
from cil_jax.engine.step import make_loss_step

AUGMENTED_PASS_BATCH = 256  # = the default eval.batch_size, which these passes used before


class Evaluator:
  def __init__(self, exp):
    self.exp = exp
    self._loss_steps = {}
    # a validation set's last partial batch is loaded whole by every process (replicated)
    self._replicated_loader = exp.train_eval_loader if jax.process_count() == 1 else streams.ImageLoader(
        exp.source.train, exp.train_labels, 'none', exp.source.image_size, 0, 1)

  def test_accuracy(self, state, method_state, t: int, classes, eval_batch: int) -> dict:
    """The metrics row of the test images of the classes seen after task t."""
    exp = self.exp
    indices = np.concatenate([exp.test_by_class[k] for k in range(exp.tasks.end(t))])
    plan, valid = streams.eval_plan(indices, eval_batch)
    counts = jax.device_put(jnp.zeros((exp.tasks.num_tasks, 4), jnp.int32), exp.replicated)
    throttle = parallel.Throttle()
    with naming_bad_images(exp.source.test, plan, 'evaluation'):
      for batch in exp.test_loader.eval(plan, valid).as_numpy_iterator():
        b = parallel.to_global({k: batch[k] for k in ('image', 'label', 'valid')}, exp.sharded)
        counts = throttle(exp.eval_step(counts, state.params, state.batch_stats, method_state, b['image'], b['label'],
                                        b['valid'], classes))
    return metrics_lib.row_from_counts(np.asarray(jax.device_get(counts)), t)  # the one fetch

  def outputs(self, state, indices: np.ndarray, augment: bool, seed: int, eval_batch: int,
              keys: tuple[str, ...] = ('logits', 'features')) -> dict:
    """Inference-mode logits and features of training images, as numpy (api.TaskContext.outputs)."""
    exp = self.exp
    # In-memory augmentation is seeded per batch: an augmented pass uses a batch size of its own, so
    # eval.batch_size (free to change on resume) cannot change its crops.
    batch = AUGMENTED_PASS_BATCH if augment else eval_batch
    parallel.check_batch(batch, 'the host-side augmented pass batch')
    plan, valid = streams.eval_plan(indices, batch)
    if augment:
      ds = exp.train_loader.train(streams.Plan(plan, np.zeros_like(valid), seed))
    else:
      ds = exp.train_eval_loader.eval(plan, valid)
    outs, throttle = [], parallel.Throttle()
    with naming_bad_images(exp.source.train, plan, 'a pass over training images'):
      for b in ds.as_numpy_iterator():
        images = parallel.to_global({'image': b['image']}, exp.sharded)['image']
        out = throttle(exp.outputs_step(state.variables, images))
        outs.append({k: out[k] for k in keys})   # the rest is freed at once
    ok = valid.reshape(-1)
    return {k: _to_host([o[k] for o in outs])[ok] for k in keys}

  def validation_loss(self, spec, state, teacher, method_state, classes, new_idx, mem_idx, batch: int) -> float:
    """The step's loss over a validation set (new data, then memory; test transform, in order), as
    FACIL's eval: batches of the phase's batch size, the last one partial, Σ n_b·loss_b / N summed
    in float64 on the host (one fetch of the batch losses)."""
    exp = self.exp
    if spec not in self._loss_steps:
      self._loss_steps[spec] = make_loss_step(exp.model, spec, exp.normalize)
    loss_step = self._loss_steps[spec]
    idx = np.concatenate([new_idx, mem_idx]).astype(np.int64)
    replay = np.concatenate([np.zeros(len(new_idx), bool), np.ones(len(mem_idx), bool)])
    if len(idx) == 0:
      raise ValueError('the validation set of this phase is empty; it needs at least one image')
    full = len(idx) // batch * batch
    parts = [(exp.train_eval_loader, idx[:full].reshape(-1, batch), replay[:full].reshape(-1, batch), exp.sharded)]
    if full < len(idx):
      parts.append((self._replicated_loader, idx[None, full:], replay[None, full:], exp.replicated))
    losses, sizes, throttle = [], [], parallel.Throttle()
    with naming_bad_images(exp.source.train, idx, 'validation'):
      for loader, plan_idx, plan_replay, sharding in parts:
        if plan_idx.shape[0] == 0:
          continue
        for b in loader.train(streams.Plan(plan_idx, plan_replay, 0)).as_numpy_iterator():
          sizes.append(plan_idx.shape[1])
          b = parallel.to_global(b, sharding)
          losses.append(throttle(loss_step(state.params, state.batch_stats, teacher, b, classes, method_state)))
    losses = np.asarray(jax.device_get(losses), np.float64)   # one fetch per validation
    return float(np.sum(losses * np.asarray(sizes, np.float64)) / len(idx))


@contextlib.contextmanager
def naming_bad_images(split, plan: np.ndarray, what: str):
  """A tf.data failure in an evaluation or host-side pass names the unreadable image."""
  try:
    yield
  except Exception as e:  # noqa: BLE001 - tf.data's errors are named; the rest pass through
    if not streams.is_data_error(e):
      raise
    problem = image_checks.find_bad_image(split, np.unique(plan))
    if problem:
      raise DataError(f'{problem} (read during {what}); {image_checks.bad_image_fix(split, problem)}') from e
    raise DataError(f'reading images for {what} failed: {one_line(e)}; rerun the same command '
                    'to resume from the last checkpoint') from e


def _to_host(arrays) -> np.ndarray:
  """Batch-sharded device arrays -> one host numpy array, after all of them were dispatched. One
  process: a copy of each array's shards (no collective). Several: one all-gather of the lot."""
  if jax.process_count() == 1:
    return np.concatenate([np.asarray(x) for x in arrays])
  return np.asarray(multihost_utils.process_allgather(jnp.concatenate(arrays), tiled=True))
