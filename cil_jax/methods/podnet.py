"""PODNet, Pooled Outputs Distillation (Douillard et al., ECCV 2020), as in the SS-IL code base.

Model: features without the last ReLU (model.last_relu=False) and the local similarity classifier
(model.head='lsc', K proxies per class, class-major rows c·K + k, learnable scale; models/heads.py).

Main phase (every task; a fresh SGD each task, as the reference: the phase's own optimizer with
train.momentum 0.9 / weight_decay 1e-4, so that no momentum carried over from earlier tasks moves the
proxies of classes not yet imprinted; lr 0.05, cosine annealing over the task's epochs, stepped per epoch):
  NCA(scale·(score − margin)) over the seen classes
  + λ_c/S · POD-spatial over the S stage outputs + λ_f · POD-flat     (t >= 1, teacher = task start)
  NCA: a = scale·(score − 0.6); a ← a − max_c a per sample; loss = mean_i[−a_iy + log(1 + Σ_{c≠y} e^{a_ic})]
    (the margin is subtracted from every class as in the reference, so it only matters through the
    max shift, which changes the value: the target's denominator term became exp(0) = 1).
  POD-spatial per stage (pre-ReLU output h, NHWC): h², summed over the width and over the height,
    each flattened and L2-normalised, L2 distance to the teacher's, batch mean; both summed
    (pod_spatial_concat=True: the PODNet paper's form, width and height pools concatenated, then
    normalised, one distance). λ_c/S = 8/4 = 2 on ResNet-18.
  POD-flat: ‖f̂ − f̂_old‖² of the L2-normalised pooled features, batch mean.
  adaptive_weights=True multiplies both by sqrt(seen / new) (the PODNet paper; the SS-IL code base
  keeps them constant).
  Old proxies are frozen (lr 0, wd 0); the new ones are trained; the scale is trained.
Task start (t >= 1): new proxies = KMeans(K) centres of the L2-normalised features (inference mode)
  of each new class's training images, scaled by the mean norm of the old proxies (as the reference;
  the head normalises proxies, the norm only sets their effective step size); scale reset to 1.
Classifier fine-tuning (t >= 1, needs memory): 20 epochs on EEIL's class-balanced set, plain SGD lr
  0.01 (no momentum, wd 1e-4, no schedule), all seen proxies trainable, everything else frozen
  (scale too), BatchNorm in train mode so its statistics keep updating, NCA only.
Evaluation: argmax of the class scores (CNN); nme=True: nearest class mean as iCaRL.

Deviations from the reference:
- Imprinting: a class with fewer than K training images gets its normalised features repeated
  cyclically as proxies (sklearn's KMeans refuses fewer samples than clusters; the reference
  crashes). KMeans is seeded (config.seed, task, class) with n_init=10 (the reference is unseeded).
- The reference imprints from its augmented training loader; imprint_augment=True does the same
  (False: the test transform).
- The proxies of future classes exist from the start (fixed shapes) and are held still (lr 0, wd 0)
  until their task imprints them; the reference creates them at their task.
"""
from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.methods.losses import NEG
from cil_jax.models.precision import at_least_f32
from cil_jax.input_pipeline.scenario import stream_seed
from cil_jax.methods.api import LossInputs, Method, Optimizer, Phase, Step
from cil_jax.methods.shared import step_schedule, nme_options, normalize_rows, with_balanced_set, with_head
from cil_jax.methods.schedules import Cosine, StepDecay
from cil_jax.models import heads
from cil_jax.models.heads import l2_normalize

OPTIONS = {
    'lambda_c': 8.0,                 # POD-spatial weight, divided by the number of stages
    'lambda_f': 10.0,                # POD-flat weight
    'adaptive_weights': False,       # True: both weights x sqrt(seen / new) (PODNet paper)
    'pod_spatial_concat': False,     # True: PODNet paper's concatenated width+height pooling
    'nca_margin': 0.6,
    'proxies': 10,                   # K; must equal the lsc head's (models/heads.py)
    'finetune_epochs': 20,           # classifier fine-tuning on the balanced set (t >= 1); 0 = none
    'finetune_lr': 0.01,
    'imprint_augment': True,         # KMeans on train-transform features (the reference's loader)
    'nme': False,                    # evaluate by nearest class mean instead of the class scores
    'nme_augment': True,             # NME means on train-transform features (the SS-IL code base)
}
REQUIRES = {'model.head': 'lsc', 'model.last_relu': False}   # the LSC head, features without the last ReLU

KMEANS_N_INIT = 10


# --- losses ------------------------------------------------------------------------------------

