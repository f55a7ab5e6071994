"""The incremental loop: for each task, its phases of jitted steps -> memory update -> evaluation ->
checkpoint (`loop`, on one screen; logging, checkpoints, profiling, stops and fault injection are its
hooks). Resumable at any step from the workdir; the engine knows no method.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from cil_jax import config_base, errors
from cil_jax import methods as methods_lib
from cil_jax.engine import checkpoint as ckpt_lib
from cil_jax.engine import multihost, parallel, session
from cil_jax.engine import workdir as workdir_lib
from cil_jax.engine.evaluation import Evaluator, Loaders
from cil_jax.engine.exemplars import update_memory
from cil_jax.engine.factory import Factory, ModelSpec, carry_over
from cil_jax.engine.hooks import (Checkpoints, Chunk, FaultInjection, Logger, Profiler, StopAgreement, lr_text,
                                  lr_values)
from cil_jax.engine.progress import Progress
from cil_jax.engine.run_state import Cursor, RunState
from cil_jax.engine.step import chunk_sharding, normalizer
from cil_jax.engine.writer import RunWriter
from cil_jax.input_pipeline import base, device_data, image_checks, scenario, sources, streams
from cil_jax.methods import api
from cil_jax.methods.api import Classes
from cil_jax.results import metrics as metrics_lib


GROW_STREAM = 3000   # stream_seed(seed, task, GROW_STREAM): the fresh variables of a network that grows


class Experiment:
  """Everything built from the config once: the method, the data (scenario.Scenario, loaders, the images
  on the devices), the factory of the model's state and compiled steps, the evaluator."""

  def __init__(self, config, workdir: str):
    self.config, self.workdir = config, workdir
    self.method = methods_lib.get(config.method.name).make(config)
    self.replicated, self.sharded = parallel.shardings(parallel.make_mesh())
    self.source = source = sources.load(config.dataset, cache_dir=os.path.join(workdir, 'cache'))
    self.fingerprint = sources.fingerprint(source)
    multihost.check_same(json.dumps(self.fingerprint, sort_keys=True), 'reads other data than process 0 (a '
                         'dataset.root with other files, or none); every process needs the same dataset')
    workdir_lib.check_dataset(self.fingerprint, workdir)   # before any compute: the run's data must be its own
    self.data = scenario.Scenario.build(source, config, lambda t: any(
        ph.validation == 'validation' for ph in self.method.phases(t)))
    self.loaders = Loaders.of(source, self.data)
    self.device_data = self.device_arrays = None   # {augment: DeviceData} and the images on the devices
    if device_data.resolve(config.dataset.on_device, source.train.in_memory, source.augment):
      self.device_data = {flag: device_data.DeviceData(source.train.images, self.data.train_labels,
                                                       source.augment if flag else 'none', source.image_size)
                          for flag in (True, False)}
      self.device_arrays = self.device_data[True].arrays(self.replicated)
    if (self.device_data is None and self.loaders.train.trains_with_tf_data) or self.loaders.test.encoded:
      streams.tensorflow()   # the streams need tf.data: say so now if it is missing, not after a task
    self.steps_per_call = int(config.train.steps_per_call) or (1 if jax.devices()[0].platform == 'cpu' else 8)
    self.factory = Factory(ModelSpec.of(config, source.num_classes), api.Optimizer.of_train_config(config.train),
                           normalizer(source.mean, source.std), self.replicated, self.sharded, self.device_data)
    self._factories = {self.factory.spec: self.factory}
    self._check_batches()
    self.evaluator = Evaluator(self.data, source, self.loaders, self.factory, self.method.predict)

  def _check_batches(self):
    for t in range(self.data.tasks.num_tasks):
      for ph in self.method.phases(t):
        parallel.check_batch(ph.batch_size + ph.replay_batch_size, f'{ph.name} batch size')
        if ph.validation is not None:  # validation batches are of the phase's batch size alone
          parallel.check_batch(ph.batch_size, f'{ph.name} batch size (validation)')
    parallel.check_batch(int(self.config.eval.batch_size), 'eval.batch_size')

  def image_shape(self) -> tuple[int, int, int]:
    train = self.source.train
    return self.source.image_size, self.source.image_size, train.images.shape[-1] if train.in_memory else 3

  def init_state(self, network: dict | None = None):
    """The initial train state and method state (both replicated on the mesh) of the network `network`
    (api.Method.network's form; None: the config's model)."""
    return self.factory_of(network or {}).init_state(int(self.config.seed), self.image_shape(), self.method,
                                                     self.data.tasks.num_tasks)

  def network_of(self, t: int) -> dict:
    """Task t's form of the network (api.Method.network); {} for a method whose network never changes."""
    return {} if self.method.network is None else dict(self.method.network(t))

  def factory_of(self, network: dict):
    """The factory of a form of the network (one per form, cached with its compiled steps)."""
    spec = self.factory.spec.with_options(network)
    if spec not in self._factories:
      self._factories[spec] = self.factory.sibling(spec)
    return self._factories[spec]


