"""MGRB, multi-granularity regularized re-balancing (Chen et al., TKDE 2022; code: CIL-MGRB `etrain.py`,
`cal_MG.py`, `cal_RB.py`, `util.py`, `deal*.py`).

Protocol (memory.policy 'per_class', selection 'file_order'): every class keeps its first
memory.size training images in file order (20; CIFAR-10 200). Of those, the first
`balanced_per_class` (2; CIFAR-10 20) form the balanced set and the rest (18; 180) are the class's
exemplars; while a class is new it trains on all its images but the balanced ones ([2:]). Each
phase trains a new linear head over all seen classes (xavier-normal weights, zero bias) on the
backbone kept from the previous phase.

Phase 0: CE. Phase t >= 1, stage 1 (all samples, train transform), α = old / seen, T = 2:
  L = dscale·α·T²·KD + (1 − α)·L_cls + mg_scale·L_MG
  KD     = −mean_i Σ_{j old} softmax(ẑ_i/T)_j · log softmax(z_i,old/T)_j  (teacher: the model after
           the previous phase, inference mode; soft CE, as cal_distill in etrain.py)
  L_cls  = class-balanced CE: Σ_i w_{y_i}·CE_i (reduction 'sum', the reference) or its batch mean;
           w_c = (1 − η)/(1 − η^{n_c}), η = (C − 1)/C over the dataset's C classes, n_c = the exemplars
           per class (18) for old classes and the largest class's training-set size (the nominal 500,
           5000, 1300) for new ones, unnormalised (cal_RB.py). cb_loss=False: plain CE, batch mean.
  L_MG   = KL_batchmean(q_y ‖ softmax(z)) over the seen classes, q_y = softmax(s_y): the hierarchy's
           soft target (cal_MG.py). Two levels (a class's coarse group): s_yj = 0 (j = y), −β/2 (same
           group), −β (otherwise). WordNet tree: s_yj = −β·d(j, y)/H, d = edges from the deepest common
           hypernym to the deeper of the two leaves, H = that distance's largest possible value among the
           seen classes (the tree's height below their common ancestor), so the farthest class gets −β
           as in the two-level case (a two-level tree has H = 2: same group −β/2, others −β).
Stage 2 (decoupling, t >= 1): backbone frozen in inference mode, the head alone retrained by a fresh
AdamW on the balanced set (test transform) with (1 − α)·CE + mg_scale·L_MG. The reference also adds
a KD of the head against its own detached output there; its gradient is exactly zero, so it is left out.

Hierarchies (method.hierarchy): 'dataset' (method.coarse_groups by original class id, else the
dataset's coarse labels: CIFAR-100's true superclasses), 'wordnet' (hypernym paths of the classes'
WordNet ids, cil_jax/input_pipeline/wordnet.py), 'visual' (KMeans with `clusters` groups over the per-class mean
features of the balanced set, from the backbone at the phase start), 'none' (no L_MG).

Deviations from the reference, each for a reason:
- CIFAR-100's coarse groups: the reference builds them from a name table in which 'fish' is both a
  superclass and a class, which shifts the groups; the dataset's own coarse labels are used.
- WordNet: H as above. The reference's branch order sets max_depth = 2 for WordNet in stage 1 (its
  height function is unreachable), i.e. s = −β·d, a near one-hot target at β = 50, and stage 2 passes
  no max_depth (the default 18: s = −β·d/17); `wordnet_norm='reference'` reproduces both stages,
  `wordnet_depth=1` stage 1's target in both. Paths are read from each class's WordNet id, not looked
  up by its name.
- Visual hierarchy: K = min(clusters, seen classes) (the reference falls back to 5); the reference's
  class means include one zero row per class, a uniform scaling KMeans does not see.
- The reference's -k flag is parsed and ignored there; memory.size is the per-class memory here.
- Training batches: stage 1 drops an epoch's last partial batch; stage 2 runs the reference's
  ceil(n / 128) steps per epoch over the n balanced images in equal batches (balanced_batch).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.methods.losses import cross_entropy, masked_log_softmax
from cil_jax.methods.api import LossInputs, Method, Optimizer, Phase, Step
from cil_jax.methods.shared import seen_cross_entropy, with_head
from cil_jax.methods.schedules import PerGroup, StepDecay, WarmUp

OPTIONS = {                          # the names of etrain.py's flags in brackets
    'hierarchy': 'dataset',          # dataset | wordnet | visual | none (no L_MG) [-cluster, --vis_hier]
    'coarse_groups': (),             # dataset: a group per original class id; () = the dataset's coarse labels
    'clusters': 5,                   # visual: KMeans groups K [-cluster]
    'wordnet_depth': 0,              # wordnet: the distance normaliser H; 0 = the seen classes' tree height
    'wordnet_norm': 'height',        # wordnet: 'height' (H above, both stages) | 'reference' (etrain.py's
                                     # max_depth - 1: 1 in stage 1, 17 in stage 2; docs/deviations.md M3)
    'beta': 20.0,                    # soft-target sharpness β [-beta]
    'mg_scale': 1.0,                 # weight of L_MG [-scale]
    'dscale': 1.0,                   # weight of the KD term, times α·T² [-dscale]
    'temperature': 2.0,              # T of the KD term
    'cb_loss': True,                 # class-balanced CE (False: plain CE, batch mean) [--cbloss]
    'cb_reduction': 'sum',           # sum (the reference) | mean over the batch
    'cb_new_count': 0,               # n_c of new classes; 0 = the largest class's training-set size
    'balanced_per_class': 2,         # of memory.size per class, the balanced set's share (CIFAR-10: 20)
    'balanced_augment': False,       # the balanced set (stage 2, visual features) in the train transform
                                     # (the reference's miniImageNet / ImageNet-100 loaders); False: test
    'decoupling': True,              # stage 2 on the balanced set (False: --no_dcp)
    'stage2_epochs': 40,             # CIFAR 40, others 30
    'stage2_milestones': (15,),      # reference milestones of stage 2 (each takes effect one epoch later)
    'warmup_epochs': 1,              # linear warm-up of the backbone's lr in stage 1
}
CHOICES = {'hierarchy': ('dataset', 'wordnet', 'visual', 'none'), 'cb_reduction': ('sum', 'mean'),
           'wordnet_norm': ('height', 'reference')}
# its fixed per-class memory, the class's first images in file order; a new linear head each phase
REQUIRES = {'model.head': 'linear', 'memory.policy': 'per_class', 'memory.selection': 'file_order'}


# --- losses ------------------------------------------------------------------------------------

def soft_target_kl(z, target_logits, mask):
  """KL_batchmean(softmax(s) ‖ softmax(z)) over the masked classes: PyTorch's
  KLDivLoss(reduction='batchmean')(log_softmax(z), softmax(s)) on the masked columns."""
  log_q = masked_log_softmax(target_logits, mask)
  log_p = masked_log_softmax(z, mask)
  q = jnp.where(mask, jnp.exp(log_q), 0.0)
  return jnp.sum(q * (log_q - log_p)) / z.shape[0]


def old_class_kd(z, z_teacher, old, temperature):
  """T²·mean_i of the soft CE −Σ_old softmax(ẑ/T)·log softmax(z/T) over the old classes."""
  t = temperature
  p = jnp.where(old, jnp.exp(masked_log_softmax(z_teacher / t, old)), 0.0)
  return -jnp.mean(jnp.sum(p * masked_log_softmax(z / t, old), axis=-1)) * t * t


def class_balanced_ce(z, labels, seen, weights, reduction: str):
  """Σ_i w_{y_i}·CE_i ('sum', the reference) or that over the batch size ('mean')."""
  per = weights[labels] * cross_entropy(z, labels, seen)
  return jnp.sum(per) if reduction == 'sum' else jnp.mean(per)


def stage1_loss(x: LossInputs, temperature, dscale, mg_scale, cb_loss, reduction):
  c, z, y = x.classes, x.out['logits'], x.batch['label']
  alpha = jnp.sum(c.old) / jnp.sum(c.seen)
  kd = old_class_kd(z, x.teacher['logits'], c.old, temperature)
  if cb_loss:
    cls = class_balanced_ce(z, y, c.seen, x.state['cb_weights'], reduction)
  else:
    cls = cross_entropy(z, y, c.seen).mean()
  loss = dscale * alpha * kd + (1 - alpha) * cls
  metrics = {'kd': kd, 'cls': cls}
  if mg_scale:
    metrics['mg'] = soft_target_kl(z, x.state['mg_logits'][y], c.seen)
    loss = loss + mg_scale * metrics['mg']
  return loss, metrics


def stage2_loss(x: LossInputs, mg_scale, target_divisor: float = 1.0):
  """target_divisor: stage 2's soft-target logits are stage 1's over it (the reference's WordNet
  targets: −β·d in stage 1, −β·d/17 in stage 2)."""
  c, z, y = x.classes, x.out['logits'], x.batch['label']
  alpha = jnp.sum(c.old) / jnp.sum(c.seen)
  ce = cross_entropy(z, y, c.seen).mean()
  loss, metrics = (1 - alpha) * ce, {'ce': ce}
  if mg_scale:
    target = x.state['mg_logits'][y]
    if target_divisor != 1.0:
      target = target / target_divisor
    metrics['mg'] = soft_target_kl(z, target, c.seen)
    loss = loss + mg_scale * metrics['mg']
  return loss, metrics


# --- host side: weights and hierarchies ----------------------------------------------------------

def class_balanced_weights(num_classes: int, old: int, seen: int, n_old: int, n_new: int) -> np.ndarray:
  """w [num_classes]: (1 − η)/(1 − η^n), η = (C − 1)/C; n_old for classes < old, n_new for the new
  ones up to seen, 0 for classes not seen yet."""
  eta = (num_classes - 1) / num_classes
  w = np.zeros(num_classes, np.float64)
  w[:old] = (1 - eta) / (1 - eta ** n_old)
  w[old:seen] = (1 - eta) / (1 - eta ** n_new)
  return w


def two_level_logits(coarse: np.ndarray, beta: float) -> np.ndarray:
  """s [C, C]: row y is the soft-target logits of label y: 0 on y, −β/2 in y's group, −β elsewhere."""
  same = coarse[:, None] == coarse[None, :]
  s = np.where(same, -beta / 2, -beta)
  np.fill_diagonal(s, 0.0)
  return s


