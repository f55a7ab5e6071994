"""Building the jitted, sharded train and eval steps from a method's loss (the engine's hot path)."""
from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from cil_jax.methods.api import LossInputs
from cil_jax.methods.losses import NEG


@flax.struct.dataclass
class TrainState:
  params: Any           # {'model': network params, 'method': the method's trainable arrays}
  batch_stats: Any
  opt_state: Any        # the run's main optimizer (may live across tasks)
  phase_opt_state: Any  # the optimizer of a phase that has its own (fresh at the phase start), else ()

  @property
  def variables(self):
    """The network's variables, for model.apply."""
    return {'params': self.params['model'], 'batch_stats': self.batch_stats}

  def teacher_copy(self):
    """A teacher must own its buffers: the student's are donated (deleted) by the next step."""
    return jax.tree.map(jnp.copy, {'params': self.params, 'batch_stats': self.batch_stats})


def clip_by_global_norm_torch(max_norm: float) -> optax.GradientTransformation:
  """PyTorch clip_grad_norm_: g · min(1, max_norm / (‖g‖ + 1e-6)), ‖g‖ over all gradients."""
  def update(updates, state, params=None):
    del params
    norm = optax.global_norm(updates)
    scale = jnp.minimum(1.0, max_norm / (norm + 1e-6))
    return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state
  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(opt) -> optax.GradientTransformation:
  """The update direction of an `api.Optimizer`; the step applies p -= lr · update, so the lr can
  change per epoch or step (and per parameter group) without touching the optimizer state.

  sgd:   coupled weight decay (added to the gradient, all parameters), then momentum (no dampening,
         no Nesterov), as PyTorch SGD.
  adamw: Adam's bias-corrected m̂/(sqrt(v̂)+eps) plus wd·p: with the lr outside, p − lr·(m̂/(…) + wd·p)
         is PyTorch AdamW's decoupled decay p·(1 − lr·wd) − lr·m̂/(…) (and optax.adamw's update).
  """
  parts = [] if opt.clip_norm is None else [clip_by_global_norm_torch(float(opt.clip_norm))]
  if opt.kind == 'adamw':
    parts += [optax.scale_by_adam(b1=opt.b1, b2=opt.b2, eps=opt.eps), optax.add_decayed_weights(opt.weight_decay)]
  else:
    parts += [optax.add_decayed_weights(opt.weight_decay), optax.trace(decay=opt.momentum, nesterov=False)]
  return optax.chain(*parts)


def normalizer(mean, std) -> Callable:
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  return lambda images: (images.astype(jnp.float32) / 255.0 - mean) / std


def _freeze(params, mask):
  """Leaves marked False get no gradient at all (XLA then drops their backward pass)."""
  return jax.tree.map(lambda p, m: jax.lax.stop_gradient(p) if m is False else p, params, mask)


def _apply_mask(updates, mask):
  return jax.tree.map(lambda u, m: u if m is True else u * jnp.asarray(m, u.dtype), updates, mask)


def _scaled_updates(params, updates, lr, groups):
  """p − lr · u; with parameter groups, lr is a dict {group: lr} and `groups(params)` names each leaf's."""
  if groups is None:
    return jax.tree.map(lambda p, u: p - lr * u, params, updates)
  return jax.tree.map(lambda p, u, g: p - lr[g] * u, params, updates, groups(params))


def _teacher_outputs(model, teacher, images):
  teacher_vars = {'params': teacher['params']['model'], 'batch_stats': teacher['batch_stats']}
  return jax.lax.stop_gradient(model.apply(teacher_vars, images, train=False))