def loop(run: 'Run') -> None:
  """Task -> phase -> epoch -> chunk of steps, from the run's cursor; `run.hooks` log, save, profile,
  inject faults and agree on stops at the boundaries. A resumed run makes the calls of an uninterrupted one."""
  rs, hooks = run.rs, run.hooks
  while rs.cursor.task < run.exp.data.tasks.num_tasks:
    t = rs.cursor.task
    phases, data = run.start_task(t)
    for p in range(rs.cursor.phase, len(phases)):
      phase = phases[p]
      _check_phase_data(t, phase, data)
      if rs.cursor.at_phase_start(p):
        run.start_phase(t, phase)
      for epoch in range(rs.cursor.epoch if rs.cursor.phase == p else 0, phase.schedule.epochs):
        ep = run.start_epoch(t, p, epoch, phase, data)
        for hook in hooks:
          hook.start_epoch(run, ep)
        with run.naming_bad_images(ep):
          for k, n, batch in ep.chunks():
            before = rs.global_step
            chunk = Chunk(k, n, before, ep.call(k, n, batch))
            for hook in hooks:
              hook.after_chunk(run, ep, chunk)
        for hook in hooks:
          hook.epoch_trained(run, ep)
        last = run.end_epoch(ep)
        for hook in hooks:
          hook.end_epoch(run, ep, last)
        if last:
          break
      else:
        run.end_phase(t, p)  # a phase with zero epochs
    for hook in hooks:
      hook.end_training(run, t)
    row = run.finish_task(t)
    for hook in hooks:
      hook.end_task(run, t, row)


def _check_phase_data(t, phase, data) -> None:
  """The sets the phase names are in the method's task data."""
  for name in (phase.data, phase.validation):
    if name is not None and name not in data:
      raise ValueError(f'phase {phase.name!r} of task {t + 1} names the set {name!r}, but the method\'s task_data '
                       f'gives {sorted(data)}')


