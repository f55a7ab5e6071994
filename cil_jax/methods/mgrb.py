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

def head_or_backbone(params):
  """Parameter groups of stage 1's per-group lr: the head's and the method's arrays 'head', the rest 'backbone'."""
  model = {k: jax.tree.map(lambda _, k=k: 'head' if k == 'head' else 'backbone', p)
           for k, p in params['model'].items()}
  return {'model': model, 'method': jax.tree.map(lambda _: 'head', params['method'])}


def head_only(params, classes):
  """Stage 2's trainable mask: the head alone."""
  del classes
  return {'model': {k: jax.tree.map(lambda _, k=k: k == 'head', p) for k, p in params['model'].items()},
          'method': jax.tree.map(lambda _: False, params['method'])}


def stage_schedules(train_cfg, opts) -> tuple[PerGroup, StepDecay]:
  """Stage 1's (the backbone warmed up, the head not) and stage 2's. The reference steps MultiStepLR
  with step(epoch) after epochs >= 1: milestone m holds from epoch m + 1."""
  tc = train_cfg
  main = StepDecay(lr0=float(tc.lr), epochs=int(tc.epochs), milestones=tuple(int(m) + 1 for m in tc.milestones),
                   gamma=float(tc.gamma))
  backbone = WarmUp(main, int(opts.warmup_epochs)) if int(opts.warmup_epochs) else main
  stage2 = StepDecay(lr0=float(tc.lr), epochs=int(opts.stage2_epochs),
                     milestones=tuple(int(m) + 1 for m in opts.stage2_milestones), gamma=float(tc.gamma))
  return PerGroup((('backbone', backbone), ('head', main))), stage2


def check_config(config) -> None:
  """What the declared CHOICES cannot say: how the options fit together and with the protocol."""
  opts = config.method
  v = int(opts.balanced_per_class)
  if not 0 < v < int(config.memory.size):
    raise ValueError(f'MGRB keeps memory.size={config.memory.size} images per class, of which '
                     f'method.balanced_per_class={v} form the balanced set: it needs 0 < balanced_per_class '
                     '< memory.size (the reference: 2 of 20, CIFAR-10 20 of 200)')
  if config.train.schedule != 'step':
    raise ValueError('MGRB trains with step decay at the reference\'s milestones: use train.schedule=step')
  if opts.hierarchy == 'visual' and int(opts.clusters) < 1:
    raise ValueError(f'method.clusters={opts.clusters} must be >= 1 for the visual hierarchy')
  if opts.hierarchy == 'wordnet' and opts.wordnet_norm == 'reference' and int(opts.wordnet_depth):
    raise ValueError(f'method.wordnet_norm=reference sets the reference\'s divisors (1 in stage 1, 17 in stage 2); '
                     f'method.wordnet_depth={opts.wordnet_depth} would set another: leave it at 0')
  if int(config.scenario.num_tasks):
    raise ValueError('MGRB splits classes as n base + m per phase: set scenario.base and scenario.step, not '
                     'scenario.num_tasks')


