"""The incremental loop: for each task, its phases of jitted steps -> memory update -> evaluation ->
checkpoint. Resumable at any step from the workdir; the engine knows no method.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf
from jax.experimental import multihost_utils

from cil_jax import checkpoint as ckpt_lib
from cil_jax import config_base
from cil_jax import metrics as metrics_lib
from cil_jax import methods as methods_lib
from cil_jax import models, parallel, report, scenario
from cil_jax import workdir as workdir_lib
from cil_jax.input_pipeline import sources, streams
from cil_jax.methods.base import Classes
from cil_jax.progress import Progress
from cil_jax.step import TrainState, make_eval_step, make_optimizer, make_outputs_step, make_train_step, normalizer


@dataclasses.dataclass
class Cursor:
  """The next thing to run. phase == number of phases means "training of this task is done"."""
  task: int = 0
  phase: int = 0
  epoch: int = 0
  step: int = 0

  def at_task_start(self) -> bool:
    return self.phase == 0 and self.epoch == 0 and self.step == 0


AUGMENTED_PASS_BATCH = 256  # = the default eval.batch_size, which these passes used before


class Preempted(Exception):
  """SIGTERM or SIGINT: the run saved a checkpoint at the current step and stops."""

  def __init__(self, signum: int):
    super().__init__(signal.Signals(signum).name)
    self.signum = signum


class Experiment:
  """Everything built from the config once: data, scenario, model, method, compiled steps."""

  def __init__(self, config, workdir: str):
    self.config = config
    self.workdir = workdir
    tf.config.set_visible_devices([], 'GPU')  # tf.data only; the accelerators belong to JAX
    self.method = methods_lib.get(config.method.name).make(config)
    self.mesh = parallel.make_mesh()
    self.replicated, self.sharded = parallel.shardings(self.mesh)

    source = sources.load(config.dataset, cache_dir=os.path.join(workdir, 'cache'))
    self.source = source
    c = source.num_classes
    self.tasks = scenario.Tasks(c, int(config.scenario.base), int(config.scenario.step))
    scenario.check_memory_budget(int(config.memory.size), self.tasks, config.memory.policy)
    self.label_map = scenario.label_map(c, config.scenario.class_order, int(config.scenario.seed))
    self.train_labels = self.label_map[source.train.labels]
    self.test_labels = self.label_map[source.test.labels]
    self.train_by_class = _indices_by_class(self.train_labels, c)
    self.test_by_class = _indices_by_class(self.test_labels, c)
    for k in range(c):
      if len(self.train_by_class[k]) == 0:
        raise sources.DataError(f'class {k} (original {np.flatnonzero(self.label_map == k)[0]}) has no '
                                'training images; check the dataset')
    for t in range(self.tasks.num_tasks):  # found now, not as a crash after the task's training
      if not sum(len(self.test_by_class[k]) for k in range(self.tasks.start(t), self.tasks.end(t))):
        originals = [int(np.flatnonzero(self.label_map == k)[0]) for k in range(self.tasks.start(t), self.tasks.end(t))]
        raise sources.DataError(f'task {t + 1} (original classes {originals}) has no test images, so it cannot be '
                                'evaluated; check the test/val split of the dataset')
    pi, pc = jax.process_index(), jax.process_count()
    self.train_loader = streams.ImageLoader(source.train, self.train_labels, source.augment, source.image_size, pi, pc)
    self.test_loader = streams.ImageLoader(source.test, self.test_labels, 'none', source.image_size, pi, pc)
    self.train_eval_loader = streams.ImageLoader(source.train, self.train_labels, 'none', source.image_size, pi, pc)

    self.model = models.create(config.model.name, c, last_relu=config.model.last_relu, dtype=config.model.dtype,
                               head=config.model.head)
    self.normalize = normalizer(source.mean, source.std)
    self.tx = make_optimizer(config.train.momentum, config.train.weight_decay)
    self._train_steps: dict[Any, Any] = {}
    self.eval_step = make_eval_step(self.model, self.method.predict, self.normalize, self.replicated, self.sharded)
    self.outputs_step = make_outputs_step(self.model, self.normalize, self.replicated, self.sharded)
    for t in range(self.tasks.num_tasks):
      for ph in self.method.phases(t):
        parallel.check_batch(ph.batch_size + ph.replay_batch_size, f'{ph.name} batch size')
    parallel.check_batch(int(config.eval.batch_size), 'eval.batch_size')

  def phase_optimizer(self, phase):
    if phase.optimizer is None:
      return self.tx
    return make_optimizer(phase.optimizer.momentum, phase.optimizer.weight_decay)

  def train_step(self, phase):
    # Phases are rebuilt per task; equal phases (same loss function and options) share one compile.
    key = dataclasses.replace(phase, epochs=0, lr=0.0, milestones=(), gamma=0.0, name='')
    if key not in self._train_steps:
      self._train_steps[key] = make_train_step(self.model, phase, self.phase_optimizer(phase), self.normalize,
                                               self.replicated, self.sharded)
    return self._train_steps[key]

  def init_state(self) -> tuple[TrainState, dict]:
    """The initial train state and method state (both replicated on the mesh)."""
    size = self.source.image_size
    channels = self.source.train.images.shape[-1] if self.source.train.in_memory else 3
    dummy = jnp.zeros((1, size, size, channels), jnp.float32)
    variables = jax.jit(lambda k: self.model.init(k, dummy, train=False))(
        jax.random.PRNGKey(int(self.config.seed)))
    feature_dim = jax.eval_shape(lambda v: self.model.apply(v, dummy, train=False), variables)['features'].shape[-1]
    c, t = self.tasks.num_classes, self.tasks.num_tasks
    params = {'model': variables['params'], 'method': self.method.init_params(c, t)}
    state = TrainState(params, variables['batch_stats'], self.tx.init(params), ())
    method_state = self.method.init_state(c, t, feature_dim)
    return jax.device_put(state, self.replicated), jax.device_put(method_state, self.replicated)


def _indices_by_class(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
  order = np.argsort(labels, kind='stable')
  bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
  return [order[bounds[k]:bounds[k + 1]] for k in range(num_classes)]


@dataclasses.dataclass
class TaskContext:
  """What a method's host-side hooks see: the scenario, the data, the current model and services."""
  run: 'Run'
  t: int

  @property
  def tasks(self):
    return self.run.exp.tasks

  @property
  def config(self):
    return self.run.cfg

  @property
  def memory(self) -> scenario.Memory:
    return self.run.memory

  @property
  def train_by_class(self) -> list[np.ndarray]:
    return self.run.exp.train_by_class

  @property
  def train_labels(self) -> np.ndarray:
    return self.run.exp.train_labels

  @property
  def state(self) -> TrainState:
    return self.run.state

  @property
  def method_state(self) -> dict:
    return self.run.method_state

  def new_classes(self) -> list[np.ndarray]:
    """The training indices of each of the current task's classes."""
    return [self.train_by_class[k] for k in range(self.tasks.start(self.t), self.tasks.end(self.t))]

  def new_indices(self) -> np.ndarray:
    return np.concatenate(self.new_classes())

  def outputs(self, indices: np.ndarray, augment: bool = False, tag: int = 0) -> dict:
    """Inference-mode logits and features of training images, as numpy. augment=True uses the
    training transform (seeded by run seed, task and `tag`), as the SS-IL code base does for its
    class means and statistics; False the test transform."""
    return self.run.outputs(indices, augment, streams.stream_seed(int(self.config.seed), self.t, 1000 + tag))