def tree_logits(distances: np.ndarray, beta: float, height: int) -> np.ndarray:
  """s [C, C] = −β·d / height (d: tree distances, 0 on the diagonal)."""
  return -beta * distances.astype(np.float64) / max(height, 1)


# etrain.py's max_depth for WordNet: 2 in stage 1 (its branch order), MGloss's default 18 in stage 2;
# cal_MG.py divides the distance by max_depth − 1
REFERENCE_MAX_DEPTH = (2, 18)


def visual_groups(class_features: list, clusters: int) -> np.ndarray:
  """KMeans over the classes' mean features (random_state 0, 10 inits, as the reference's sklearn)."""
  from sklearn.cluster import KMeans
  means = np.stack([np.asarray(f, np.float64).mean(0) for f in class_features])
  k = min(int(clusters), len(means))
  return KMeans(n_clusters=k, random_state=0, n_init=10).fit(means).labels_.astype(np.int64)


def xavier_normal_head(params, rng: np.random.Generator, seen: int):
  """A new linear head: weights ~ N(0, 2/(fan_in + seen)) (nn.init.xavier_normal_ of a Linear over
  the seen classes), bias 0. Columns of unseen classes are drawn too; they are masked until seen."""
  fc = params['model']['head']['fc']
  d, c = fc['kernel'].shape
  std = np.sqrt(2.0 / (d + seen))
  kernel = rng.standard_normal((d, c)) * std
  return with_head(params, fc={'kernel': jnp.asarray(kernel, fc['kernel'].dtype),
                               'bias': jnp.zeros_like(fc['bias'])})


