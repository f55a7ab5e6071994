"""Model + method -> the initial state and the compiled steps, built one way for the run, the benchmark
and the tests. Keyed by a ModelSpec: a network that a method grows per task (api.Method.network) has a
spec, a Factory (its steps, its restore template) per form, and `carry_over` moves the weights from one
form to the next."""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.traverse_util
import jax
import jax.numpy as jnp

from cil_jax import models
from cil_jax.engine.step import (TrainState, make_eval_step, make_loss_step, make_optimizer, make_outputs_step,
                                 make_train_step)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """What models.create builds; the key of everything compiled for it."""
  name: str
  num_classes: int
  last_relu: bool = True
  dtype: str = 'float32'
  head: str = 'linear'
  options: tuple = ()   # (field, value) pairs of the model's class set by the method per task, sorted

  @classmethod
  def of(cls, config, num_classes: int) -> 'ModelSpec':
    m = config.model
    return cls(m.name, num_classes, bool(m.last_relu), m.dtype, m.head)

  def with_options(self, options: dict) -> 'ModelSpec':
    """options: JSON values (a checkpoint keeps them); lists become tuples, so the spec stays a key."""
    return dataclasses.replace(self, options=tuple(sorted(
        (k, tuple(v) if isinstance(v, list) else v) for k, v in options.items())))


class Factory:
  """One model spec's network, its initial state and its jitted steps (cached: equal api.Steps of
  different phases or tasks share one compile, whatever their schedules)."""

  def __init__(self, spec: ModelSpec, main_optimizer, normalize, replicated, sharded, device_data=None):
    """main_optimizer: an api.Optimizer, the run's (a phase's Step may bring its own); device_data:
    {augment: device_data.DeviceData} when the training images live on the devices, else None."""
    self.spec, self.main_optimizer = spec, main_optimizer
    self.model = models.create(spec.name, spec.num_classes, last_relu=spec.last_relu, dtype=spec.dtype,
                               head=spec.head, **dict(spec.options))
    self.tx = make_optimizer(main_optimizer)
    self.normalize = normalize
    self.replicated, self.sharded = replicated, sharded
    self.device_data = device_data
    self._steps: dict[Any, Any] = {}

  def sibling(self, spec: ModelSpec) -> 'Factory':
    """The factory of another form of the network, with this one's optimizer, data and devices."""
    return Factory(spec, self.main_optimizer, self.normalize, self.replicated, self.sharded, self.device_data)

  def init_variables(self, seed: int, image_shape) -> tuple[dict, int]:
    """The network's initial variables (seeded) and its feature width, for images of [H, W, C]."""
    dummy = jnp.zeros((1, *image_shape), jnp.float32)
    variables = jax.jit(lambda k: self.model.init(k, dummy, train=False))(jax.random.PRNGKey(seed))
    feature_dim = jax.eval_shape(lambda v: self.model.apply(v, dummy, train=False), variables)['features'].shape[-1]
    return variables, feature_dim

  def train_state(self, variables, method_params) -> TrainState:
    """The train state (replicated) of the network's variables and the method's trainable arrays."""
    params = {'model': variables['params'], 'method': method_params}
    return jax.device_put(TrainState(params, variables['batch_stats'], self.tx.init(params), ()), self.replicated)

  def init_state(self, seed: int, image_shape, method, num_tasks: int) -> tuple[TrainState, Any]:
    """The initial train state and method state of a run (both replicated)."""
    variables, feature_dim = self.init_variables(seed, image_shape)
    c = self.spec.num_classes
    state = self.train_state(variables, method.init_params(c, num_tasks))
    return state, jax.device_put(method.init_state(c, num_tasks, feature_dim), self.replicated)

  def optimizer(self, step):
    """The optimizer a train step of `step` (an api.Step) updates with: its own, else the run's."""
    return self.tx if step.optimizer is None else make_optimizer(step.optimizer)

  def phase_optimizer_state(self, step, params):
    """A phase's own optimizer state, fresh (() for a phase that uses the run's optimizer); also the
    structure a checkpoint of an interrupted phase is restored into."""
    return self.optimizer(step).init(params) if step.optimizer is not None else ()

  def with_phase_optimizer(self, state: TrainState, step) -> TrainState:
    return state.replace(phase_opt_state=jax.device_put(self.phase_optimizer_state(step, state.params),
                                                        self.replicated))

  def train_step(self, step, augment: bool = True, steps_per_call: int = 1, teacher: 'Factory | None' = None):
    """`teacher`: the factory of the teacher's network where it is another (None: this one)."""
    on_device = None if self.device_data is None else self.device_data[augment]
    spec, model = self._teacher(teacher)
    return self._cached(('train', step, augment, steps_per_call, spec), make_train_step, self.model, step,
                        self.optimizer(step), self.normalize, self.replicated, self.sharded, steps_per_call,
                        on_device, model)

  def loss_step(self, step, teacher: 'Factory | None' = None):
    spec, model = self._teacher(teacher)
    return self._cached(('loss', step, spec), make_loss_step, self.model, step, self.normalize, model)

  def _teacher(self, teacher: 'Factory | None'):
    """(its spec, its model) where the teacher's network is another form than this one's, else (None, None):
    the steps then run the teacher with this network."""
    if teacher is None or teacher.spec == self.spec:
      return None, None
    return teacher.spec, teacher.model

  def eval_step(self, predict):
    return self._cached(('eval', predict), make_eval_step, self.model, predict, self.normalize, self.replicated,
                        self.sharded)

  def outputs_step(self):
    return self._cached(('outputs',), make_outputs_step, self.model, self.normalize, self.replicated, self.sharded)

  def _cached(self, key, make, *args):
    if key not in self._steps:
      self._steps[key] = make(*args)
    return self._steps[key]


def carry_over(old: dict, new: dict) -> dict:
  """The network's variables after it grew: every leaf of `new` (fresh) whose path and shape `old` has
  takes old's value (the parts that were there keep their weights and BN statistics), the rest stays
  fresh. A method whose parts change shape or place (a widened classifier) gives api.Method.grow."""
  flat_old = flax.traverse_util.flatten_dict(old)
  flat_new = flax.traverse_util.flatten_dict(new)
  return flax.traverse_util.unflatten_dict({
      path: flat_old[path] if path in flat_old and flat_old[path].shape == leaf.shape else leaf
      for path, leaf in flat_new.items()})