class Run:
  """One session over a run's state (run_state.RunState, which is what a checkpoint holds)."""

  def __init__(self, exp: Experiment, started: float | None = None):
    """`started`: the session's start (time.perf_counter; default: now), for the run's wall time."""
    self.exp = exp
    cfg = self.cfg = exp.config
    self.ckpt = ckpt_lib.Checkpointer(os.path.join(exp.workdir, workdir_lib.CHECKPOINTS), keep=int(cfg.checkpoint.keep))
    first = exp.network_of(0)
    self.rs = RunState(*exp.init_state(first), network=first)
    self.saved_cursor = None
    self.progress = Progress(silent=jax.process_index() != 0)
    self.called = set()   # the train steps called once (compiled) in this process
    self.writer = RunWriter(exp.workdir, cfg.method.name, jax.process_index() == 0, self.progress.message)
    step = self.ckpt.latest()
    if step is not None:  # the workdir's config was checked against this one (workdir.py)
      self._restore(step)
    self.rs.sessions += 1
    self._time_before = self.rs.wall_time_s
    self._started = time.perf_counter() if started is None else started
    self.writer.hparams(config_base.result_fields(cfg))
    log_every, every_steps = int(cfg.log_every_steps), int(cfg.checkpoint.every_steps)
    self.stop = StopAgreement(log_every, every_steps)
    profile = [Profiler(int(cfg.profile.start_step), int(cfg.profile.num_steps), os.path.join(exp.workdir, 'tensorboard'))
               ] if int(cfg.profile.start_step) >= 0 else []
    self.hooks = [Logger(log_every), *profile, Checkpoints(every_steps, int(cfg.checkpoint.every_epochs)),
                  FaultInjection(cfg.debug), self.stop]

  def _restore(self, step: int):
    """The checkpoint at `step`, restored into the initial state of its cursor's task and phase: a phase
    with its own optimizer was interrupted there when the checkpoint holds that optimizer's state."""
    exp, meta = self.exp, self.ckpt.restore_meta(step)
    cursor, network, teacher_network = Cursor(**meta['cursor']), meta.get('network', {}), meta.get('teacher_network', {})
    if network != self.rs.network:   # the checkpoint holds a network that grew
      self.rs = RunState(*exp.init_state(network))
    if meta['has_phase_optimizer']:
      phase = exp.method.phases(cursor.task)[cursor.phase]
      self.rs.state = self.rs.state.replace(
          phase_opt_state=exp.factory_of(network).phase_optimizer_state(phase.step, self.rs.state.params))
    teacher = exp.init_state(teacher_network)[0].teacher_copy() if teacher_network != network else None
    self.rs = RunState.restore(self.ckpt, step, meta, self.rs, exp.replicated, teacher)
    exp.evaluator.use(self.factory)
    self.saved_cursor = dataclasses.replace(self.rs.cursor)
    self.progress.message(f'resumed from checkpoint {step}: {self.where()}')

  @property
  def factory(self):
    """The factory of the state's network."""
    return self.exp.factory_of(self.rs.network)

  @property
  def teacher_factory(self):
    return self.exp.factory_of(self.rs.teacher_network)

  def wall_time(self) -> float:
    """The run's wall time so far: the sessions before this one (as their last checkpoint holds it)
    and this one."""
    return self._time_before + time.perf_counter() - self._started

  def save(self):
    self.rs.wall_time_s = self.wall_time()
    self.rs.save(self.ckpt, int(self.cfg.seed))
    self.saved_cursor = dataclasses.replace(self.rs.cursor)

  def context(self, t: int) -> api.TaskContext:
    exp, rs, data = self.exp, self.rs, self.exp.data
    eval_batch = int(self.cfg.eval.batch_size)
    return api.TaskContext(
        t=t, tasks=data.tasks, config=self.cfg, memory=rs.memory, train_by_class=data.train_by_class,
        train_labels=data.train_labels, label_map=data.label_map, class_info=data.class_info,
        validation=None if data.validation_by_task is None else data.validation_by_task[t], state=rs.state,
        method_state=rs.method_state,
        _outputs=lambda idx, augment, seed, keys: exp.evaluator.outputs(self.rs.state, idx, augment, seed, eval_batch,
                                                                         keys))

  def where(self) -> str:
    """The cursor for people: tasks, phases and epochs counted from 1, as everywhere in the output."""
    c, num_tasks = self.rs.cursor, self.exp.data.tasks.num_tasks
    if c.task >= num_tasks:
      return f'all {num_tasks} tasks done'
    phases = self.exp.method.phases(c.task)
    if c.phase >= len(phases):
      return f'task {c.task + 1}/{num_tasks}, training done, evaluation next'
    phase = phases[c.phase]
    return (f'task {c.task + 1}/{num_tasks}, {phase.name} epoch {c.epoch + 1}/{_epochs_text(phase.schedule)}, '
            f'step {c.step}')

  def run(self) -> dict:
    self.stop.install(self)
    try:
      loop(self)
    except session.Stopped as e:
      if e.saved:
        self.ckpt.wait()
        self.progress.message(f'{signal.Signals(e.signum).name}: checkpoint saved at {self.where()}; run the same '
                              'command to resume')
      raise
    finally:
      self.ckpt.wait()
      self.ckpt.close()
      self.writer.close()
      for hook in self.hooks:
        hook.close(self)
    return self.results(plot=False)   # the run's total time now includes its last checkpoint

  # --- the loop's steps ------------------------------------------------------------------------

  def start_task(self, t: int) -> tuple[list, dict]:
    """Task t's phases and task data; at its start (not on a resume inside it) its teacher and the
    method's before_task hook first."""
    rs, method = self.rs, self.exp.method
    phases = method.phases(t)
    if rs.cursor.at_task_start():
      if any(ph.step.teacher == 'task_start' for ph in phases):
        self._take_teacher()
      if self.exp.network_of(t) != rs.network:
        self._grow(t, self.exp.network_of(t))
      if method.before_task is not None:
        self._set_model(*method.before_task(self.context(t)))
    return phases, method.task_data(self.context(t))

  def start_phase(self, t, phase):
    """A phase starting fresh: its teacher, its own optimizer, its hook, its schedule's state."""
    rs = self.rs
    if phase.step.teacher == 'phase_start':
      self._take_teacher()
    rs.state = self.factory.with_phase_optimizer(rs.state, phase.step)
    if phase.on_start is not None:
      self._set_model(*phase.on_start(self.context(t)))
    rs.schedule_state = phase.schedule.initial_state()
    rs.best = rs.state.teacher_copy() if phase.schedule.keeps_best else None

  def start_epoch(self, t, p, epoch, phase, data: dict) -> 'Epoch':
    """The epoch's batch plan (seeded by run seed, task, phase and epoch), from the cursor's step; `data`:
    the method's task data."""
    rs, sched = self.rs, phase.schedule
    new_idx, mem_idx = data[phase.data]
    seed = scenario.stream_seed(int(self.cfg.seed), t, p, epoch)
    plan = streams.make_plan(phase.stream, new_idx, mem_idx, phase.batch_size, phase.replay_batch_size, seed,
                             labels=self.exp.data.train_labels)
    if plan.steps == 0:
      raise ValueError(f'task {t + 1} phase {phase.name!r} has {len(new_idx) + len(mem_idx)} training examples, fewer '
                       f'than its batch of {phase.batch_size + phase.replay_batch_size}: lower train.batch_size '
                       'or use more data / a larger memory.size')
    start = rs.cursor.step if (rs.cursor.phase, rs.cursor.epoch) == (p, epoch) else 0
    rs.cursor = Cursor(t, p, epoch, start)
    header = f'task {t + 1}/{self.exp.data.tasks.num_tasks} {phase.name} ep {epoch + 1}/{_epochs_text(sched)}'
    return Epoch(self, (t, p, epoch), phase, data, plan, start, header)

  def end_epoch(self, ep: 'Epoch') -> bool:
    """Validation loss, the schedule's verdict (best weights kept or restored, early stop), the cursor
    moved on. True when the phase is over."""
    rs, phase, sched, epoch = self.rs, ep.phase, ep.phase.schedule, ep.epoch
    val_loss = None
    if phase.validation is not None:
      vstep = phase.validation_step or phase.step
      val_loss = self.exp.evaluator.validation_loss(vstep, rs.state, rs.teacher if vstep.teacher else None,
                                                    rs.method_state, ep.classes, *ep.data[phase.validation],
                                                    phase.batch_size, self.teacher_factory)
      self.progress.message(f'{ep.header}: validation loss {val_loss:.4f}')
      self.writer.validation_loss(rs.global_step, val_loss)
    lr_before = sched.lr(epoch, ep.steps - 1, ep.steps, rs.schedule_state)
    end = sched.end_epoch(epoch, rs.schedule_state, val_loss)
    rs.schedule_state = end.state
    if end.new_best:
      rs.best = rs.state.teacher_copy()
    if end.restore_best:
      self._restore_best()
      lr_after = sched.lr(epoch + 1, 0, ep.steps, rs.schedule_state)
      self.progress.message(f'{ep.header}: {lr_text(lr_before)} -> {lr_values(lr_after)}, best weights restored')
    if end.stop and epoch < sched.epochs - 1:
      self.progress.message(f'{ep.header}: the schedule ends the phase early'
                            + (' (best weights restored)' if sched.keeps_best else ''))
    if end.stop or epoch == sched.epochs - 1:
      self.end_phase(ep.t, ep.p)
      return True
    rs.cursor = Cursor(ep.t, ep.p, epoch + 1, 0)
    return False

  def end_phase(self, t, p):
    rs = self.rs
    if rs.best is not None:  # the phase ends with its best weights
      self._restore_best()
    rs.best, rs.schedule_state = None, {}
    rs.state = rs.state.replace(phase_opt_state=())  # a phase's own optimizer ends with it
    rs.cursor = Cursor(t, p + 1, 0, 0)

  def finish_task(self, t: int) -> dict:
    """After task t's training: the method's after_task hook, the memory update, the evaluation (its row
    added to the results, written), the cursor on the next task."""
    exp, cfg, rs = self.exp, self.cfg, self.rs
    if exp.method.after_task is not None:
      rs.method_state = jax.device_put(exp.method.after_task(self.context(t)), exp.replicated)
    rs.memory = update_memory(self.context(t), cfg.memory, int(cfg.seed))
    row = exp.evaluator.test_accuracy(rs.state, rs.method_state, t, Classes.for_task(exp.data.tasks, t),
                                      int(cfg.eval.batch_size))
    row.update(wall_time_s=self.wall_time(), sessions=rs.sessions)
    rs.rows.append(row)
    self.results()
    self.progress.message(f'task {t + 1}/{exp.data.tasks.num_tasks}: top-1 {row["top1_all"]:.2f} on '
                          f'{exp.data.tasks.end(t)} seen classes (per task: {" ".join(f"{v:.1f}" for v in row["top1"])})')
    rs.teacher = None
    rs.cursor = Cursor(t + 1)
    return row

  def results(self, plot: bool = True) -> dict:
    """The results summary so far, written (process 0)."""
    summary = metrics_lib.summarize(self.rs.rows, self.exp.data.tasks.num_tasks)
    if 'wall_time' in summary:   # the run's time up to now (its rows hold each task's end)
      summary['wall_time']['total_s'] = self.wall_time()
    self.writer.results(summary, plot)
    return summary

  def _take_teacher(self):
    self.rs.teacher, self.rs.teacher_network = self.rs.state.teacher_copy(), dict(self.rs.network)

  def _grow(self, t: int, network: dict):
    """Task t's form of the network (api.Method.network): fresh variables of the new form (seeded by the run
    seed and the task), filled by the method's grow hook (default factory.carry_over); the main optimizer
    starts fresh for the new parameters; the method's own arrays are kept."""
    exp, rs = self.exp, self.rs
    factory = exp.factory_of(network)
    fresh, _ = factory.init_variables(scenario.stream_seed(int(self.cfg.seed), t, GROW_STREAM), exp.image_shape())
    grow = exp.method.grow or (lambda ctx, old, new: carry_over(old, new))
    variables = grow(self.context(t), rs.state.variables, fresh)
    rs.state, rs.network = factory.train_state(variables, rs.state.params['method']), dict(network)
    exp.evaluator.use(factory)

  def _set_model(self, params, method_state):
    self.rs.state = self.rs.state.replace(params=jax.device_put(params, self.exp.replicated))
    self.rs.method_state = jax.device_put(method_state, self.exp.replicated)

  def _restore_best(self):
    best = jax.tree.map(jnp.copy, self.rs.best)  # the best stays the phase's: the state is donated
    self.rs.state = self.rs.state.replace(params=best['params'], batch_stats=best['batch_stats'])

  @contextlib.contextmanager
  def naming_bad_images(self, ep: 'Epoch'):
    """tf.data failed inside a batch: find the unreadable image, name it, keep what was computed.
    When the phase has not trained yet and an earlier checkpoint exists, that one is kept: the
    phase's start (teacher, hooks) then runs again from the weights it started from."""
    try:
      yield
    except Exception as e:  # noqa: BLE001 - tf.data's errors are named; the rest pass through
      if not streams.is_data_error(e):
        raise
      trained = self.rs.global_step > 0   # at step 0 of the run nothing is computed: a failed start
      if trained and (not self.rs.cursor.at_phase_start(self.rs.cursor.phase) or self.ckpt.latest() is None):
        self.save()
      split = self.exp.source.train
      ahead = 3 * self.exp.steps_per_call + 8     # the failing batch is at most a few prefetches ahead
      for i in ep.plan.indices[ep.k:ep.k + ahead].reshape(-1):
        problem = image_checks.check_image(split, int(i))
        if problem:
          raise base.DataError(f'{problem}; {image_checks.bad_image_fix(split, problem)}') from e
      raise base.DataError(f'reading training batch {ep.k} failed: {errors.one_line(e)}; rerun the same '
                           'command to resume from the last checkpoint') from e