class Run:
  """The mutable state of one run and the loop over it."""

  def __init__(self, exp: Experiment):
    self.exp = exp
    cfg = exp.config
    self.cfg = cfg
    self.ckpt = ckpt_lib.Checkpointer(os.path.join(exp.workdir, workdir_lib.CHECKPOINTS), keep=int(cfg.checkpoint.keep))
    self.state, self.method_state = exp.init_state()
    self.teacher = None
    self.memory = scenario.Memory.empty()
    self.rows: list[dict] = []
    self.cursor = Cursor()
    self._saved_cursor = None
    self.global_step = 0
    self.images_seen = 0
    self.progress = Progress()
    self.preempted = 0  # the signal number received, 0 for none
    self.writer = tf.summary.create_file_writer(os.path.join(exp.workdir, 'tensorboard')) \
        if jax.process_index() == 0 else None
    self._restore()

  # --- checkpoints ------------------------------------------------------------------------------

  def _arrays(self):
    return {'state': self.state, 'teacher': self.teacher if self.teacher is not None else {},
            'method_state': self.method_state}

  def save(self):
    meta = {'cursor': dataclasses.asdict(self.cursor), 'rows': self.rows, 'global_step': self.global_step,
            'images_seen': self.images_seen, 'has_teacher': self.teacher is not None,
            'has_phase_optimizer': bool(jax.tree.leaves(self.state.phase_opt_state)),
            'memory_indices': self.memory.indices.tolist(), 'memory_counts': self.memory.counts.tolist(),
            'seed': int(self.cfg.seed)}
    self.ckpt.save(self._arrays(), meta)
    self._saved_cursor = dataclasses.replace(self.cursor)

  def _restore(self):
    step = self.ckpt.latest()
    if step is None:
      return
    meta = self.ckpt.restore_meta(step)  # the workdir's config was checked against this one (workdir.py)
    target = {'state': self.state, 'teacher': self.state.teacher_copy() if meta['has_teacher'] else {},
              'method_state': self.method_state}
    if meta['has_phase_optimizer']:  # a phase with its own optimizer was interrupted
      phase = self.exp.method.phases(meta['cursor']['task'])[meta['cursor']['phase']]
      target['state'] = self.state.replace(
          phase_opt_state=self.exp.phase_optimizer(phase).init(self.state.params))
    arrays = self.ckpt.restore_arrays(step, target)
    self.state = jax.device_put(arrays['state'], self.exp.replicated)
    self.method_state = jax.device_put(arrays['method_state'], self.exp.replicated)
    self.teacher = jax.device_put(arrays['teacher'], self.exp.replicated) if meta['has_teacher'] else None
    self.memory = scenario.Memory(np.asarray(meta['memory_indices'], np.int64),
                                  np.asarray(meta['memory_counts'], np.int64))
    self.cursor = Cursor(**meta['cursor'])
    self._saved_cursor = dataclasses.replace(self.cursor)
    self.rows = meta['rows']
    self.global_step = meta['global_step']
    self.images_seen = meta['images_seen']
    self.progress.message(f'resumed from checkpoint {step}: {self._where()}')

  def _where(self) -> str:
    """The cursor for people: tasks, phases and epochs counted from 1, as everywhere in the output."""
    c, num_tasks = self.cursor, self.exp.tasks.num_tasks
    if c.task >= num_tasks:
      return f'all {num_tasks} tasks done'
    phases = self.exp.method.phases(c.task)
    if c.phase >= len(phases):
      return f'task {c.task + 1}/{num_tasks}, training done, evaluation next'
    phase = phases[c.phase]
    return (f'task {c.task + 1}/{num_tasks}, {phase.name} epoch {c.epoch + 1}/{phase.epochs}, '
            f'step {c.step}')

  # --- the loop ---------------------------------------------------------------------------------

  def run(self) -> dict:
    handlers = {}
    if _main_thread():  # SIGTERM (preemption) and Ctrl-C: save at the current step, then exit
      handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
      while self.cursor.task < self.exp.tasks.num_tasks:
        self._run_task(self.cursor.task)
        if self.preempted:  # a signal during the evaluation: the task's checkpoint is saved
          raise Preempted(self.preempted)
    except Preempted as e:
      self.ckpt.wait()
      self.progress.message(f'{signal.Signals(e.signum).name}: checkpoint saved at {self._where()}; run the same '
                            'command to resume')
      raise
    finally:
      self.ckpt.wait()
      self.ckpt.close()
      for sig, handler in handlers.items():
        signal.signal(sig, handler)
    return metrics_lib.summarize(self.rows, self.exp.tasks.num_tasks)

  def _on_signal(self, signum, frame):
    del frame
    if self.preempted and signum == signal.SIGINT:  # a second Ctrl-C: stop now, without the save
      raise KeyboardInterrupt
    if not self.preempted:
      self.progress.message(f'{signal.Signals(signum).name}: saving a checkpoint at the next step, then stopping'
                            + (' (Ctrl-C again stops at once)' if signum == signal.SIGINT else ''))
    self.preempted = signum

  def _run_task(self, t: int):
    exp, cfg = self.exp, self.cfg
    phases = exp.method.phases(t)
    classes = Classes.for_task(exp.tasks, t)
    ctx = TaskContext(self, t)
    method = exp.method
    if self.cursor.at_task_start():
      if any(ph.teacher == 'task_start' for ph in phases):
        self.teacher = self.state.teacher_copy()
      if t > 0 and cfg.train.reset_optimizer_each_task:
        self.state = self.state.replace(opt_state=jax.device_put(exp.tx.init(self.state.params), exp.replicated))
      if method.before_task is not None:
        params, method_state = method.before_task(ctx)
        self.state = self.state.replace(params=jax.device_put(params, exp.replicated))
        self.method_state = jax.device_put(method_state, exp.replicated)
    data = method.task_data(ctx)
    for p in range(self.cursor.phase, len(phases)):
      self._run_phase(t, p, phases[p], classes, *data[phases[p].data])
    # Training of task t is done. Saved (unless the last epoch's save holds it) so that a kill during
    # the hook, the memory update or the evaluation does not redo the training.
    if self.cursor != self._saved_cursor:
      self.save()
    if method.after_task is not None:
      self.method_state = jax.device_put(method.after_task(ctx), exp.replicated)
    self._update_memory(ctx)
    row = self._evaluate(t, classes)
    self.rows.append(row)
    self._write_results()
    self.progress.message(f'task {t + 1}/{exp.tasks.num_tasks}: top-1 {row["top1_all"]:.2f} on {exp.tasks.end(t)} '
                          f'seen classes (per task: {" ".join(f"{v:.1f}" for v in row["top1"])})')
    self.teacher = None
    self.cursor = Cursor(t + 1)
    self.save()

  def _run_phase(self, t, p, phase, classes, new_idx, mem_idx):
    exp, cfg = self.exp, self.cfg
    step_fn = exp.train_step(phase)
    if (self.cursor.phase, self.cursor.epoch, self.cursor.step) == (p, 0, 0):  # a fresh phase start
      if phase.teacher == 'phase_start':
        self.teacher = self.state.teacher_copy()
      phase_opt = exp.phase_optimizer(phase).init(self.state.params) if phase.optimizer is not None else ()
      self.state = self.state.replace(phase_opt_state=jax.device_put(phase_opt, exp.replicated))
    teacher = self.teacher if phase.teacher is not None else None
    log_every = int(cfg.log_every_steps)
    ckpt_every = int(cfg.checkpoint.every_steps)
    for epoch in range(self.cursor.epoch if self.cursor.phase == p else 0, phase.epochs):
      seed = streams.stream_seed(int(cfg.seed), t, p, epoch)
      plan = streams.make_plan(phase.stream, new_idx, mem_idx, phase.batch_size, phase.replay_batch_size, seed)
      if plan.steps == 0:
        raise ValueError(f'task {t + 1} phase {phase.name!r} has {len(new_idx) + len(mem_idx)} training examples, fewer '
                         f'than its batch of {phase.batch_size + phase.replay_batch_size}: lower train.batch_size '
                         'or use more data / a larger memory.size')
      start = self.cursor.step if (self.cursor.phase, self.cursor.epoch) == (p, epoch) else 0
      self.cursor = Cursor(t, p, epoch, start)
      lr = jax.device_put(jnp.asarray(phase.lr_at(epoch), jnp.float32), exp.replicated)
      header = f'task {t + 1}/{exp.tasks.num_tasks} {phase.name} ep {epoch + 1}/{phase.epochs}'
      lr_text = f'lr {phase.lr_at(epoch):.3g}'
      batches = parallel.prefetch_to_device(exp.train_loader.train(plan, start).as_numpy_iterator(), exp.sharded)
      pending = pending_step = last_metrics = None
      self.progress.reset_rate(self.images_seen)
      k = start
      try:
        for k, batch in enumerate(batches, start=start):
          self.state, metrics = step_fn(self.state, teacher, batch, classes, lr, self.method_state)
          self.global_step += 1
          self.images_seen += plan.indices.shape[1]
          self.cursor.step = k + 1
          if log_every and (k + 1) % log_every == 0:
            if pending is not None:  # the previous interval's metrics are ready: no stall
              self._log(header, lr_text, pending_step, plan.steps, pending)
            pending, pending_step = metrics, k + 1
          last_metrics = metrics
          self._maybe_profile()
          if ckpt_every and self.global_step % ckpt_every == 0:
            self.save()
          self._debug_kill()
          if self.preempted:
            self.save()
            raise Preempted(self.preempted)
      except tf.errors.OpError as e:
        self._raise_data_error(e, plan, k)
      if last_metrics is not None:  # one sync per epoch: the epoch's last step
        self._log(header, lr_text, plan.steps, plan.steps, last_metrics)
      last_epoch = epoch == phase.epochs - 1
      self.cursor = Cursor(t, p + 1, 0, 0) if last_epoch else Cursor(t, p, epoch + 1, 0)
      if last_epoch:  # a phase's own optimizer ends with it (and is not saved past it)
        self.state = self.state.replace(phase_opt_state=())
      if cfg.checkpoint.every_epochs and ((epoch + 1) % int(cfg.checkpoint.every_epochs) == 0 or last_epoch):
        self.save()
    if self.cursor.phase == p:  # a phase with zero epochs
      self.cursor = Cursor(t, p + 1, 0, 0)
      self.state = self.state.replace(phase_opt_state=())

  def _log(self, header, lr_text, step, steps, metrics):
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if not np.isfinite(values['loss']):
      raise FloatingPointError(f'loss is {values["loss"]} at {header}, step {step}: training '
                               'diverged; lower train.lr (with a new --workdir: the lr is part of the experiment) '
                               'or check the data')
    self.progress.update(header, step, steps, self.images_seen, values, extra=lr_text)
    if self.writer is not None:
      with self.writer.as_default(step=self.global_step):
        for key, v in values.items():
          tf.summary.scalar(f'train/{key}', v)

  def _raise_data_error(self, error, plan, k):
    """tf.data failed inside a batch: find the unreadable image, name it, keep what was computed."""
    self.save()
    split = self.exp.source.train
    for i in plan.indices[k:k + 8].reshape(-1):  # the failing batch is at most a few prefetches ahead
      problem = sources.check_image(split, int(i))
      if problem:
        raise sources.DataError(f'{problem}; remove or replace the file, then rerun the same command '
                                f'(the run resumes from the checkpoint just saved)') from error
    raise sources.DataError(f'reading training batch {k} failed: {error.message}; the run state is saved, '
                            'rerun the same command to resume') from error

  def _maybe_profile(self):
    prof = self.cfg.profile
    if prof.start_step < 0:
      return
    if self.global_step == int(prof.start_step):
      jax.profiler.start_trace(os.path.join(self.exp.workdir, 'tensorboard'))
    elif self.global_step == int(prof.start_step) + int(prof.num_steps):
      jax.block_until_ready(self.state.params)
      jax.profiler.stop_trace()
      self.progress.message(f'profiler trace of steps {prof.start_step}..{self.global_step} written to '
                            f'{self.exp.workdir}/tensorboard (open the Profile tab of TensorBoard)')

  def _debug_kill(self):
    if self.global_step == int(self.cfg.debug.kill_at_step):  # a real signal, for the resume tests
      os.kill(os.getpid(), getattr(signal, 'SIG' + self.cfg.debug.kill_signal))

  # --- memory and evaluation --------------------------------------------------------------------

  def _update_memory(self, ctx: TaskContext):
    exp, cfg, t = self.exp, self.cfg, ctx.t
    if int(cfg.memory.size) == 0 or t == exp.tasks.num_tasks - 1:
      return
    new_classes = range(exp.tasks.start(t), exp.tasks.end(t))
    if cfg.memory.selection == 'random':
      candidates = [scenario.random_priority(exp.train_by_class[c], int(cfg.seed), c) for c in new_classes]
    elif cfg.memory.selection == 'herding':
      budget = int(scenario.per_class_sizes(int(cfg.memory.size), exp.tasks.end(t), exp.tasks.num_classes,
                                            cfg.memory.policy).max())
      feats = ctx.outputs(ctx.new_indices())['features']
      bounds = np.cumsum([0] + [len(exp.train_by_class[c]) for c in new_classes])
      candidates = [scenario.herding_priority(exp.train_by_class[c], feats[bounds[i]:bounds[i + 1]], budget)
                    for i, c in enumerate(new_classes)]
    else:
      raise ValueError(f"memory.selection={cfg.memory.selection!r} is unknown; use 'random' or 'herding'")
    self.memory = self.memory.update(candidates, int(cfg.memory.size), exp.tasks.num_classes, cfg.memory.policy)

  def outputs(self, indices: np.ndarray, augment: bool, seed: int) -> dict:
    """Inference-mode logits and features of training images (see TaskContext.outputs)."""
    exp = self.exp
    # In-memory augmentation is seeded per batch: an augmented pass uses a batch size of its own, so
    # eval.batch_size (free to change on resume) cannot change its crops.
    batch = AUGMENTED_PASS_BATCH if augment else int(self.cfg.eval.batch_size)
    parallel.check_batch(batch, 'the host-side augmented pass batch')
    plan, valid = streams.eval_plan(indices, batch)
    if augment:
      ds = exp.train_loader.train(streams.Plan(plan, np.zeros_like(valid), seed))
    else:
      ds = exp.train_eval_loader.eval(plan, valid)
    outs = []
    with self._naming_bad_images(exp.source.train, plan, 'a pass over training images'):
      for batch in ds.as_numpy_iterator():
        images = parallel.to_global({'image': batch['image']}, exp.sharded)['image']
        outs.append(exp.outputs_step(self.state.variables, images))
    ok = valid.reshape(-1)
    return {k: _to_host([o[k] for o in outs])[ok] for k in ('logits', 'features')}

  def _evaluate(self, t: int, classes) -> dict:
    exp = self.exp
    indices = np.concatenate([exp.test_by_class[k] for k in range(exp.tasks.end(t))])
    plan, valid = streams.eval_plan(indices, int(self.cfg.eval.batch_size))
    counts = jax.device_put(jnp.zeros((exp.tasks.num_tasks, 4), jnp.int32), exp.replicated)
    with self._naming_bad_images(exp.source.test, plan, 'evaluation'):
      for batch in exp.test_loader.eval(plan, valid).as_numpy_iterator():
        b = parallel.to_global({k: batch[k] for k in ('image', 'label', 'valid')}, exp.sharded)
        counts = exp.eval_step(counts, self.state.params, self.state.batch_stats, self.method_state, b['image'],
                               b['label'], b['valid'], classes)
    row = metrics_lib.row_from_counts(np.asarray(jax.device_get(counts)), t)  # the one fetch of the evaluation
    if self.writer is not None:
      with self.writer.as_default(step=t + 1):  # tasks counted from 1, as in all output
        tf.summary.scalar('eval/top1_all_seen', row['top1_all'])
        tf.summary.scalar('eval/top5_all_seen', row['top5_all'])
        for key in ('old', 'new'):
          if row[key] is not None:
            tf.summary.scalar(f'eval/top1_{key}', row[key])
      self.writer.flush()
    return row

  @contextlib.contextmanager
  def _naming_bad_images(self, split, plan: np.ndarray, what: str):
    """A tf.data failure in an evaluation or host-side pass names the unreadable image."""
    try:
      yield
    except tf.errors.OpError as e:
      problem = sources.find_bad_image(split, np.unique(plan))
      if problem:
        raise sources.DataError(f'{problem} (read during {what}); remove or replace the file, then rerun the same '
                                'command (the run resumes from its last checkpoint)') from e
      raise sources.DataError(f'reading images for {what} failed: {e.message}; rerun the same command to resume '
                              'from the last checkpoint') from e

  def _write_results(self):
    if jax.process_index() != 0:
      return
    summary = metrics_lib.summarize(self.rows, self.exp.tasks.num_tasks)
    workdir_lib.atomic_write(os.path.join(self.exp.workdir, workdir_lib.RESULTS), json.dumps(summary, indent=1))
    report.plot_accuracy({self.cfg.method.name: summary}, os.path.join(self.exp.workdir, 'accuracy.png'))