def balanced_batch(n: int, batch: int) -> int:
  """Stage 2's batch size: as many steps per epoch as the reference's loader, ceil(n / batch) (it keeps
  the last partial batch), in equal batches of n // steps images (at most steps − 1 left out)."""
  return n // -(-n // batch)


def split_memory(ctx, v: int) -> tuple[dict, list]:
  """(task data, balanced indices per seen class): the first v images of each class are its balanced
  share, the rest of an old class's memory its exemplars, the rest of a new class its training data."""
  old, new = ctx.memory.per_class(), ctx.new_classes()
  balanced = [m[:v] for m in old] + [c[:v] for c in new]
  cat = lambda xs: np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, np.int64)  # noqa: E731
  data = {'train': (cat([c[v:] for c in new]), cat([m[v:] for m in old]))}
  if ctx.t > 0:
    data['balanced'] = (cat(balanced[len(old):]), cat(balanced[:len(old)]))
  return data, balanced


# --- the method --------------------------------------------------------------------------------

def make(config) -> Method:
  opts = config.method
  hierarchy, reduction = opts.hierarchy, opts.cb_reduction
  v = int(opts.balanced_per_class)
  if not 0 < v < int(config.memory.size):
    raise ValueError(f'MGRB keeps memory.size={config.memory.size} images per class, of which '
                     f'method.balanced_per_class={v} form the balanced set: it needs 0 < balanced_per_class '
                     '< memory.size (the reference: 2 of 20, CIFAR-10 20 of 200)')
  if config.train.schedule != 'step':
    raise ValueError('MGRB trains with step decay at the reference\'s milestones: use train.schedule=step')
  if hierarchy == 'visual' and int(opts.clusters) < 1:
    raise ValueError(f'method.clusters={opts.clusters} must be >= 1 for the visual hierarchy')
  reference_norm = hierarchy == 'wordnet' and opts.wordnet_norm == 'reference'
  if reference_norm and int(opts.wordnet_depth):
    raise ValueError(f'method.wordnet_norm=reference sets the reference\'s divisors (1 in stage 1, 17 in stage 2); '
                     f'method.wordnet_depth={opts.wordnet_depth} would set another: leave it at 0')
  mg_scale = 0.0 if hierarchy == 'none' else float(opts.mg_scale)
  n_old = int(config.memory.size) - v

  adamw = Optimizer(kind='adamw', weight_decay=float(config.train.weight_decay))
  tc = config.train
  # The reference steps MultiStepLR with step(epoch) after epochs >= 1: milestone m holds from epoch m + 1.
  main = StepDecay(lr0=float(tc.lr), epochs=int(tc.epochs), milestones=tuple(int(m) + 1 for m in tc.milestones),
                   gamma=float(tc.gamma))
  backbone = WarmUp(main, int(opts.warmup_epochs)) if int(opts.warmup_epochs) else main
  stage1_schedule = PerGroup((('backbone', backbone), ('head', main)))
  stage2_schedule = StepDecay(lr0=float(tc.lr), epochs=int(opts.stage2_epochs),
                              milestones=tuple(int(m) + 1 for m in opts.stage2_milestones), gamma=float(tc.gamma))

  def groups(params):
    model = {k: jax.tree.map(lambda _, k=k: 'head' if k == 'head' else 'backbone', p)
             for k, p in params['model'].items()}
    return {'model': model, 'method': jax.tree.map(lambda _: 'head', params['method'])}

  def head_only(params, classes):
    del classes
    return {'model': {k: jax.tree.map(lambda _, k=k: k == 'head', p) for k, p in params['model'].items()},
            'method': jax.tree.map(lambda _: False, params['method'])}

  base = Step(seen_cross_entropy, optimizer=adamw, groups=groups)
  stage1 = Step(functools.partial(stage1_loss, temperature=float(opts.temperature), dscale=float(opts.dscale),
                                  mg_scale=mg_scale, cb_loss=bool(opts.cb_loss), reduction=reduction),
                teacher='task_start', optimizer=adamw, groups=groups)
  # wordnet_norm=reference: −β·d/(max_depth − 1) with the reference's max_depth of each stage
  reference = tuple(d - 1 for d in REFERENCE_MAX_DEPTH) if reference_norm else None
  stage2 = Step(functools.partial(stage2_loss, mg_scale=mg_scale,
                                  target_divisor=reference[1] / reference[0] if reference else 1.0),
                bn_train=False, trainable=head_only, optimizer=adamw)
  batch = int(tc.batch_size)
  base_classes, step_classes = int(config.scenario.base), int(config.scenario.step)
  if int(config.scenario.num_tasks):
    raise ValueError('MGRB splits classes as n base + m per phase: set scenario.base and scenario.step, not '
                     'scenario.num_tasks')

  def phases(t):
    if t == 0:
      return [Phase('base', base, stage1_schedule, stream='mixed', batch_size=batch)]
    out = [Phase('train', stage1, stage1_schedule, stream='mixed', batch_size=batch)]
    if bool(opts.decoupling) and int(opts.stage2_epochs) > 0:
      seen = base_classes + t * step_classes     # before_task checks the split is even
      out.append(Phase('balanced', stage2, stage2_schedule, stream='mixed', data='balanced',
                       batch_size=balanced_batch(v * seen, batch), augment=bool(opts.balanced_augment)))
    return out

  def before_task(ctx):
    """A new head; from phase 1 on, the CB weights and the hierarchy's soft-target logits."""
    seen, old = ctx.tasks.end(ctx.t), ctx.tasks.start(ctx.t)
    if (ctx.tasks.num_classes - base_classes) % step_classes:
      raise ValueError(f'MGRB needs the {ctx.tasks.num_classes} classes split evenly: {base_classes} base classes '
                       f'leave {ctx.tasks.num_classes - base_classes}, not a multiple of scenario.step={step_classes}')
    params = xavier_normal_head(ctx.state.params, ctx.rng('head_init'), seen)
    state = dict(ctx.method_state)
    if ctx.t == 0:
      check_hierarchy(ctx)    # a missing input fails now, not after the first phase's training
      return params, state
    c = ctx.tasks.num_classes
    n_new = int(opts.cb_new_count) or max(len(k) for k in ctx.train_by_class)
    state['cb_weights'] = jnp.asarray(class_balanced_weights(c, old, seen, n_old, n_new),
                                      state['cb_weights'].dtype)
    if mg_scale:
      s = np.zeros((c, c))
      s[:seen, :seen] = hierarchy_logits(ctx, seen)
      state['mg_logits'] = jnp.asarray(s, state['mg_logits'].dtype)
    return params, state

  def check_hierarchy(ctx):
    if hierarchy == 'dataset':
      coarse_groups(ctx)
    elif hierarchy == 'wordnet':
      wordnet_paths(ctx, ctx.tasks.num_classes)

  def wordnet_paths(ctx, seen):
    from cil_jax.input_pipeline import wordnet
    wnids = ctx.class_info.wnids
    if wnids is None:
      raise ValueError(f'method.hierarchy=wordnet needs the classes\' WordNet ids, and {config.dataset.name} has '
                       'none; use method.hierarchy=visual or method.hierarchy=dataset (the config arguments :vis '
                       'and :ont)')
    return [wordnet.hypernym_path(w) for w in wnids[:seen]]

  def hierarchy_logits(ctx, seen):
    beta = float(opts.beta)
    if hierarchy == 'visual':
      _, balanced = split_memory(ctx, v)
      idx = np.concatenate(balanced)
      feats = ctx.outputs(idx, augment=bool(opts.balanced_augment), keys=('features',))['features']
      bounds = np.cumsum([0] + [len(b) for b in balanced])
      coarse = visual_groups([feats[bounds[k]:bounds[k + 1]] for k in range(seen)], int(opts.clusters))
      return two_level_logits(coarse, beta)
    if hierarchy == 'wordnet':
      from cil_jax.input_pipeline import wordnet
      paths = wordnet_paths(ctx, seen)
      height = reference[0] if reference else int(opts.wordnet_depth) or wordnet.tree_height(paths)
      return tree_logits(wordnet.distance_matrix(paths), beta, height)
    return two_level_logits(coarse_groups(ctx)[:seen], beta)

  def coarse_groups(ctx):
    info = ctx.class_info
    if len(opts.coarse_groups):
      groups_by_original = np.asarray(opts.coarse_groups, np.int64)
      if len(groups_by_original) != ctx.tasks.num_classes:
        raise ValueError(f'method.coarse_groups has {len(groups_by_original)} entries; it needs one group per '
                         f'class of the dataset ({ctx.tasks.num_classes}, by original class id)')
      return groups_by_original[info.original]
    if info.coarse is None:
      raise ValueError(f'method.hierarchy=dataset needs coarse labels, and {config.dataset.name} has none; set '
                       'method.coarse_groups (a group per original class) or use method.hierarchy=visual (the '
                       'config argument :vis)')
    return np.asarray(info.coarse, np.int64)

  def task_data(ctx):
    return split_memory(ctx, v)[0]

  return Method('mgrb', phases, task_data=task_data, before_task=before_task,
                init_state=lambda c, t, d: {'cb_weights': jnp.zeros((c,)), 'mg_logits': jnp.zeros((c, c))})
