"""Class order, task splits, the validation hold-out and exemplar-memory bookkeeping (pure numpy, host
side); `Scenario`: all of it built once for a run, with its start-time checks.

Labels inside the project are *incremental labels*: task k holds the contiguous range
[base + (k - 1) * step, base + k * step). `label_map[original_label] = incremental_label`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np

from cil_jax.errors import UserError
from cil_jax.input_pipeline import base, image_checks


class ScenarioError(UserError, ValueError):
  """A scenario or memory setting that cannot work; the message says how to fix it."""


# --- class order -------------------------------------------------------------------------------

POLICIES = ('fixed', 'growing', 'facil', 'per_class')  # memory.policy: per_class_sizes, facil_quota
SELECTIONS = ('random', 'herding', 'file_order')   # memory.selection: random_priority / herding_priority /
                                                   # the class's first images in file order (MGRB)


def stream_seed(seed: int, *keys: int) -> int:
  """A 31-bit seed derived from the run seed and (task, phase, epoch, ...)."""
  return int(np.random.SeedSequence([seed & 0xFFFFFFFF, *keys]).generate_state(1)[0] & 0x7FFFFFFF)


def label_map(num_classes: int, class_order, seed: int) -> np.ndarray:
  """Returns `m` with m[original] = incremental label.

  class_order:
    'ssil'     SS-IL code base: perm = RandomState(seed).permutation(C); original c becomes perm[c].
    'facil'    FACIL/MGRB: order = RandomState(seed).permutation(C); incremental j is original order[j].
    'identity' incremental label = original label.
    a list     explicit learning order (FACIL convention): incremental j is original order[j]; also as
               a string '3,1,2,...' or '[3, 1, 2, ...]' (what --config.scenario.class_order=... gives).
  For the same seed 'ssil' and 'facil' are inverse permutations of each other.
  """
  if isinstance(class_order, str) and is_order_list(class_order):
    class_order = [int(v) for v in class_order.strip().strip('[]()').split(',') if v.strip()]
  if isinstance(class_order, str):
    if class_order == 'identity':
      return np.arange(num_classes, dtype=np.int64)
    perm = np.random.RandomState(seed).permutation(num_classes)
    if class_order == 'ssil':
      return perm.astype(np.int64)
    if class_order == 'facil':
      return _order_to_map(perm)
    raise ScenarioError(
        f"scenario.class_order={class_order!r} is unknown; use 'ssil', 'facil', 'identity' or a list")
  order = np.asarray(list(class_order), dtype=np.int64)
  if sorted(order.tolist()) != list(range(num_classes)):
    raise ScenarioError(
        f'scenario.class_order must be a permutation of 0..{num_classes - 1}; got {len(order)} entries (a config '
        f'may set a list for its dataset\'s own classes: pass --config.scenario.class_order=facil or ssil)')
  return _order_to_map(order)


def is_order_list(text: str) -> bool:
  """'3,1,2' or '[3, 1, 2]': an explicit class order written as text."""
  body = text.strip().strip('[]()').replace(' ', '')
  return bool(body) and all(v.isdigit() for v in body.split(','))


def _order_to_map(order: np.ndarray) -> np.ndarray:
  m = np.empty_like(order)
  m[order] = np.arange(len(order))
  return m


# --- tasks -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Tasks:
  """Task boundaries: task k covers incremental labels [start(k), end(k)).

  Either `base` classes then `step` per task (the last one may be smaller), or explicit `sizes`
  (FACIL's split, `facil_split`), which then decide alone."""
  num_classes: int
  base: int
  step: int
  sizes: tuple = ()

  def __post_init__(self):
    if self.sizes:
      if sum(self.sizes) != self.num_classes or min(self.sizes) < 1:
        raise ScenarioError(f'task sizes {self.sizes} must be positive and add up to the {self.num_classes} classes')
      return
    if self.base <= 0 or self.step <= 0:
      raise ScenarioError(f'scenario.base={self.base} and scenario.step={self.step} must be positive')
    if self.base > self.num_classes:
      raise ScenarioError(
          f'scenario.base={self.base} exceeds the {self.num_classes} classes of the dataset')

  @property
  def num_tasks(self) -> int:
    if self.sizes:
      return len(self.sizes)
    return 1 + math.ceil((self.num_classes - self.base) / self.step)

  def start(self, t: int) -> int:
    if self.sizes:
      return int(sum(self.sizes[:t]))
    return 0 if t == 0 else self.base + (t - 1) * self.step

  def end(self, t: int) -> int:
    if self.sizes:
      return int(sum(self.sizes[:t + 1]))
    return min(self.base + t * self.step, self.num_classes)

  def size(self, t: int) -> int:
    return self.end(t) - self.start(t)

  def task_of_class(self) -> np.ndarray:
    out = np.empty(self.num_classes, dtype=np.int32)
    for t in range(self.num_tasks):
      out[self.start(t):self.end(t)] = t
    return out


def facil_split(num_classes: int, num_tasks: int, nc_first_task: int = 0) -> Tasks:
  """FACIL's task split (datasets/memory_dataset.get_data): C // T classes per task, the remainder
  one each to the first tasks; with nc_first_task, that many in task 0 and the rest split the same
  way over tasks 1.., the remainder to tasks 1, 2, ..."""
  if num_tasks < 1:
    raise ScenarioError(f'scenario.num_tasks={num_tasks} must be >= 1')
  if not nc_first_task:
    if num_tasks > num_classes:
      raise ScenarioError(f'scenario.num_tasks={num_tasks} exceeds the {num_classes} classes of the dataset')
    sizes = [num_classes // num_tasks] * num_tasks
    for i in range(num_classes % num_tasks):
      sizes[i] += 1
  else:
    rest = num_classes - nc_first_task
    if nc_first_task >= num_classes or (num_tasks > 1 and rest < num_tasks - 1) or (num_tasks == 1 and rest):
      raise ScenarioError(f'scenario.nc_first_task={nc_first_task} leaves {rest} of the {num_classes} classes for '
                          f'{num_tasks - 1} more tasks; each needs at least one (and one task takes all classes)')
    sizes = [nc_first_task] + ([rest // (num_tasks - 1)] * (num_tasks - 1) if num_tasks > 1 else [])
    for i in range(rest % (num_tasks - 1) if num_tasks > 1 else 0):
      sizes[i + 1] += 1
  return Tasks(num_classes, sizes[0], sizes[1] if len(sizes) > 1 else sizes[0], sizes=tuple(sizes))


def make_tasks(num_classes: int, scenario_cfg) -> Tasks:
  """The config's split: FACIL's (scenario.num_tasks > 0) or base + step."""
  if int(scenario_cfg.num_tasks) > 0:
    return facil_split(num_classes, int(scenario_cfg.num_tasks), int(scenario_cfg.nc_first_task))
  return Tasks(num_classes, int(scenario_cfg.base), int(scenario_cfg.step))


# --- memory ------------------------------------------------------------------------------------

def per_class_sizes(memory_size: int, seen: int, total_classes: int, policy: str,
                    previous: np.ndarray | None = None, available: np.ndarray | None = None) -> np.ndarray:
  """Exemplars kept per class after a task in which `seen` classes are known.

  fixed   : total exactly M. bpc = ceil(M / seen); new classes get bpc, old ones are cut to bpc
            (nested sets), then one exemplar is trimmed from each of the largest classes (highest
            label first among equals) until the total is M.
  growing : bpc = ceil(M / total_classes), fixed for the whole run.
  per_class: M per class (MGRB's fixed per-class memory; the total grows with the classes).
  A class with fewer images than its budget keeps all of them (`available`).
  `previous` (sizes of the already-stored classes) keeps the sets nested: a class never grows back.
  """
  if policy == 'fixed':
    bpc = math.ceil(memory_size / seen)
  elif policy == 'per_class':
    bpc = memory_size
  else:  # 'growing' (POLICIES; the config check allows no other)
    bpc = math.ceil(memory_size / total_classes)
  sizes = np.full(seen, bpc, dtype=np.int64)
  if previous is not None and len(previous):
    sizes[:len(previous)] = np.minimum(sizes[:len(previous)], previous)
  if available is not None:
    sizes = np.minimum(sizes, available[:seen])
  if policy == 'fixed':
    overflow = int(sizes.sum()) - memory_size
    if overflow > 0:
      # Largest classes first, then the highest label: deterministic and nested.
      order = np.lexsort((-np.arange(seen), -sizes))
      while overflow > 0:
        top = sizes[order[0]]
        largest = order[sizes[order] == top]
        take = largest[:overflow]
        sizes[take] -= 1
        overflow -= len(take)
        order = np.lexsort((-np.arange(seen), -sizes))
  return sizes


def facil_quota(memory_size: int, seen: int) -> int:
  """FACIL's exemplars per class (ExemplarsDataset._exemplars_per_class_num): ceil(M / seen) for
  every seen class, not trimmed to M (M = 2000 at 30 classes keeps 67 each, 2010 in all)."""
  return math.ceil(memory_size / seen)


def check_memory_budget(memory_size: int, tasks: Tasks, policy: str) -> None:
  """Fails before any compute when the memory cannot hold one exemplar of each class it must keep."""
  if memory_size == 0:
    return
  if memory_size < 0:
    raise ScenarioError(f'memory.size={memory_size} must be >= 0 (0 = no exemplar memory)')
  if policy == 'fixed':
    for t in range(tasks.num_tasks - 1):  # the memory after the last task is never replayed
      seen = tasks.end(t)
      if memory_size < seen:
        raise ScenarioError(
            f'memory.size={memory_size} is smaller than the {seen} classes seen after task {t + 1} of '
            f'{tasks.num_tasks} (one exemplar each at least, up to the {tasks.end(tasks.num_tasks - 2)} classes '
            f'before the last task); use memory.size >= {tasks.end(tasks.num_tasks - 2)} or memory.size=0 for '
            'no memory')
  elif policy == 'growing' and memory_size < tasks.num_classes:
    raise ScenarioError(
        f'memory.size={memory_size} is smaller than the {tasks.num_classes} classes of the dataset '
        f'(growing memory keeps ceil(M / classes) per class); use memory.size >= {tasks.num_classes}')


@dataclasses.dataclass
class Memory:
  """Exemplar memory: for each class an ordered list of training-set indices (priority order).

  Stored flat (indices + per-class counts) so it is a plain array pytree for checkpoints.
  """
  indices: np.ndarray  # int64 [total]
  counts: np.ndarray   # int64 [classes stored], in incremental-label order

  @classmethod
  def empty(cls) -> 'Memory':
    return cls(np.zeros(0, np.int64), np.zeros(0, np.int64))

  def per_class(self) -> list[np.ndarray]:
    return np.split(self.indices, np.cumsum(self.counts)[:-1]) if len(self.counts) else []

  @property
  def size(self) -> int:
    return int(self.counts.sum())

  def update(self, new_class_candidates: Sequence[np.ndarray], memory_size: int, total_classes: int,
             policy: str) -> 'Memory':
    """Adds the new classes (each an index list already in priority order) and re-cuts all sets."""
    old = self.per_class()
    seen = len(old) + len(new_class_candidates)
    available = np.array([len(c) for c in old] + [len(c) for c in new_class_candidates], np.int64)
    sizes = per_class_sizes(memory_size, seen, total_classes, policy, previous=self.counts,
                            available=available)
    sets = [c[:k] for c, k in zip(list(old) + list(new_class_candidates), sizes)]
    return Memory(np.concatenate(sets).astype(np.int64) if sets else np.zeros(0, np.int64),
                  sizes.astype(np.int64))


# --- exemplar selection --------------------------------------------------------------------------

def random_priority(class_indices: np.ndarray, seed: int, label: int) -> np.ndarray:
  """Seeded random priority order of one class's training indices (stable across runs)."""
  rng = np.random.RandomState([seed & 0x7FFFFFFF, label])
  return class_indices[rng.permutation(len(class_indices))]


def herding_priority(class_indices: np.ndarray, features: np.ndarray, k: int) -> np.ndarray:
  """iCaRL herding: greedily picks the sample that brings the running mean closest to the class mean.

  features: [n, d] features of `class_indices` (L2-normalised here). Returns the first k indices in
  selection order; the order is a priority, so truncation keeps the best subset (nested sets).
  """
  f = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
  mu = f.mean(0)
  k = min(k, len(f))
  chosen = np.zeros(k, np.int64)
  taken = np.zeros(len(f), bool)
  running = np.zeros_like(mu)
  for i in range(k):  # k iterations, each vectorised over all candidates
    dist = np.linalg.norm(mu[None] - (running[None] + f) / (i + 1), axis=1)
    dist[taken] = np.inf
    j = int(np.argmin(dist))
    chosen[i], taken[j] = j, True
    running += f[j]
  return class_indices[chosen]


def facil_holdout(train_by_class: Sequence[np.ndarray], tasks: Tasks, fraction: float,
                  seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """FACIL's validation split (datasets/memory_dataset.get_data), for every task at once:
  (validation indices per task, remaining training indices per class).

  For each task, for each of its classes in order: k = round(n · fraction) of the class's n training
  images (file order; np.round, half to even) drawn by Python's `random.sample` from a generator
  seeded with `seed` and shared by all tasks and classes in that order, as FACIL's
  `random.seed(seed)` then get_data (nothing else draws from Python's `random` before it there).
  A task's validation set lists each class's drawn images in decreasing file position, as FACIL
  appends them."""
  import random
  rng = random.Random(seed)
  val_by_task, remaining = [], [np.asarray(c) for c in train_by_class]
  for t in range(tasks.num_tasks):
    parts = []
    for c in range(tasks.start(t), tasks.end(t)):
      members = np.asarray(train_by_class[c])
      picks = rng.sample(range(len(members)), int(np.round(len(members) * fraction)))
      chosen = np.sort(np.asarray(picks, np.int64))[::-1]
      parts.append(members[chosen])
      remaining[c] = np.delete(members, chosen)
    val_by_task.append(np.concatenate(parts) if parts else np.zeros(0, np.int64))
  return val_by_task, remaining


def holdout_minimum(fraction: float) -> int:
  """The fewest training images of a class of which FACIL's rule holds any out: round(n · fraction) >= 1,
  np.round rounding half to even (at 0.1: 6, since 5 images give round(0.5) = 0)."""
  n = max(1, int(0.5 / fraction) - 1)
  while int(np.round(n * fraction)) < 1:
    n += 1
  return n


def check_holdout(validation_by_task: Sequence[np.ndarray], class_sizes: Sequence[int], tasks: Tasks,
                  fraction: float, validated: Sequence[int]) -> None:
  """Refuses, before any training, a task in `validated` (its phases validate on the held-out set)
  whose held-out set is empty: every class of it has too few training images for facil_holdout."""
  for t in validated:
    if len(validation_by_task[t]) == 0:
      largest = max(int(class_sizes[k]) for k in range(tasks.start(t), tasks.end(t)))
      need = holdout_minimum(fraction)
      raise ScenarioError(
          f'the validation set of task {t + 1} would be empty: scenario.validation={fraction} holds out '
          f'round(n · {fraction}) of a class\'s n training images, none of fewer than {need}, and its classes have '
          f'{largest} at most; give a class at least {need} training images (dataset.max_per_class) or raise '
          'scenario.validation')


# --- the run's scenario, built once ------------------------------------------------------------

@dataclasses.dataclass
class Scenario:
  """A run's tasks and labels: the label map, incremental labels of the splits, each class's training and
  test indices, and each task's held-out validation indices (None without scenario.validation)."""
  tasks: Tasks
  label_map: np.ndarray
  class_info: base.ClassInfo
  train_labels: np.ndarray
  test_labels: np.ndarray
  train_by_class: list
  test_by_class: list
  validation_by_task: list | None

  @classmethod
  def build(cls, source, config, validates: Callable[[int], bool] = lambda t: False) -> 'Scenario':
    """The config's scenario over `source`, checked before any compute. validates(t): whether task t's
    phases validate on the held-out set (an empty one is found now, not after the task's first epoch)."""
    c = source.num_classes
    tasks = make_tasks(c, config.scenario)
    check_memory_budget(int(config.memory.size), tasks, config.memory.policy)
    order_seed = int(config.seed) & 0xFFFFFFFF if int(config.scenario.seed) < 0 else int(config.scenario.seed)
    lmap = label_map(c, config.scenario.class_order, order_seed)
    train_labels, test_labels = lmap[source.train.labels], lmap[source.test.labels]
    train_by_class = indices_by_class(train_labels, c)
    validation_by_task = None
    fraction = float(config.scenario.validation)
    if fraction > 0:  # FACIL: held out once, for the whole run
      sizes = [len(k) for k in train_by_class]
      validation_by_task, train_by_class = facil_holdout(train_by_class, tasks, fraction, seed=int(config.seed))
      check_holdout(validation_by_task, sizes, tasks, fraction, [t for t in range(tasks.num_tasks) if validates(t)])
    made = cls(tasks, lmap, base.class_info(source, lmap), train_labels, test_labels, train_by_class,
               indices_by_class(test_labels, c), validation_by_task)
    made._check_classes()
    made._check_images(source)
    return made

  def original(self, k: int) -> int:
    """The dataset's label of incremental class k."""
    return int(np.flatnonzero(self.label_map == k)[0])

  def _check_classes(self):
    """A class without training images, or a task without test images, is found now, not as a crash
    after the task's training."""
    for k, members in enumerate(self.train_by_class):
      if len(members) == 0:
        raise base.DataError(f'class {k} (original {self.original(k)}) has no training images; check the dataset')
    for t in range(self.tasks.num_tasks):
      classes = range(self.tasks.start(t), self.tasks.end(t))
      if not sum(len(self.test_by_class[k]) for k in classes):
        raise base.DataError(f'task {t + 1} (original classes {[self.original(k) for k in classes]}) has no test '
                                'images, so it cannot be evaluated; check the test/val split of the dataset')

  def _check_images(self, source):
    """The test images, and the held-out validation images, are first read after a task's training
    (hours on ImageNet): an unreadable one is found now (exists, not empty, its header parses)."""
    checked = [('test', source.test, None)]
    if self.validation_by_task is not None:
      checked.append(('validation', source.train, np.concatenate(self.validation_by_task)))
    for what, split, idx in checked:
      bad = image_checks.unreadable_images(split, idx)
      if bad:
        total = len(split) if idx is None else len(idx)
        first = (', the first: ' if len(bad) > 1 else ': ') + bad[0]
        raise base.DataError(f'{len(bad)} of the {total} {what} images cannot be read{first}; '
                                f'{image_checks.bad_image_fix(split)}')


def indices_by_class(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
  """Each class's indices into `labels`, in file order."""
  order = np.argsort(labels, kind='stable')
  bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
  return [order[bounds[k]:bounds[k + 1]] for k in range(num_classes)]