def _to_host(arrays) -> np.ndarray:
  """Batch-sharded device arrays -> one host numpy array, after all of them were dispatched. One
  process: a copy of each array's shards (no collective). Several: one all-gather of the lot."""
  if jax.process_count() == 1:
    return np.concatenate([np.asarray(x) for x in arrays])
  return np.asarray(multihost_utils.process_allgather(jnp.concatenate(arrays), tiled=True))


def _main_thread() -> bool:
  import threading
  return threading.current_thread() is threading.main_thread()


def _print_summary(summary: dict) -> None:
  if jax.process_index() == 0:
    print('\n' + metrics_lib.format_table(summary), file=sys.stdout, flush=True)


def train_and_evaluate(config, workdir: str) -> dict:
  """Runs (or resumes) the experiment in `workdir`; returns the results summary.

  A workdir holding another experiment is refused before anything runs; a finished run only prints
  its results (a read-only workdir is fine then); a start that fails before its first checkpoint
  removes what it wrote (and the workdir, if it made it).
  """
  config_base.validate(config)  # main.py did both checks already; a library caller gets the same ones
  workdir_lib.check_compatible(config, workdir)  # refuses another experiment's workdir
  done = workdir_lib.finished_summary(workdir)
  if done is not None:
    Progress().message(f'{workdir} holds this finished run; its results:')
    _print_summary(done)
    return done
  created = not os.path.exists(workdir)
  os.makedirs(workdir, exist_ok=True)
  before = set(os.listdir(workdir))
  lock = workdir_lib.Lock(workdir) if jax.process_index() == 0 else None
  try:
    t0 = time.perf_counter()
    exp = Experiment(config, workdir)
    if jax.process_index() == 0:
      workdir_lib.write_config(config, workdir)
    summary = Run(exp).run()
  except BaseException:
    if not workdir_lib.holds_experiment(workdir):  # nothing computed: leave no trace of this start
      if lock is not None:
        lock.release()
      for name in set(os.listdir(workdir)) - before:
        path = os.path.join(workdir, name)
        if os.path.isdir(path):
          shutil.rmtree(path, ignore_errors=True)
        else:
          os.remove(path)
      if created:
        os.rmdir(workdir)
    raise
  finally:
    if lock is not None:
      lock.release()
  summary['wall_time_s'] = time.perf_counter() - t0
  _print_summary(summary)
  return summary
