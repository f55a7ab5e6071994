"""The incremental loop: for each task, its phases of jitted steps -> memory update -> evaluation ->
checkpoint. Resumable at any step from the workdir; the engine knows no method.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from cil_jax.engine import checkpoint as ckpt_lib
from cil_jax import config_base
from cil_jax.results import metrics as metrics_lib
from cil_jax import methods as methods_lib
from cil_jax.input_pipeline import device_data, scenario
from cil_jax import errors, models
from cil_jax.engine import multihost, parallel, run_log
from cil_jax.results import report, summaries
from cil_jax.engine import workdir as workdir_lib
from cil_jax.engine.evaluation import Evaluator
from cil_jax.engine.exemplars import update_memory
from cil_jax.input_pipeline import sources, streams
from cil_jax.methods import api
from cil_jax.methods.api import Classes
from cil_jax.engine.progress import Progress
from cil_jax.engine.run_state import Cursor, RunState
from cil_jax.engine.step import (TrainState, chunk_sharding, make_eval_step, make_optimizer, make_outputs_step,
                          make_train_step, normalizer)


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
    self.method = methods_lib.get(config.method.name).make(config)
    self.mesh = parallel.make_mesh()
    self.replicated, self.sharded = parallel.shardings(self.mesh)

    source = sources.load(config.dataset, cache_dir=os.path.join(workdir, 'cache'))
    self.source = source
    self.fingerprint = sources.fingerprint(source)
    multihost.check_same(json.dumps(self.fingerprint, sort_keys=True), 'reads other data than process 0 (a '
                         'dataset.root with other files, or none); every process needs the same dataset')
    workdir_lib.check_dataset(self.fingerprint, workdir)   # before any compute: the run's data must be its own
    c = source.num_classes
    self.tasks = scenario.make_tasks(c, config.scenario)
    scenario.check_memory_budget(int(config.memory.size), self.tasks, config.memory.policy)
    order_seed = int(config.seed) & 0xFFFFFFFF if int(config.scenario.seed) < 0 else int(config.scenario.seed)
    self.label_map = scenario.label_map(c, config.scenario.class_order, order_seed)
    self.class_info = sources.class_info(source, self.label_map)
    self.train_labels = self.label_map[source.train.labels]
    self.test_labels = self.label_map[source.test.labels]
    self.train_by_class = _indices_by_class(self.train_labels, c)
    self.validation_by_task = None
    if float(config.scenario.validation) > 0:  # FACIL: held out once, for the whole run
      sizes = [len(k) for k in self.train_by_class]
      self.validation_by_task, self.train_by_class = scenario.facil_holdout(
          self.train_by_class, self.tasks, float(config.scenario.validation), seed=int(config.seed))
      validated = [t for t in range(self.tasks.num_tasks)   # found now, not after the task's first epoch
                   if any(ph.validation == 'validation' for ph in self.method.phases(t))]
      scenario.check_holdout(self.validation_by_task, sizes, self.tasks, float(config.scenario.validation), validated)
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
    self._check_images()
    pi, pc = jax.process_index(), jax.process_count()
    self.train_loader = streams.ImageLoader(source.train, self.train_labels, source.augment, source.image_size, pi, pc)
    self.test_loader = streams.ImageLoader(source.test, self.test_labels, 'none', source.image_size, pi, pc)
    self.train_eval_loader = streams.ImageLoader(source.train, self.train_labels, 'none', source.image_size, pi, pc)
    self.device_data = self.device_arrays = None   # {augment: DeviceData} and the images on the devices
    if device_data.resolve(config.dataset.on_device, source.train.in_memory, source.augment):
      self.device_data = {flag: device_data.DeviceData(source.train.images, self.train_labels,
                                                       source.augment if flag else 'none', source.image_size)
                          for flag in (True, False)}
      self.device_arrays = self.device_data[True].arrays(self.replicated)
    if (self.device_data is None and self.train_loader.trains_with_tf_data) or self.test_loader.encoded:
      streams.tensorflow()   # the streams need tf.data: say so now if it is missing, not after a task
    self.steps_per_call = int(config.train.steps_per_call) or (1 if jax.devices()[0].platform == 'cpu' else 8)

    self.model = models.create(config.model.name, c, last_relu=config.model.last_relu, dtype=config.model.dtype,
                               head=config.model.head)
    self.normalize = normalizer(source.mean, source.std)
    self.main_optimizer = api.Optimizer(momentum=float(config.train.momentum),
                                        weight_decay=float(config.train.weight_decay),
                                        clip_norm=float(config.train.clip_norm) or None)
    self.tx = make_optimizer(self.main_optimizer)
    self._train_steps: dict[Any, Any] = {}
    self.eval_step = make_eval_step(self.model, self.method.predict, self.normalize, self.replicated, self.sharded)
    self.outputs_step = make_outputs_step(self.model, self.normalize, self.replicated, self.sharded)
    for t in range(self.tasks.num_tasks):
      for ph in self.method.phases(t):
        parallel.check_batch(ph.batch_size + ph.replay_batch_size, f'{ph.name} batch size')
        if ph.validation is not None:  # validation batches are of the phase's batch size alone
          parallel.check_batch(ph.batch_size, f'{ph.name} batch size (validation)')
    parallel.check_batch(int(config.eval.batch_size), 'eval.batch_size')
    self.evaluator = Evaluator(self)

  def _check_images(self):
    """The test images, and the held-out validation images, are first read after a task's training
    (hours on ImageNet): an unreadable one is found now (exists, not empty, its header parses)."""
    checked = [('test', self.source.test, None)]
    if self.validation_by_task is not None:
      checked.append(('validation', self.source.train, np.concatenate(self.validation_by_task)))
    for what, split, idx in checked:
      bad = sources.unreadable_images(split, idx)
      if bad:
        total = len(split) if idx is None else len(idx)
        first = (', the first: ' if len(bad) > 1 else ': ') + bad[0]
        raise sources.DataError(f'{len(bad)} of the {total} {what} images cannot be read{first}; '
                                f'{sources.bad_image_fix(split)}')

  def phase_optimizer(self, spec: api.Step):
    return self.tx if spec.optimizer is None else make_optimizer(spec.optimizer)

  def train_step(self, spec: api.Step, augment: bool = True, steps_per_call: int = 1):
    # Phases are rebuilt per task; equal steps (same loss function and options) share one compile,
    # whatever their schedules.
    key = (spec, augment, steps_per_call)
    if key not in self._train_steps:
      on_device = None if self.device_data is None else self.device_data[augment]
      self._train_steps[key] = make_train_step(self.model, spec, self.phase_optimizer(spec), self.normalize,
                                               self.replicated, self.sharded, steps_per_call, on_device)
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


class Run:
  """The loop over one run's state (run_state.RunState, which is what a checkpoint holds)."""

  def __init__(self, exp: Experiment, started: float | None = None):
    """`started`: the session's start (time.perf_counter; default: now), for the run's wall time."""
    self.exp = exp
    cfg = exp.config
    self.cfg = cfg
    self.ckpt = ckpt_lib.Checkpointer(os.path.join(exp.workdir, workdir_lib.CHECKPOINTS), keep=int(cfg.checkpoint.keep))
    state, method_state = exp.init_state()
    self.rs = RunState(state, method_state)
    self._saved_cursor = None
    self.progress = Progress(silent=jax.process_index() != 0)
    self._called = set()   # the train steps called once (compiled) in this process
    self.preempted = 0  # the signal number received, 0 for none
    self.writer = self._summary_writer() if jax.process_index() == 0 else None
    self._plot = True
    step = self.ckpt.latest()
    if step is not None:  # the workdir's config was checked against this one (workdir.py)
      self.rs = RunState.restore(self.ckpt, step, self.rs, self._phase_optimizer_state, exp.replicated)
      self._saved_cursor = dataclasses.replace(self.rs.cursor)
      self.progress.message(f'resumed from checkpoint {step}: {self._where()}')
    self.rs.sessions += 1
    self._time_before = self.rs.wall_time_s
    self._started = time.perf_counter() if started is None else started
    if self.writer is not None:
      self.writer.hparams(config_base.result_fields(cfg), trial=os.path.basename(os.path.abspath(exp.workdir)))

  def _summary_writer(self):
    """TensorBoard's writer; none (with a note) where the tensorboard package is not installed."""
    if not summaries.available():
      self.progress.message('TensorBoard summaries are off: the tensorboard package is not installed '
                            '(results.json is written as usual)')
      return None
    return summaries.ScalarWriter(os.path.join(self.exp.workdir, 'tensorboard'))

  def _scalars(self, step: int, values: dict):
    self.writer.scalars(step, values)

  def _phase_optimizer_state(self, cursor, params):
    phase = self.exp.method.phases(cursor.task)[cursor.phase]
    return self.exp.phase_optimizer(phase.step).init(params)

  def _wall_time(self) -> float:
    """The run's wall time so far: the sessions before this one (as their last checkpoint holds it)
    and this one."""
    return self._time_before + time.perf_counter() - self._started

  def save(self):
    self.rs.wall_time_s = self._wall_time()
    self.rs.save(self.ckpt, int(self.cfg.seed))
    self._saved_cursor = dataclasses.replace(self.rs.cursor)

  def context(self, t: int) -> api.TaskContext:
    exp, rs = self.exp, self.rs
    eval_batch = int(self.cfg.eval.batch_size)
    return api.TaskContext(
        t=t, tasks=exp.tasks, config=self.cfg, memory=rs.memory, train_by_class=exp.train_by_class,
        train_labels=exp.train_labels, label_map=exp.label_map, class_info=exp.class_info,
        validation=None if exp.validation_by_task is None else exp.validation_by_task[t], state=rs.state,
        method_state=rs.method_state,
        _outputs=lambda idx, augment, seed, keys: exp.evaluator.outputs(self.rs.state, idx, augment, seed, eval_batch,
                                                                         keys))

  def _where(self) -> str:
    """The cursor for people: tasks, phases and epochs counted from 1, as everywhere in the output."""
    c, num_tasks = self.rs.cursor, self.exp.tasks.num_tasks
    if c.task >= num_tasks:
      return f'all {num_tasks} tasks done'
    phases = self.exp.method.phases(c.task)
    if c.phase >= len(phases):
      return f'task {c.task + 1}/{num_tasks}, training done, evaluation next'
    phase = phases[c.phase]
    return (f'task {c.task + 1}/{num_tasks}, {phase.name} epoch {c.epoch + 1}/{_epochs_text(phase.schedule)}, '
            f'step {c.step}')

  # --- the loop ---------------------------------------------------------------------------------

  def run(self) -> dict:
    handlers = {}
    if _main_thread():  # SIGTERM (preemption) and Ctrl-C: save at the current step, then exit
      handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
      while self.rs.cursor.task < self.exp.tasks.num_tasks:
        self._run_task(self.rs.cursor.task)
        stop = self._stop_signal()
        if stop:  # a signal during the evaluation: the task's checkpoint is saved
          raise Preempted(stop)
    except Preempted as e:
      self.ckpt.wait()
      self.progress.message(f'{signal.Signals(e.signum).name}: checkpoint saved at {self._where()}; run the same '
                            'command to resume')
      raise
    finally:
      self.ckpt.wait()
      self.ckpt.close()
      if self.writer is not None:
        self.writer.close()
      for sig, handler in handlers.items():
        signal.signal(sig, handler)
    return self._write_results(plot=False)   # the run's total time now includes its last checkpoint

  def _stop_signal(self, agreement_point: bool = True) -> int:
    """The signal to stop on now (0: go on). Several processes decide together, at agreement points
    only (a collective, at the same steps on all: log and checkpoint boundaries, epoch and task ends),
    so that they save the same checkpoint."""
    if not agreement_point and jax.process_count() > 1:
      return 0
    return multihost.stop_requested(self.preempted)

  def _on_signal(self, signum, frame):
    del frame
    if self.preempted and signum == signal.SIGINT:  # a second Ctrl-C: stop now, without the save
      raise KeyboardInterrupt
    if not self.preempted:
      self.progress.message(f'{signal.Signals(signum).name}: saving a checkpoint at the next step, then stopping'
                            + (' (Ctrl-C again stops at once)' if signum == signal.SIGINT else ''))
    self.preempted = signum

  def _run_task(self, t: int):
    exp, cfg, rs = self.exp, self.cfg, self.rs
    phases = exp.method.phases(t)
    classes = Classes.for_task(exp.tasks, t)
    method = exp.method
    if rs.cursor.at_task_start():
      if any(ph.step.teacher == 'task_start' for ph in phases):
        rs.teacher = rs.state.teacher_copy()
      if method.before_task is not None:
        self._set_model(*method.before_task(self.context(t)))
    data = method.task_data(self.context(t))
    for p in range(rs.cursor.phase, len(phases)):
      self._run_phase(t, p, phases[p], classes, data)
    # Training of task t is done. Saved (unless the last epoch's save holds it) so that a kill during
    # the hook, the memory update or the evaluation does not redo the training.
    if rs.cursor != self._saved_cursor:
      self.save()
    if method.after_task is not None:
      rs.method_state = jax.device_put(method.after_task(self.context(t)), exp.replicated)
    rs.memory = update_memory(self.context(t), cfg.memory, int(cfg.seed))
    row = exp.evaluator.test_accuracy(rs.state, rs.method_state, t, classes, int(cfg.eval.batch_size))
    self._log_row(t, row)
    row.update(wall_time_s=self._wall_time(), sessions=rs.sessions)
    rs.rows.append(row)
    self._write_results()
    self.progress.message(f'task {t + 1}/{exp.tasks.num_tasks}: top-1 {row["top1_all"]:.2f} on {exp.tasks.end(t)} '
                          f'seen classes (per task: {" ".join(f"{v:.1f}" for v in row["top1"])})')
    rs.teacher = None
    rs.cursor = Cursor(t + 1)
    self.save()

  def _set_model(self, params, method_state):
    self.rs.state = self.rs.state.replace(params=jax.device_put(params, self.exp.replicated))
    self.rs.method_state = jax.device_put(method_state, self.exp.replicated)

  def _start_phase(self, t, phase):
    """A phase starting fresh: its teacher, its own optimizer, its schedule's state, its hook."""
    exp, rs = self.exp, self.rs
    if phase.step.teacher == 'phase_start':
      rs.teacher = rs.state.teacher_copy()
    phase_opt = exp.phase_optimizer(phase.step).init(rs.state.params) if phase.step.optimizer is not None else ()
    rs.state = rs.state.replace(phase_opt_state=jax.device_put(phase_opt, exp.replicated))
    if phase.on_start is not None:
      self._set_model(*phase.on_start(self.context(t)))
    rs.schedule_state = phase.schedule.initial_state()
    rs.best = rs.state.teacher_copy() if phase.schedule.keeps_best else None

  def _end_phase(self, t, p):
    rs = self.rs
    if rs.best is not None:  # the phase ends with its best weights
      self._restore_best()
    rs.best, rs.schedule_state = None, {}
    rs.state = rs.state.replace(phase_opt_state=())  # a phase's own optimizer ends with it
    rs.cursor = Cursor(t, p + 1, 0, 0)

  def _restore_best(self):
    best = jax.tree.map(jnp.copy, self.rs.best)  # the best stays the phase's: the state is donated
    self.rs.state = self.rs.state.replace(params=best['params'], batch_stats=best['batch_stats'])

  def _run_phase(self, t, p, phase, classes, data):
    exp, cfg, rs = self.exp, self.cfg, self.rs
    sched = phase.schedule
    for name in (phase.data, phase.validation):
      if name is not None and name not in data:
        raise ValueError(f'phase {phase.name!r} of task {t + 1} names the set {name!r}, but the method\'s task_data '
                         f'gives {sorted(data)}')
    new_idx, mem_idx = data[phase.data]
    if rs.cursor.at_phase_start(p):
      self._start_phase(t, phase)
    every_epochs = int(cfg.checkpoint.every_epochs)
    for epoch in range(rs.cursor.epoch if rs.cursor.phase == p else 0, sched.epochs):
      seed = scenario.stream_seed(int(cfg.seed), t, p, epoch)
      plan = streams.make_plan(phase.stream, new_idx, mem_idx, phase.batch_size, phase.replay_batch_size, seed,
                               labels=exp.train_labels)
      if plan.steps == 0:
        raise ValueError(f'task {t + 1} phase {phase.name!r} has {len(new_idx) + len(mem_idx)} training examples, fewer '
                         f'than its batch of {phase.batch_size + phase.replay_batch_size}: lower train.batch_size '
                         'or use more data / a larger memory.size')
      start = rs.cursor.step if (rs.cursor.phase, rs.cursor.epoch) == (p, epoch) else 0
      rs.cursor = Cursor(t, p, epoch, start)
      header = f'task {t + 1}/{exp.tasks.num_tasks} {phase.name} ep {epoch + 1}/{_epochs_text(sched)}'
      self._train_epoch(phase, plan, start, classes, header)
      last = self._end_epoch(t, p, epoch, phase, classes, data, plan.steps, header)
      if every_epochs and ((epoch + 1) % every_epochs == 0 or last):
        self.save()
      if last:
        return
    self._end_phase(t, p)  # a phase with zero epochs

  def _end_epoch(self, t, p, epoch, phase, classes, data, steps, header) -> bool:
    """Validation loss, the schedule's verdict (best weights kept or restored, early stop), the cursor
    moved on. True when the phase is over."""
    exp, rs, sched = self.exp, self.rs, phase.schedule
    val_loss = None
    if phase.validation is not None:
      vstep = phase.validation_step or phase.step
      val_loss = exp.evaluator.validation_loss(vstep, rs.state, rs.teacher if vstep.teacher else None,
                                               rs.method_state, classes, *data[phase.validation], phase.batch_size)
      self._log_validation(header, val_loss)
    lr_before = sched.lr(epoch, steps - 1, steps, rs.schedule_state)
    end = sched.end_epoch(epoch, rs.schedule_state, val_loss)
    rs.schedule_state = end.state
    if end.new_best:
      rs.best = rs.state.teacher_copy()
    if end.restore_best:
      self._restore_best()
      lr_after = sched.lr(epoch + 1, 0, steps, rs.schedule_state)
      self.progress.message(f'{header}: {_lr_text(lr_before)} -> {_lr_values(lr_after)}, best weights restored')
    if end.stop and epoch < sched.epochs - 1:
      self.progress.message(f'{header}: the schedule ends the phase early'
                            + (' (best weights restored)' if sched.keeps_best else ''))
    if end.stop or epoch == sched.epochs - 1:
      self._end_phase(t, p)
      return True
    rs.cursor = Cursor(t, p, epoch + 1, 0)
    return False

  def _train_epoch(self, phase, plan, start, classes, header):
    exp, cfg, rs = self.exp, self.cfg, self.rs
    sched, epoch = phase.schedule, rs.cursor.epoch
    teacher = rs.teacher if phase.step.teacher is not None else None
    log_every = int(cfg.log_every_steps)
    ckpt_every = int(cfg.checkpoint.every_steps)
    chunk = exp.steps_per_call
    steps = {n: exp.train_step(phase.step, bool(phase.augment), n) for n in {1, chunk}}

    def lr_of_step(k):
      return sched.lr(epoch, k, plan.steps, rs.schedule_state)

    constant = {}

    def lrs(k, n):
      """The lr of steps [k, k + n): a scalar (n = 1) or stacked [n]; a constant lr is copied once
      per epoch and chunk size."""
      if not sched.per_step and n in constant:
        return constant[n]
      values = [lr_of_step(k + i if sched.per_step else 0) for i in range(n)]
      lr = _device_lr(values[0] if n == 1 else jax.tree.map(lambda *v: np.asarray(v, np.float32), *values),
                      exp.replicated)
      if not sched.per_step:
        constant[n] = lr
      return lr
    lr_start = lr_of_step(start)
    pi, pc = jax.process_index(), jax.process_count()
    if exp.device_data is not None:
      per_step, data = device_data.DeviceData.slots(plan, start, pi, pc), exp.device_arrays
    else:
      loader = exp.train_loader if phase.augment else exp.train_eval_loader
      per_step, data = loader.train(plan, start).as_numpy_iterator(), ()
    stacked = chunk_sharding(exp.sharded)
    batches = parallel.prefetch(_chunks(per_step, start, plan.steps, chunk), lambda item: (
        item[0], item[1], parallel.to_global(item[2], exp.sharded if item[1] == 1 else stacked)))
    pending = pending_step = pending_images = last_metrics = None
    throttle = parallel.Throttle()
    self.progress.reset_rate(rs.images_seen, forget=epoch == 0)
    k = start
    try:
      for k, n, batch in batches:
        compiles = steps[n] not in self._called   # a step's first call compiles it
        if k == start and not compiles:   # the batch is loaded, the step compiled: the rate counts from here
          self.progress.mark(rs.images_seen)
        rs.state, metrics = throttle(steps[n](rs.state, teacher, batch, classes, lrs(k, n), rs.method_state, data))
        before = rs.global_step
        rs.global_step += n
        rs.images_seen += n * plan.indices.shape[1]
        rs.cursor.step = k + n
        if compiles:   # the rate counts from the end of this call, without the compile
          self._called.add(steps[n])
          jax.block_until_ready(metrics)
          self.progress.mark(rs.images_seen)
        if _crossed(log_every, k, k + n):
          if pending is not None:  # the previous interval's metrics are ready: no stall
            self._log(header, lr_of_step(pending_step - 1), pending_step, plan.steps, pending, pending_images)
          pending, pending_step, pending_images = metrics, k + n, rs.images_seen
        last_metrics = metrics
        self._maybe_profile(before)
        if _crossed(ckpt_every, before, rs.global_step):
          self.save()
        self._debug_kill(before)
        stop = self._stop_signal(_crossed(log_every, k, k + n) or _crossed(ckpt_every, before, rs.global_step)
                                 or k + n == plan.steps)
        if stop:
          self.save()
          raise Preempted(stop)
    except Exception as e:  # noqa: BLE001 - tf.data's errors are named; the rest pass through
      if not streams.is_data_error(e):
        raise
      self._raise_data_error(e, plan, k)
    if last_metrics is not None:  # one sync per epoch: the epoch's last step
      self._log(header, lr_of_step(plan.steps - 1) if sched.per_step else lr_start, plan.steps, plan.steps,
                last_metrics)

  def _log(self, header, lr, step, steps, metrics, images=None):
    """metrics of one step, or stacked [K] over a chunk of K steps (the last one is shown); `images`:
    the images seen up to that step (default: now), whose time the fetch of its metrics completes."""
    fetched = {k: np.asarray(v).reshape(-1) for k, v in jax.device_get(metrics).items()}
    values = {k: float(v[-1]) for k, v in fetched.items()}
    if not np.isfinite(fetched['loss']).all():
      raise FloatingPointError(f'loss is {values["loss"]} at {header}, step {step}: training '
                               'diverged; lower train.lr (with a new --workdir: the lr is part of the experiment) '
                               'or check the data')
    self.progress.update(header, step, steps, self.rs.images_seen if images is None else images, values,
                         extra=_lr_text(lr))
    if self.writer is not None:
      scalars = {f'train/{key}': v for key, v in values.items()}
      scalars.update({f'train/lr/{group}': v for group, v in lr.items()} if isinstance(lr, dict) else {'train/lr': lr})
      self._scalars(self.rs.global_step, scalars)

  def _log_validation(self, header, val_loss):
    self.progress.message(f'{header}: validation loss {val_loss:.4f}')
    if self.writer is not None:
      self._scalars(self.rs.global_step, {'train/val_loss': val_loss})

  def _log_row(self, t, row):
    if self.writer is None:
      return
    values = {'eval/top1_all_seen': row['top1_all'], 'eval/top5_all_seen': row['top5_all']}
    values.update({f'eval/top1_{key}': row[key] for key in ('old', 'new') if row[key] is not None})
    self._scalars(t + 1, values)  # tasks counted from 1, as in all output
    self.writer.flush()

  def _raise_data_error(self, error, plan, k):
    """tf.data failed inside a batch: find the unreadable image, name it, keep what was computed.
    When the phase has not trained yet and an earlier checkpoint exists, that one is kept: the
    phase's start (teacher, hooks) then runs again from the weights it started from."""
    trained = self.rs.global_step > 0   # at step 0 of the run nothing is computed: a failed start
    if trained and (not self.rs.cursor.at_phase_start(self.rs.cursor.phase) or self.ckpt.latest() is None):
      self.save()
    split = self.exp.source.train
    ahead = 3 * self.exp.steps_per_call + 8     # the failing batch is at most a few prefetches ahead
    for i in plan.indices[k:k + ahead].reshape(-1):
      problem = sources.check_image(split, int(i))
      if problem:
        raise sources.DataError(f'{problem}; {sources.bad_image_fix(split, problem)}') from error
    raise sources.DataError(f'reading training batch {k} failed: {streams.error_line(error)}; rerun the same '
                            'command to resume from the last checkpoint') from error

  def _maybe_profile(self, before: int):
    """Called after the steps (before, global_step]: the trace starts and stops at the first chunk
    boundary at or after its steps."""
    prof = self.cfg.profile
    if prof.start_step < 0:
      return
    first, last = int(prof.start_step), int(prof.start_step) + int(prof.num_steps)
    if before < first <= self.rs.global_step:
      jax.profiler.start_trace(os.path.join(self.exp.workdir, 'tensorboard'))
    elif before < last <= self.rs.global_step:
      jax.block_until_ready(self.rs.state.params)
      jax.profiler.stop_trace()
      self.progress.message(f'profiler trace of steps {prof.start_step}..{self.rs.global_step} written to '
                            f'{self.exp.workdir}/tensorboard (open the Profile tab of TensorBoard)')

  def _debug_kill(self, before: int):
    debug = self.cfg.debug   # a real signal, for the resume tests
    if before < int(debug.kill_at_step) <= self.rs.global_step and int(debug.kill_process) in (-1, jax.process_index()):
      os.kill(os.getpid(), getattr(signal, 'SIG' + debug.kill_signal))

  def _write_results(self, plot: bool = True) -> dict:
    summary = metrics_lib.summarize(self.rs.rows, self.exp.tasks.num_tasks)
    if 'wall_time' in summary:   # the run's time up to now (its rows hold each task's end)
      summary['wall_time']['total_s'] = self._wall_time()
    if jax.process_index() != 0:
      return summary
    workdir_lib.atomic_write(os.path.join(self.exp.workdir, workdir_lib.RESULTS), json.dumps(summary, indent=1))
    if plot and self._plot:
      try:
        report.plot_accuracy({self.cfg.method.name: summary}, os.path.join(self.exp.workdir, 'accuracy.png'))
      except ImportError:  # e.g. an accelerator machine without it: the results stand without their plot
        self.progress.message('accuracy.png is not written: matplotlib is not installed')
        self._plot = False
    return summary