def nca_loss(score, scale, labels, seen, margin):
  """Per-sample NCA with the reference's max shift; classes outside `seen` take no part."""
  a = scale * (score - margin)
  a = a - jnp.max(jnp.where(seen, a, NEG), axis=-1, keepdims=True)
  target = jnp.take_along_axis(a, labels[:, None], axis=-1)[:, 0]
  is_target = jnp.arange(a.shape[-1])[None] == labels[:, None]
  others = jnp.where(seen[None] & ~is_target, a, NEG)
  return -target + jnp.logaddexp(0.0, jax.nn.logsumexp(others, axis=-1))


def _distance(a, b):
  """Per-row L2 distance with a zero (not NaN) gradient where the rows are equal."""
  sq = jnp.sum((a - b) ** 2, axis=-1)
  safe = jnp.where(sq > 0, sq, 1.0)
  return jnp.where(sq > 0, jnp.sqrt(safe), 0.0)


def pod_spatial(stages, old_stages, concat: bool = False):
  """Σ_stages batch-mean L2 distance of the normalised width/height pools of the squared outputs."""
  total = 0.0
  for h, g in zip(stages, old_stages):
    h = jnp.square(at_least_f32(h))
    g = jnp.square(at_least_f32(g))
    b = h.shape[0]
    # NHWC: summing over axis 2 pools the width ([B, H, C]); over axis 1 the height ([B, W, C])
    pools = [(h.sum(2).reshape(b, -1), g.sum(2).reshape(b, -1)), (h.sum(1).reshape(b, -1), g.sum(1).reshape(b, -1))]
    if concat:
      pools = [(jnp.concatenate([p[0] for p in pools], -1), jnp.concatenate([p[1] for p in pools], -1))]
    for s, t in pools:
      total = total + jnp.mean(_distance(l2_normalize(s), l2_normalize(t)))
  return total


def pod_flat(features, old_features):
  """‖f̂ − f̂_old‖² of the normalised features, batch mean."""
  d = l2_normalize(at_least_f32(features)) - l2_normalize(at_least_f32(old_features))
  return jnp.sum(d * d) / features.shape[0]


def podnet_loss(x: LossInputs, opts: dict):
  """NCA, plus POD-spatial and POD-flat against the teacher when there is one."""
  c = x.classes
  nca = nca_loss(x.out['logits'], x.out['scale'], x.batch['label'], c.seen, opts['nca_margin']).mean()
  if x.teacher is None:
    return nca, {'nca': nca}
  factor = jnp.sqrt(jnp.sum(c.seen) / jnp.maximum(jnp.sum(c.new), 1)) if opts['adaptive_weights'] else 1.0
  spatial = pod_spatial(x.out['stages'], x.teacher['stages'], opts['pod_spatial_concat'])
  flat = pod_flat(x.out['features'], x.teacher['features'])
  lam_c = opts['lambda_c'] / len(x.out['stages'])
  loss = nca + factor * (lam_c * spatial + opts['lambda_f'] * flat)
  return loss, {'nca': nca, 'pod_spatial': spatial, 'pod_flat': flat}


def nca_only_loss(x: LossInputs, margin: float):
  nca = nca_loss(x.out['logits'], x.out['scale'], x.batch['label'], x.classes.seen, margin).mean()
  return nca, {'nca': nca}


# --- trainable masks ---------------------------------------------------------------------------

def proxy_rows(class_mask, k: int):
  """[C·K, 1] float multiplier on the class-major proxy rows from a [C] class mask."""
  return jnp.repeat(class_mask.astype(jnp.float32), k)[:, None]


def main_trainable(params, classes):
  """Everything trains except the proxies of old (and not yet seen) classes: lr 0, wd 0."""
  mask = jax.tree.map(lambda _: True, params)
  k = params['model']['head']['proxies'].shape[0] // classes.seen.shape[0]
  mask['model']['head']['proxies'] = proxy_rows(classes.new, k)
  return mask


def finetune_trainable(params, classes):
  """Only the proxies of the seen classes (old ones unfrozen); backbone and scale frozen."""
  mask = jax.tree.map(lambda _: False, params)
  k = params['model']['head']['proxies'].shape[0] // classes.seen.shape[0]
  mask['model']['head']['proxies'] = proxy_rows(classes.seen, k)
  return mask


# --- imprinting --------------------------------------------------------------------------------

