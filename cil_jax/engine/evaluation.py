"""Passes over data that do not train: test accuracy (counts accumulated on the devices, one fetch),
inference-mode outputs of training images for the methods' host-side hooks, and a phase's
validation loss. A tf.data failure in any of them names the unreadable image."""
from __future__ import annotations

import contextlib
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from cil_jax.results import metrics as metrics_lib
from cil_jax.engine import parallel
from cil_jax.errors import one_line
from cil_jax.input_pipeline import image_checks, streams
from cil_jax.input_pipeline.base import DataError

AUGMENTED_PASS_BATCH = 256  # = the default eval.batch_size, which these passes used before


@dataclasses.dataclass(frozen=True)
class Loaders:
  """The run's image loaders: training (the source's augmentation), training without augmentation, test."""
  train: streams.ImageLoader
  train_eval: streams.ImageLoader
  test: streams.ImageLoader

  @classmethod
  def of(cls, source, data) -> 'Loaders':
    """This process's loaders of `source` under the labels of `data` (a scenario.Scenario)."""
    pi, pc, size = jax.process_index(), jax.process_count(), source.image_size
    return cls(streams.ImageLoader(source.train, data.train_labels, source.augment, size, pi, pc),
               streams.ImageLoader(source.train, data.train_labels, 'none', size, pi, pc),
               streams.ImageLoader(source.test, data.test_labels, 'none', size, pi, pc))


class Evaluator:
  def __init__(self, data, source, loaders: Loaders, factory, predict):
    """data: the scenario.Scenario; factory: the engine.factory.Factory of the model; predict: the method's."""
    self.data, self.source, self.loaders, self.predict = data, source, loaders, predict
    self.use(factory)
    # a validation set's last partial batch is loaded whole by every process (replicated)
    self._replicated_loader = loaders.train_eval if jax.process_count() == 1 else streams.ImageLoader(
        source.train, data.train_labels, 'none', source.image_size, 0, 1)

  def use(self, factory) -> None:
    """Evaluate the network of `factory` from now on (a network that grew at a task start)."""
    self.factory, self.eval_step = factory, factory.eval_step(self.predict)

  def test_accuracy(self, state, method_state, t: int, classes, eval_batch: int) -> dict:
    """The metrics row of the test images of the classes seen after task t."""
    data, f = self.data, self.factory
    indices = np.concatenate([data.test_by_class[k] for k in range(data.tasks.end(t))])
    plan, valid = streams.eval_plan(indices, eval_batch)
    counts = jax.device_put(jnp.zeros((data.tasks.num_tasks, 4), jnp.int32), f.replicated)
    throttle = parallel.Throttle()
    with naming_bad_images(self.source.test, plan, 'evaluation'):
      for batch in self.loaders.test.eval(plan, valid).as_numpy_iterator():
        b = parallel.to_global({k: batch[k] for k in ('image', 'label', 'valid')}, f.sharded)
        counts = throttle(self.eval_step(counts, state.params, state.batch_stats, method_state, b['image'], b['label'],
                                        b['valid'], classes))
    return metrics_lib.row_from_counts(np.asarray(jax.device_get(counts)), t)  # the one fetch

  def outputs(self, state, indices: np.ndarray, augment: bool, seed: int, eval_batch: int,
              keys: tuple[str, ...] = ('logits', 'features')) -> dict:
    """Inference-mode logits and features of training images, as numpy (api.TaskContext.outputs)."""
    f = self.factory
    # In-memory augmentation is seeded per batch: an augmented pass uses a batch size of its own, so
    # eval.batch_size (free to change on resume) cannot change its crops.
    batch = AUGMENTED_PASS_BATCH if augment else eval_batch
    parallel.check_batch(batch, 'the host-side augmented pass batch')
    plan, valid = streams.eval_plan(indices, batch)
    if augment:
      ds = self.loaders.train.train(streams.Plan(plan, np.zeros_like(valid), seed))
    else:
      ds = self.loaders.train_eval.eval(plan, valid)
    outs, throttle, outputs_step = [], parallel.Throttle(), f.outputs_step()
    with naming_bad_images(self.source.train, plan, 'a pass over training images'):
      for b in ds.as_numpy_iterator():
        images = parallel.to_global({'image': b['image']}, f.sharded)['image']
        out = throttle(outputs_step(state.variables, images))
        outs.append({k: out[k] for k in keys})   # the rest is freed at once
    ok = valid.reshape(-1)
    return {k: _to_host([o[k] for o in outs])[ok] for k in keys}

  def validation_loss(self, spec, state, teacher, method_state, classes, new_idx, mem_idx, batch: int,
                      teacher_factory=None) -> float:
    """The step's loss over a validation set (new data, then memory; test transform, in order), as
    FACIL's eval: batches of the phase's batch size, the last one partial, Σ n_b·loss_b / N summed
    in float64 on the host (one fetch of the batch losses). teacher_factory: the teacher's network's,
    where it is another."""
    f, loss_step = self.factory, self.factory.loss_step(spec, teacher_factory)
    idx = np.concatenate([new_idx, mem_idx]).astype(np.int64)
    replay = np.concatenate([np.zeros(len(new_idx), bool), np.ones(len(mem_idx), bool)])
    if len(idx) == 0:
      raise ValueError('the validation set of this phase is empty; it needs at least one image')
    full = len(idx) // batch * batch
    parts = [(self.loaders.train_eval, idx[:full].reshape(-1, batch), replay[:full].reshape(-1, batch), f.sharded)]
    if full < len(idx):
      parts.append((self._replicated_loader, idx[None, full:], replay[None, full:], f.replicated))
    losses, sizes, throttle = [], [], parallel.Throttle()
    with naming_bad_images(self.source.train, idx, 'validation'):
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