def _chunks(per_step, start: int, steps: int, size: int):
  """(first step, n, batch) over steps [start, steps): chunks of n = `size` steps (each batch leaf
  stacked [n, ...]) at multiples of `size` from the epoch start, single steps (n = 1) elsewhere: before
  a resumed epoch's first boundary and after its last whole chunk. Aligned this way, a run resumed
  from any checkpoint makes the same calls as the uninterrupted run."""
  it = iter(per_step)
  k = start
  while k < steps:
    if size > 1 and k % size == 0 and k + size <= steps:
      group = [next(it) for _ in range(size)]
      yield k, size, {key: np.stack([b[key] for b in group]) for key in group[0]}
      k += size
    else:
      yield k, 1, next(it)
      k += 1


def _crossed(every: int, before: int, after: int) -> bool:
  """A multiple of `every` (> 0) lies in (before, after]."""
  return every > 0 and after // every > before // every


def _epochs_text(schedule) -> str:
  """'40', or '≤200' for a schedule that may stop the phase early."""
  return f'≤{schedule.epochs}' if schedule.needs_validation else str(schedule.epochs)


def _device_lr(lr, sharding):
  """The lr (a float, or a dict by parameter group) as float32 device scalars."""
  if isinstance(lr, dict):
    return {k: jax.device_put(jnp.asarray(v, jnp.float32), sharding) for k, v in lr.items()}
  return jax.device_put(jnp.asarray(lr, jnp.float32), sharding)