class Epoch:
  """One epoch of a phase from step `start`: its plan, its lr per step, its compiled steps (one per call
  size) and its calls, aligned by `_chunks`."""

  def __init__(self, run: Run, where: tuple[int, int, int], phase, data: dict, plan, start: int, header: str):
    """where: (task, phase, epoch); data: the method's task data."""
    exp, rs = run.exp, run.rs
    (self.t, self.p, self.epoch), self.phase, self.data, self.plan = where, phase, data, plan
    self.run, self.start, self.header = run, start, header
    self.steps, self.per_step, self.k = plan.steps, phase.schedule.per_step, start
    self.classes = Classes.for_task(exp.data.tasks, self.t)
    self.teacher = rs.teacher if phase.step.teacher is not None else None
    self.calls = {n: run.factory.train_step(phase.step, bool(phase.augment), n, run.teacher_factory)
                  for n in {1, exp.steps_per_call}}
    self._constant = {}   # a constant lr on the devices, per call size
    self.lr_start = self.lr_of_step(start)
    self.throttle = parallel.Throttle()
    self.arrays = () if exp.device_data is None else exp.device_arrays   # the images, where they are on the devices

  def lr_of_step(self, k: int):
    return self.phase.schedule.lr(self.epoch, k, self.steps, self.run.rs.schedule_state)

  def lrs(self, k: int, n: int):
    """The lr of steps [k, k + n): a scalar (n = 1) or stacked [n]; a constant lr is copied once
    per epoch and chunk size."""
    if not self.per_step and n in self._constant:
      return self._constant[n]
    values = [self.lr_of_step(k + i if self.per_step else 0) for i in range(n)]
    lr = _device_lr(values[0] if n == 1 else jax.tree.map(lambda *v: np.asarray(v, np.float32), *values),
                    self.run.exp.replicated)
    if not self.per_step:
      self._constant[n] = lr
    return lr

  def chunks(self):
    """(first step, n, batch on the devices) over the epoch's steps from `start`, prefetched."""
    exp, pi, pc = self.run.exp, jax.process_index(), jax.process_count()
    if exp.device_data is not None:
      per_step = device_data.DeviceData.slots(self.plan, self.start, pi, pc)
    else:
      loader = exp.loaders.train if self.phase.augment else exp.loaders.train_eval
      per_step = loader.train(self.plan, self.start).as_numpy_iterator()
    stacked = chunk_sharding(exp.sharded)
    for self.k, n, batch in parallel.prefetch(_chunks(per_step, self.start, self.steps, exp.steps_per_call), lambda item: (
        item[0], item[1], parallel.to_global(item[2], exp.sharded if item[1] == 1 else stacked))):
      yield self.k, n, batch

  def call(self, k: int, n: int, batch):
    """Steps [k, k + n) in one call; the run's state and counters moved on. Returns their metrics."""
    run, rs, step = self.run, self.run.rs, self.calls[n]
    compiles = step not in run.called   # a step's first call compiles it
    if k == self.start and not compiles:   # the batch is loaded, the step compiled: the rate counts from here
      run.progress.mark(rs.images_seen)
    rs.state, metrics = self.throttle(step(rs.state, self.teacher, batch, self.classes, self.lrs(k, n),
                                           rs.method_state, self.arrays))
    rs.global_step += n
    rs.images_seen += n * self.plan.indices.shape[1]
    rs.cursor.step = k + n
    if compiles:   # the rate counts from the end of this call, without the compile
      run.called.add(step)
      jax.block_until_ready(metrics)
      run.progress.mark(rs.images_seen)
    return metrics


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