class MGRB:
  """MGRB's steps, phases and host-side hooks for one config (make)."""

  def __init__(self, config):
    opts, tc = config.method, config.train
    self.opts, self.dataset = opts, config.dataset.name
    self.hierarchy = opts.hierarchy
    self.v = int(opts.balanced_per_class)               # balanced images per class
    self.n_old = int(config.memory.size) - self.v        # exemplars per old class
    self.base_classes, self.step_classes = int(config.scenario.base), int(config.scenario.step)
    self.batch = int(tc.batch_size)
    self.mg_scale = 0.0 if self.hierarchy == 'none' else float(opts.mg_scale)
    # wordnet_norm=reference: −β·d/(max_depth − 1) with the reference's max_depth of each stage
    reference_norm = self.hierarchy == 'wordnet' and opts.wordnet_norm == 'reference'
    self.reference = tuple(d - 1 for d in REFERENCE_MAX_DEPTH) if reference_norm else None
    self.stage1_schedule, self.stage2_schedule = stage_schedules(tc, opts)
    adamw = Optimizer(kind='adamw', weight_decay=float(tc.weight_decay))
    self.base = Step(seen_cross_entropy, optimizer=adamw, groups=head_or_backbone)
    self.stage1 = Step(functools.partial(stage1_loss, temperature=float(opts.temperature), dscale=float(opts.dscale),
                                         mg_scale=self.mg_scale, cb_loss=bool(opts.cb_loss),
                                         reduction=opts.cb_reduction),
                       teacher='task_start', optimizer=adamw, groups=head_or_backbone)
    divisor = self.reference[1] / self.reference[0] if self.reference else 1.0
    self.stage2 = Step(functools.partial(stage2_loss, mg_scale=self.mg_scale, target_divisor=divisor),
                       bn_train=False, trainable=head_only, optimizer=adamw)

  def phases(self, t):
    if t == 0:
      return [Phase('base', self.base, self.stage1_schedule, stream='mixed', batch_size=self.batch)]
    out = [Phase('train', self.stage1, self.stage1_schedule, stream='mixed', batch_size=self.batch)]
    if bool(self.opts.decoupling) and int(self.opts.stage2_epochs) > 0:
      seen = self.base_classes + t * self.step_classes     # before_task checks the split is even
      out.append(Phase('balanced', self.stage2, self.stage2_schedule, stream='mixed', data='balanced',
                       batch_size=balanced_batch(self.v * seen, self.batch), augment=bool(self.opts.balanced_augment)))
    return out

  def task_data(self, ctx):
    return split_memory(ctx, self.v)[0]

  def before_task(self, ctx):
    """A new head; from phase 1 on, the CB weights and the hierarchy's soft-target logits."""
    seen, old = ctx.tasks.end(ctx.t), ctx.tasks.start(ctx.t)
    c = ctx.tasks.num_classes
    if (c - self.base_classes) % self.step_classes:
      raise ValueError(f'MGRB needs the {c} classes split evenly: {self.base_classes} base classes leave '
                       f'{c - self.base_classes}, not a multiple of scenario.step={self.step_classes}')
    params = xavier_normal_head(ctx.state.params, ctx.rng('head_init'), seen)
    state = dict(ctx.method_state)
    if ctx.t == 0:
      self.check_hierarchy(ctx)    # a missing input fails now, not after the first phase's training
      return params, state
    n_new = int(self.opts.cb_new_count) or max(len(k) for k in ctx.train_by_class)
    state['cb_weights'] = jnp.asarray(class_balanced_weights(c, old, seen, self.n_old, n_new),
                                      state['cb_weights'].dtype)
    if self.mg_scale:
      s = np.zeros((c, c))
      s[:seen, :seen] = self.hierarchy_logits(ctx, seen)
      state['mg_logits'] = jnp.asarray(s, state['mg_logits'].dtype)
    return params, state

  def check_hierarchy(self, ctx):
    if self.hierarchy == 'dataset':
      self.coarse_groups(ctx)
    elif self.hierarchy == 'wordnet':
      self.wordnet_paths(ctx, ctx.tasks.num_classes)

  def hierarchy_logits(self, ctx, seen):
    """s [seen, seen]: the soft-target logits of the seen classes (module docstring)."""
    beta = float(self.opts.beta)
    if self.hierarchy == 'visual':
      _, balanced = split_memory(ctx, self.v)
      feats = ctx.outputs(np.concatenate(balanced), augment=bool(self.opts.balanced_augment),
                          keys=('features',))['features']
      bounds = np.cumsum([0] + [len(b) for b in balanced])
      coarse = visual_groups([feats[bounds[k]:bounds[k + 1]] for k in range(seen)], int(self.opts.clusters))
      return two_level_logits(coarse, beta)
    if self.hierarchy == 'wordnet':
      from cil_jax.input_pipeline import wordnet
      paths = self.wordnet_paths(ctx, seen)
      height = self.reference[0] if self.reference else int(self.opts.wordnet_depth) or wordnet.tree_height(paths)
      return tree_logits(wordnet.distance_matrix(paths), beta, height)
    return two_level_logits(self.coarse_groups(ctx)[:seen], beta)

  def wordnet_paths(self, ctx, seen):
    from cil_jax.input_pipeline import wordnet
    wnids = ctx.class_info.wnids
    if wnids is None:
      raise ValueError(f'method.hierarchy=wordnet needs the classes\' WordNet ids, and {self.dataset} has none; use '
                       'method.hierarchy=visual or method.hierarchy=dataset (the config arguments :vis and :ont)')
    return [wordnet.hypernym_path(w) for w in wnids[:seen]]

  def coarse_groups(self, ctx):
    info = ctx.class_info
    if len(self.opts.coarse_groups):
      groups_by_original = np.asarray(self.opts.coarse_groups, np.int64)
      if len(groups_by_original) != ctx.tasks.num_classes:
        raise ValueError(f'method.coarse_groups has {len(groups_by_original)} entries; it needs one group per '
                         f'class of the dataset ({ctx.tasks.num_classes}, by original class id)')
      return groups_by_original[info.original]
    if info.coarse is None:
      raise ValueError(f'method.hierarchy=dataset needs coarse labels, and {self.dataset} has none; set '
                       'method.coarse_groups (a group per original class) or use method.hierarchy=visual (the '
                       'config argument :vis)')
    return np.asarray(info.coarse, np.int64)


def make(config) -> Method:
  check_config(config)
  mgrb = MGRB(config)
  return Method('mgrb', mgrb.phases, task_data=mgrb.task_data, before_task=mgrb.before_task,
                init_state=lambda c, t, d: {'cb_weights': jnp.zeros((c,)), 'mg_logits': jnp.zeros((c, c))})