def _lr_values(lr) -> str:
  """'0.1', or '0.000143/0.001' for an lr per parameter group."""
  return '/'.join(f'{v:.3g}' for v in lr.values()) if isinstance(lr, dict) else f'{lr:.3g}'


def _lr_text(lr) -> str:
  return 'lr ' + _lr_values(lr)


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
  t0 = time.perf_counter()
  config_base.validate(config)  # the train command did both checks already; a library caller gets the same ones
  workdir_lib.check_compatible(config, workdir)  # refuses another experiment's workdir
  done = workdir_lib.finished_summary(workdir)
  if done is not None:
    Progress(silent=jax.process_index() != 0).message(f'{workdir} holds this finished run; its results:')
    _print_summary(done)
    return done
  workdir_lib.check_writable(workdir)   # a read-only or unwritable workdir, before any compute
  first = jax.process_index() == 0   # makes the workdir, holds its lock, writes and cleans up for all
  created = first and not os.path.exists(workdir)
  lock, log, before = None, None, None
  once = threading.Lock()   # the main thread and the watchdog's may both get here

  def forget():   # nothing computed: leave no trace of this start
    if before is None or not once.acquire(blocking=False) or workdir_lib.holds_experiment(workdir):
      return   # (before is None: not process 0, or it could not make the workdir)
    if lock is not None:
      lock.release()
    for name in set(os.listdir(workdir)) - before:
      path = os.path.join(workdir, name)
      if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
      elif os.path.exists(path):
        os.remove(path)
    if created:
      os.rmdir(workdir)
  unregister = multihost.before_exit(forget)   # the watchdog may end a failed start from its thread
  try:
    if first:   # (a full disk or a refused write here is one line too, and leaves no trace)
      os.makedirs(workdir, exist_ok=True)
      before = set(os.listdir(workdir))
      lock = workdir_lib.Lock(workdir)
      log = run_log.RunLog(workdir)
    if jax.process_count() > 1:   # the others start once the workdir exists
      multihost_utils.sync_global_devices('cil_jax: workdir ready')
    exp = Experiment(config, workdir)
    if first:
      workdir_lib.write_config(config, workdir)
      workdir_lib.write_dataset(exp.fingerprint, workdir)
    summary = Run(exp, t0).run()
    summary['wall_time_s'] = time.perf_counter() - t0
    _print_summary(summary)
  except BaseException as e:
    if log is not None:
      log.note(_ending_line(e))
    forget()
    raise
  finally:
    unregister()
    if log is not None:
      log.close()
    if lock is not None:
      lock.release()
  return summary


def _ending_line(e: BaseException) -> str:
  """What ended a session, for its log: the error line the command prints, or a bug's traceback."""
  if isinstance(e, Preempted):   # its message is logged already
    return ''
  line = errors.error_line(e) if isinstance(e, Exception) else None
  if line is None and isinstance(e, Exception):
    return ''.join(traceback.format_exception(e)).rstrip()
  return line or f'stopped ({type(e).__name__})'