def _epochs_text(schedule) -> str:
  """'40', or '≤200' for a schedule that may stop the phase early."""
  return f'≤{schedule.epochs}' if schedule.needs_validation else str(schedule.epochs)


def _device_lr(lr, sharding):
  """The lr (a float, or a dict by parameter group) as float32 device scalars."""
  if isinstance(lr, dict):
    return {k: jax.device_put(jnp.asarray(v, jnp.float32), sharding) for k, v in lr.items()}
  return jax.device_put(jnp.asarray(lr, jnp.float32), sharding)


def _print_summary(summary: dict) -> None:
  if jax.process_index() == 0:
    print('\n' + metrics_lib.format_table(summary), file=sys.stdout, flush=True)


def train_and_evaluate(config, workdir: str, checked: bool = False) -> dict:
  """Runs (or resumes) the experiment in `workdir`; returns the results summary.

  The config is validated and the workdir checked (workdir.check_start) unless `checked` (the train
  command did both, before importing JAX). A finished run only prints its results (a read-only workdir
  is fine then); a start that fails before its first checkpoint leaves no trace (session.session).
  """
  t0 = time.perf_counter()
  if not checked:
    config_base.validate(config)
    workdir_lib.check_start(config, workdir)
  done = workdir_lib.finished_summary(workdir)
  if done is not None:
    Progress(silent=jax.process_index() != 0).message(f'{workdir} holds this finished run; its results:')
    _print_summary(done)
    return done
  with session.session(workdir):
    exp = Experiment(config, workdir)
    if jax.process_index() == 0:
      workdir_lib.write_config(config, workdir)
      workdir_lib.write_dataset(exp.fingerprint, workdir)
    summary = Run(exp, t0).run()
    summary['wall_time_s'] = time.perf_counter() - t0
    _print_summary(summary)
  return summary