def _one_step(model, spec, tx, normalize, on_device, teacher_model):
  """The step function of `make_train_step` for one batch, before jit."""
  uses_teacher = spec.teacher is not None
  own_optimizer = spec.optimizer is not None

  def step(state: TrainState, teacher, batch, classes, lr, method_state, data):
    if on_device is not None:
      batch = on_device.batch(data, batch)
    images = normalize(batch['image'])
    teacher_out = _teacher_outputs(teacher_model, teacher, images) if uses_teacher else None
    mask = spec.trainable(state.params, classes) if spec.trainable is not None else None

    def objective(params):
      if mask is not None:
        params = _freeze(params, mask)
      variables = {'params': params['model'], 'batch_stats': state.batch_stats}
      if spec.bn_train:
        out, updates = model.apply(variables, images, train=True, mutable=['batch_stats'])
        batch_stats = updates['batch_stats']
      else:
        out, batch_stats = model.apply(variables, images, train=False), state.batch_stats
      inputs = LossInputs(out=out, teacher=teacher_out, params=params,
                          teacher_params=teacher['params'] if uses_teacher else None,
                          batch=batch, classes=classes, state=method_state)
      loss, metrics = spec.loss(inputs)
      return loss, (batch_stats, metrics)

    (loss, (batch_stats, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    opt_state = state.phase_opt_state if own_optimizer else state.opt_state
    updates, opt_state = tx.update(grads, opt_state, state.params)
    if mask is not None:
      updates = _apply_mask(updates, mask)
    params = _scaled_updates(state.params, updates, lr, spec.groups)
    if own_optimizer:
      new_state = state.replace(params=params, batch_stats=batch_stats, phase_opt_state=opt_state)
    else:
      new_state = state.replace(params=params, batch_stats=batch_stats, opt_state=opt_state)
    return new_state, dict(metrics, loss=loss)

  return step


def make_train_step(model, spec, tx, normalize, replicated, sharded, steps_per_call: int = 1, on_device=None,
                    teacher_model=None):
  """step(state, teacher, batch, classes, lr, method_state, data) -> (state, metrics); state is donated.

  `spec` (an api.Step) decides: the loss, whether a teacher runs (inference mode, same augmented
  batch), BN mode, which parameters move (`spec.trainable`), which optimizer state is used and the
  parameter groups of a per-group lr.

  batch: {'image' uint8, 'label', 'replay'} from the host, or with `on_device` (a
  device_data.DeviceData) the slots {'index', 'position', 'seed', 'replay'} of a device-resident
  dataset `data`, gathered and augmented inside the step. steps_per_call = K > 1: every batch leaf
  and the lr (a scalar or a dict of them) carry a leading axis of K, and one call runs the K steps
  in order (lax.scan); metrics then come stacked [K]. teacher_model: the teacher's network where it is
  not the student's (a network that grew at the task start); None: the same.
  """
  step = _one_step(model, spec, tx, normalize, on_device, teacher_model or model)

  # XLA:CPU runs convolutions inside a while loop ~15x slower than at the top level
  # (docs/performance.md): there the K steps are unrolled into one straight-line program.
  unroll = jax.devices()[0].platform == 'cpu'

  def steps(state, teacher, batches, classes, lrs, method_state, data):
    def body(state, xs):
      return step(state, teacher, xs[0], classes, xs[1], method_state, data)
    return jax.lax.scan(body, state, (batches, lrs), unroll=unroll)

  keys = ('image', 'label', 'replay') if on_device is None else on_device.BATCH_KEYS
  per_step = sharded if steps_per_call == 1 else chunk_sharding(sharded)
  jitted = jax.jit(step if steps_per_call == 1 else steps, donate_argnums=(0,),
                   in_shardings=(replicated, replicated, {k: per_step for k in keys}, replicated, replicated,
                                 replicated, replicated),
                   out_shardings=(replicated, replicated))

  def call(state, teacher, batch, classes, lr, method_state, data=()):
    return jitted(state, teacher, batch, classes, lr, method_state, data)
  call.jitted = jitted   # for .lower(...) with all seven arguments
  return call


def chunk_sharding(sharded):
  """The batch sharding of a stack of K batches [K, B, ...]: the K axis whole on every device."""
  from jax.sharding import NamedSharding, PartitionSpec
  return NamedSharding(sharded.mesh, PartitionSpec(None, *sharded.spec))


def make_loss_step(model, spec, normalize, teacher_model=None):
  """loss(params, batch_stats, teacher, batch, classes, method_state) -> the step's loss on one batch
  in inference mode (no gradient, BN statistics untouched). Shardings follow the inputs: full
  batches sharded, a last partial batch replicated."""
  uses_teacher, teacher_model = spec.teacher is not None, teacher_model or model

  def step(params, batch_stats, teacher, batch, classes, method_state):
    images = normalize(batch['image'])
    out = model.apply({'params': params['model'], 'batch_stats': batch_stats}, images, train=False)
    inputs = LossInputs(out=out, teacher=_teacher_outputs(teacher_model, teacher, images) if uses_teacher else None,
                        params=params, teacher_params=teacher['params'] if uses_teacher else None,
                        batch=batch, classes=classes, state=method_state)
    return spec.loss(inputs)[0]

  return jax.jit(step)


def make_eval_step(model, predict, normalize, replicated, sharded):
  """eval(counts, params, batch_stats, method_state, images, labels, valid, classes) -> counts.

  counts: int32 [T, 4] per task of the sample's label: top-1 hits, top-5 hits, task-aware hits,
  samples (padding excluded). Accumulated on the devices over an evaluation and fetched once, so
  no batch is gathered to the host. Task-aware = argmax over the sample's own task's classes, with
  the method's prediction (NME, rectified or bias-corrected scores).
  """

  def step(counts, params, batch_stats, method_state, images, labels, valid, classes):
    out = model.apply({'params': params['model'], 'batch_stats': batch_stats}, normalize(images), train=False)
    scores = predict(out, params, method_state, classes)
    top5 = jax.lax.top_k(scores, min(5, scores.shape[-1]))[1]
    sample_task = jnp.argmax(classes.blocks[:, labels], axis=0)   # [B]
    own_block = classes.blocks[sample_task]                         # [B, C]: that task's classes
    aware = jnp.argmax(jnp.where(own_block, scores, NEG), axis=-1)
    hits = jnp.stack([top5[:, 0] == labels, (top5 == labels[:, None]).any(-1), aware == labels,
                      jnp.ones_like(valid)], axis=-1) & valid[:, None]   # [B, 4]
    return counts + jax.ops.segment_sum(hits.astype(jnp.int32), sample_task, num_segments=classes.blocks.shape[0])

  return jax.jit(step, donate_argnums=(0,),
                 in_shardings=(replicated, replicated, replicated, replicated, sharded, sharded, sharded,
                               replicated),
                 out_shardings=replicated)


def make_outputs_step(model, normalize, replicated, sharded):
  """(network variables, images) -> inference-mode logits and features (for host-side hooks)."""
  def step(variables, images):
    out = model.apply(variables, normalize(images), train=False)
    return {'logits': out['logits'], 'features': out['features']}
  return jax.jit(step, in_shardings=(replicated, sharded), out_shardings=sharded)
