"""Building the jitted, sharded train and eval steps from a method's loss (the engine's hot path)."""
from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from cil_jax.losses import NEG


@flax.struct.dataclass
class TrainState:
  params: Any
  batch_stats: Any
  opt_state: Any

  @property
  def variables(self):
    return {'params': self.params, 'batch_stats': self.batch_stats}


def make_optimizer(momentum: float, weight_decay: float) -> optax.GradientTransformation:
  """PyTorch SGD: coupled weight decay (added to the gradient, all parameters), then momentum
  (no dampening, no Nesterov). The learning rate is applied in the step so it can change per epoch
  without touching the optimizer state."""
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.trace(decay=momentum, nesterov=False))


def normalizer(mean, std) -> Callable:
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  return lambda images: (images.astype(jnp.float32) / 255.0 - mean) / std


def make_train_step(model, loss_fn, tx, normalize, uses_teacher: bool, replicated, sharded):
  """step(state, teacher, batch, classes, lr) -> (state, metrics); state is donated."""

  def step(state: TrainState, teacher, batch, classes, lr):
    images = normalize(batch['image'])
    teacher_out = None
    if uses_teacher:
      teacher_out = jax.lax.stop_gradient(model.apply(teacher, images, train=False))

    def objective(params):
      out, updates = model.apply({'params': params, 'batch_stats': state.batch_stats}, images,
                                 train=True, mutable=['batch_stats'])
      loss, metrics = loss_fn(out, teacher_out, batch, classes)
      return loss, (updates['batch_stats'], metrics)

    (loss, (batch_stats, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = jax.tree.map(lambda p, u: p - lr * u, state.params, updates)
    metrics = dict(metrics, loss=loss)
    return TrainState(params, batch_stats, opt_state), metrics

  batch_sharding = {'image': sharded, 'label': sharded, 'replay': sharded}
  return jax.jit(step, donate_argnums=(0,),
                 in_shardings=(replicated, replicated, batch_sharding, replicated, replicated),
                 out_shardings=(replicated, replicated))


def masked_logits(outputs, classes):
  """Default prediction: the logits of the seen classes (others pushed to -inf)."""
  return jnp.where(classes.seen, outputs['logits'], NEG)


def make_eval_step(model, predict, normalize, replicated, sharded):
  """eval(variables, images, labels, classes) -> (top-5 class indices, task-aware prediction)."""

  def step(variables, images, labels, classes):
    scores = predict(model.apply(variables, normalize(images), train=False), classes)
    top5 = jax.lax.top_k(scores, min(5, scores.shape[-1]))[1]
    sample_task = jnp.argmax(classes.blocks[:, labels], axis=0)   # [B]
    own_block = classes.blocks[sample_task]                         # [B, C]: that task's classes
    aware = jnp.argmax(jnp.where(own_block, scores, NEG), axis=-1)
    return top5, aware

  return jax.jit(step, in_shardings=(replicated, sharded, sharded, replicated),
                 out_shardings=(sharded, sharded))


def make_feature_step(model, normalize, replicated, sharded):
  """features(variables, images) in inference mode (exemplar herding, class means)."""
  def step(variables, images):
    return model.apply(variables, normalize(images), train=False)['features']
  return jax.jit(step, in_shardings=(replicated, sharded), out_shardings=sharded)
