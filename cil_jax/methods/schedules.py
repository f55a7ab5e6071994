"""Learning-rate schedules of a phase: small objects with their own resumable state.

A schedule gives the lr of every step, `lr(epoch, step, steps_per_epoch, state)`, a float (or, from
`PerGroup`, a dict of floats by parameter group), and may react at each epoch end,
`end_epoch(epoch, state, val_loss) -> EpochEnd`. Its state is a JSON-able dict saved in every
checkpoint, so a run killed anywhere resumes with the same learning rates. `epochs` is the most a
phase runs; a schedule may stop it earlier (Patience).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Union

import numpy as np

Lr = Union[float, dict]


@dataclasses.dataclass(frozen=True)
class EpochEnd:
  state: dict
  new_best: bool = False      # the weights after this epoch are the best so far: keep a copy
  restore_best: bool = False  # put the best weights back before the next epoch
  stop: bool = False          # the phase ends now (with the best weights when the schedule keeps them)


class Schedule:
  epochs: int
  per_step = False            # the lr changes within an epoch (else it is computed once per epoch)
  needs_validation = False    # end_epoch needs the validation loss
  keeps_best = False          # the phase ends with the best weights seen (and starts a copy of them)

  def initial_state(self) -> dict:
    return {}

  def lr(self, epoch: int, step: int, steps_per_epoch: int, state: dict) -> Lr:
    raise NotImplementedError

  def end_epoch(self, epoch: int, state: dict, val_loss: Optional[float]) -> EpochEnd:
    del epoch, val_loss
    return EpochEnd(state)


@dataclasses.dataclass(frozen=True)
class StepDecay(Schedule):
  """lr · gamma^(number of milestones <= epoch), per epoch (PyTorch MultiStepLR stepped per epoch)."""
  lr0: float
  epochs: int
  milestones: tuple[int, ...] = ()
  gamma: float = 0.1

  def lr(self, epoch, step=0, steps_per_epoch=0, state=None):
    return self.lr0 * self.gamma ** sum(epoch >= m for m in self.milestones)


@dataclasses.dataclass(frozen=True)
class Cosine(Schedule):
  """lr · (1 + cos(π·epoch/epochs)) / 2, per epoch (CosineAnnealingLR, T_max = epochs, eta_min 0)."""
  lr0: float
  epochs: int

  def lr(self, epoch, step=0, steps_per_epoch=0, state=None):
    return float(self.lr0 * 0.5 * (1 + np.cos(np.pi * epoch / self.epochs)))


@dataclasses.dataclass(frozen=True)
class WarmUp(Schedule):
  """The inner schedule's lr scaled by i / (warm-up steps + 1e-8) at the i-th step (1-based) of the
  first `warmup_epochs` epochs, then the inner lr: pytorch-cifar100's WarmUpLR as MGRB's etrain.py
  steps it, before every batch of the first epoch (so the first batch has lr/steps, not 0). The
  inner schedule's state, validation and best weights pass through."""
  inner: Schedule
  warmup_epochs: int = 1

  per_step = True

  @property
  def epochs(self):
    return self.inner.epochs

  @property
  def needs_validation(self):
    return self.inner.needs_validation

  @property
  def keeps_best(self):
    return self.inner.keeps_best

  def initial_state(self):
    return self.inner.initial_state()

  def end_epoch(self, epoch, state, val_loss):
    return self.inner.end_epoch(epoch, state, val_loss)

  def lr(self, epoch, step, steps_per_epoch, state=None):
    base = self.inner.lr(epoch, step, steps_per_epoch, state)
    if epoch >= self.warmup_epochs:
      return base
    i = epoch * steps_per_epoch + step + 1
    return base * i / (self.warmup_epochs * steps_per_epoch + 1e-8)


@dataclasses.dataclass(frozen=True)
class PerGroup(Schedule):
  """One schedule per parameter group (`Step.groups` names each parameter's group): the lr is a dict.
  The groups' schedules must agree on the epoch count; stateless ones only (their states are {})."""
  by_group: tuple[tuple[str, Schedule], ...]

  def __post_init__(self):
    counts = {s.epochs for _, s in self.by_group}
    if len(counts) != 1:
      raise ValueError(f'PerGroup schedules disagree on the epochs: {sorted(counts)}')
    if any(s.needs_validation or s.keeps_best or s.initial_state() for _, s in self.by_group):
      raise ValueError('PerGroup takes stateless schedules (no validation, best weights or state)')

  @property
  def epochs(self):
    return self.by_group[0][1].epochs

  @property
  def per_step(self):
    return any(s.per_step for _, s in self.by_group)

  def lr(self, epoch, step, steps_per_epoch, state=None):
    return {name: s.lr(epoch, step, steps_per_epoch, {}) for name, s in self.by_group}


@dataclasses.dataclass(frozen=True)
class Patience(Schedule):
  """FACIL's schedule (incremental_learning.train_loop): after each epoch, the validation loss; a
  better one (strictly lower) keeps the weights as the best and resets the patience; else the
  patience drops by one and at 0 the lr is divided by lr_factor, the best weights are restored and
  the patience resets, unless the new lr is below lr_min: then training stops. At most `epochs`
  epochs; the phase ends with the best weights (the start weights when no epoch improved)."""
  lr0: float
  epochs: int
  lr_factor: float = 3.0
  lr_patience: int = 5
  lr_min: float = 1e-4

  needs_validation = True
  keeps_best = True

  def initial_state(self):
    return {'lr': float(self.lr0), 'best_loss': math.inf, 'patience': int(self.lr_patience)}

  def lr(self, epoch, step, steps_per_epoch, state):
    return state['lr']

  def end_epoch(self, epoch, state, val_loss):
    del epoch
    state = dict(state)
    if val_loss < state['best_loss']:
      return EpochEnd(dict(state, best_loss=float(val_loss), patience=int(self.lr_patience)), new_best=True)
    state['patience'] -= 1
    if state['patience'] > 0:
      return EpochEnd(state)
    state['lr'] = state['lr'] / self.lr_factor
    if state['lr'] < self.lr_min:
      return EpochEnd(state, stop=True)
    return EpochEnd(dict(state, patience=int(self.lr_patience)), restore_best=True)
