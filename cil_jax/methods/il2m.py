"""IL2M (Belouadah & Popescu, ICCV 2019) as in the SS-IL code base: FT's training, then score
rectification at test time.

After each task, on new data + exemplars (train transform, softmax over the seen classes):
  init_mean[c]  mean probability of the true class, frozen the task c is new
  cur_mean[c]   the same, recomputed every task (old classes from their exemplars only)
  conf[task]    mean max-probability over that task's new-class samples, frozen when it is new
At test time, when the raw top-1 is a new class, each old class's probability is rescaled
  p'_c = p_c · (init_mean_c / cur_mean_c) · (conf_current / conf_task(c));  otherwise unchanged.
The reference's statistics code crashes on an undefined variable; this is its intent. The SS-IL
code base runs IL2M on the models its FT run saved: the training here is FT's (lr/(t+1), factor).
"""
import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.methods.losses import NEG
from cil_jax.models.precision import at_least_f32
from cil_jax.methods.api import Method
from cil_jax.methods.shared import ce_phase

OPTIONS = {}


def rectified_probabilities(logits, init_mean, cur_mean, conf, classes):
  p = jax.nn.softmax(jnp.where(classes.seen, logits, NEG), axis=-1)
  top_is_new = classes.new[jnp.argmax(p, -1)]                 # [B]
  task_of = jnp.argmax(classes.blocks, axis=0)                  # [C]
  factor = (init_mean / jnp.maximum(cur_mean, 1e-12)) * (conf[classes.task] / jnp.maximum(conf[task_of], 1e-12))
  rect = jnp.where(classes.old, p * factor, p)
  return jnp.where(top_is_new[:, None], rect, p)


def predict(outputs, params, state, classes):
  del params
  p = rectified_probabilities(outputs['logits'], state['init_mean'], state['cur_mean'], state['conf'], classes)
  return jnp.where(classes.seen, p, NEG)


def statistics(probs, labels, t, start, end, state) -> dict:
  """New (init_mean, cur_mean, conf) from softmax probabilities over the seen classes of new data +
  exemplars after task t, whose classes are [start, end)."""
  init_mean, cur_mean, conf = (np.array(state[k], np.float64) for k in ('init_mean', 'cur_mean', 'conf'))
  true_p = probs[np.arange(len(labels)), labels]
  sums = np.bincount(labels, weights=true_p, minlength=len(cur_mean))
  counts = np.bincount(labels, minlength=len(cur_mean))
  has = np.arange(len(cur_mean)) < end
  has &= counts > 0  # a class without samples (no exemplar) keeps its previous mean
  cur_mean[has] = sums[has] / counts[has]
  init_mean[start:end] = cur_mean[start:end]
  new = (labels >= start) & (labels < end)
  conf[t] = probs.max(1)[new].mean()
  return {'init_mean': init_mean, 'cur_mean': cur_mean, 'conf': conf}


def after_task(ctx) -> dict:
  t, tasks = ctx.t, ctx.tasks
  idx = np.concatenate([ctx.new_indices(), ctx.memory.indices])
  logits = ctx.outputs(idx, augment=True, keys=('logits',))['logits'][:, :tasks.end(t)]
  probs = np.asarray(jax.nn.softmax(at_least_f32(logits), axis=-1), np.float64)
  stats = statistics(probs, ctx.train_labels[idx], t, tasks.start(t), tasks.end(t), ctx.method_state)
  # the state keeps the dtype init_state gave it (the default float: float64 under x64)
  return {k: jnp.asarray(v, ctx.method_state[k].dtype) for k, v in stats.items()}


def make(config) -> Method:
  def phases(t):  # FT's training
    return [ce_phase(config, t, lr_by_task=True)]
  return Method('il2m', phases, predict=predict, after_task=after_task,
                init_state=lambda c, t, d: {'init_mean': jnp.ones(c), 'cur_mean': jnp.ones(c), 'conf': jnp.ones(t)})