def kmeans_proxies(features: np.ndarray, k: int, seed: int) -> np.ndarray:
  """K proxies of one class: KMeans centres of its normalised features ([K, D]); with fewer than K
  images, the normalised features repeated cyclically. Computed in float64, returned in the features'
  dtype (at least float32)."""
  dtype = at_least_f32(np.asarray(features)).dtype
  f = normalize_rows(np.asarray(features, np.float64))
  if len(f) < k:
    return f[np.arange(k) % len(f)].astype(dtype)
  from sklearn.cluster import KMeans
  from sklearn.exceptions import ConvergenceWarning
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', ConvergenceWarning)  # fewer distinct points than clusters
    km = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed).fit(f)
  return km.cluster_centers_.astype(dtype)


def imprint(proxies: np.ndarray, features: np.ndarray, labels: np.ndarray, new_classes, k: int,
            seed: int, t: int) -> np.ndarray:
  """New proxies (rows c·K..c·K+K−1 of each new class c) from KMeans; other rows unchanged. The
  centres are scaled by the mean norm of the old classes' proxies (rows below the first new class).
  Returned in the proxies' dtype (at least float32)."""
  out = at_least_f32(np.array(proxies, copy=True))
  first = min(new_classes)
  old = out[:first * k]
  norm = float(np.linalg.norm(old, axis=1).mean()) if len(old) else 1.0
  for c in new_classes:
    out[c * k:(c + 1) * k] = kmeans_proxies(features[labels == c], k, stream_seed(seed, t, int(c))) * norm
  return out


# --- the method --------------------------------------------------------------------------------

def imprint_new_classes(ctx, k: int, augment: bool, seed: int):
  """Task start (t >= 1): the new classes' proxies from KMeans of their features (imprint), scale 1."""
  params = ctx.state.params
  if ctx.t == 0:
    return params, ctx.method_state
  proxies = np.asarray(jax.device_get(params['model']['head']['proxies']))
  if proxies.shape[0] != ctx.tasks.num_classes * k:
    raise ValueError(f'the lsc head has {proxies.shape[0]} proxy rows, not {ctx.tasks.num_classes} x {k}')
  new = range(ctx.tasks.start(ctx.t), ctx.tasks.end(ctx.t))
  idx = ctx.new_indices()
  feats = ctx.outputs(idx, augment=augment, stream='imprint_kmeans', keys=('features',))['features']
  proxies = imprint(proxies, feats, ctx.train_labels[idx], new, k, seed, ctx.t)
  scale = jnp.ones_like(params['model']['head']['scale'])   # keeps the parameter's dtype
  return with_head(params, proxies=jnp.asarray(proxies), scale=scale), ctx.method_state


def make(config) -> Method:
  opts = config.method
  k = int(opts.proxies)
  if k != heads.LSCHead.proxies:
    raise ValueError(f'method.proxies={k} but the lsc head has {heads.LSCHead.proxies} proxies per class '
                     '(models/heads.py); use method.proxies=10')
  main_loss = functools.partial(podnet_loss, opts={
      'nca_margin': float(opts.nca_margin), 'lambda_c': float(opts.lambda_c), 'lambda_f': float(opts.lambda_f),
      'adaptive_weights': bool(opts.adaptive_weights), 'pod_spatial_concat': bool(opts.pod_spatial_concat)})
  finetune_loss = functools.partial(nca_only_loss, margin=float(opts.nca_margin))
  finetune = int(opts.finetune_epochs) > 0 and int(config.memory.size) > 0
  optimizer = Optimizer.of_train_config(config.train)   # fresh each task (the module docstring)

  def phases(t):
    sched = step_schedule(config.train, t, lr_by_task=False, method='PODNet')
    main = Phase('train' if t else 'base', Step(main_loss, teacher='task_start' if t else None,
                                                 trainable=main_trainable, optimizer=optimizer),
                 Cosine(lr0=sched.lr0, epochs=sched.epochs), stream='mixed', batch_size=config.train.batch_size)
    if t == 0 or not finetune:
      return [main]
    ft_step = Step(finetune_loss, bn_train=True, trainable=finetune_trainable,
                   optimizer=Optimizer(momentum=0.0, weight_decay=float(config.train.weight_decay)))
    return [main, Phase('classifier_ft', ft_step, StepDecay(lr0=float(opts.finetune_lr),
                                                            epochs=int(opts.finetune_epochs)),
                        stream='mixed', data='balanced', batch_size=config.train.batch_size)]

  evaluation = nme_options(bool(opts.nme_augment)) if opts.nme else {}
  return Method('podnet', phases, task_data=with_balanced_set,
                before_task=functools.partial(imprint_new_classes, k=k, augment=bool(opts.imprint_augment),
                                              seed=int(config.seed)),
                **evaluation)
