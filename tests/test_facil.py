"""FACIL's protocol and the IIL-CLSF (RethinkSoftmax) losses: the split, class order, hold-out, exemplar
quota and herding against FACIL's rules worked by hand and ported; every loss term against numpy on
uneven heads; the frozen old heads; FACIL's metrics."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cil_jax.results import metrics
from cil_jax.input_pipeline import scenario
from cil_jax.engine.exemplars import facil_memory
from cil_jax.methods.losses import facil_kd
from cil_jax.methods import icarl, lucir, lwf, shared
from cil_jax.methods.api import Classes, LossInputs, Step
from helpers import train_setup

# --- FACIL's split, class order, hold-out, quota ---------------------------------------------------


def facil_cpertask(num_classes, num_tasks, nc_first_task=None):
  """FACIL's datasets/memory_dataset.get_data, the classes-per-task lines (ported as written)."""
  if nc_first_task is None:
    cpertask = np.array([num_classes // num_tasks] * num_tasks)
    for i in range(num_classes % num_tasks):
      cpertask[i] += 1
  else:
    remaining_classes = num_classes - nc_first_task
    cpertask = np.array([nc_first_task] + [remaining_classes // (num_tasks - 1)] * (num_tasks - 1))
    for i in range(remaining_classes % (num_tasks - 1)):
      cpertask[i + 1] += 1
  return cpertask.tolist()


@pytest.mark.parametrize('classes, tasks, first, want', [
    (100, 10, 0, [10] * 10),                    # even
    (100, 6, 50, [50, 10, 10, 10, 10, 10]),     # nc_first_task set, the rest even
    (10, 4, 0, [3, 3, 2, 2]),                   # uneven: 10 // 4 = 2, the remainder 2 to tasks 1, 2
    (13, 4, 3, [3, 4, 3, 3]),                   # uneven after nc_first_task: 10 // 3 = 3, one more to task 2
    (100, 11, 0, [10] + [9] * 10),
])
def test_facil_split_by_hand(classes, tasks, first, want):
  t = scenario.facil_split(classes, tasks, first)
  assert [t.size(k) for k in range(t.num_tasks)] == want
  assert t.start(0) == 0 and t.end(t.num_tasks - 1) == classes
  np.testing.assert_array_equal(t.task_of_class(), np.repeat(np.arange(len(want)), want))


def test_facil_split_matches_facils_code_and_refuses_impossible_ones():
  rng = np.random.RandomState(0)
  for _ in range(200):
    c = int(rng.randint(2, 120))
    n = int(rng.randint(1, c + 1))
    first = int(rng.randint(1, c - n + 2)) if n > 1 and rng.rand() < 0.5 else 0
    t = scenario.facil_split(c, n, first)
    assert [t.size(k) for k in range(n)] == facil_cpertask(c, n, first or None)
  for args in ((10, 11, 0), (10, 3, 10), (10, 4, 8), (10, 0, 0)):
    with pytest.raises(scenario.ScenarioError):
      scenario.facil_split(*args)


@pytest.mark.parametrize('seed', [0, 1, 1993])
def test_facil_class_order_is_numpys_global_shuffle(seed):
  """FACIL (no class_order in the dataset config): seed_everything(seed), then
  np.random.shuffle(list(range(C))); incremental label j is original class order[j]."""
  np.random.seed(seed)
  order = list(range(100))
  np.random.shuffle(order)
  m = scenario.label_map(100, 'facil', seed)
  assert [int(m[o]) for o in order] == list(range(100))


def test_holdout_counts_by_hand():
  """FACIL's round(n · 0.1) per class (np.round: half to even): 500 -> 50, 45 -> 4, 55 -> 6, 5 -> 0."""
  sizes = [500, 45, 55, 5]
  by_class, start = [], 0
  for n in sizes:
    by_class.append(np.arange(start, start + n))
    start += n
  tasks = scenario.facil_split(4, 2, 0)
  val, rest = scenario.facil_holdout(by_class, tasks, 0.1, seed=0)
  assert [len(v) for v in val] == [50 + 4, 6 + 0]
  assert [len(r) for r in rest] == [450, 41, 49, 5]


def test_the_per_class_minimum_of_the_holdout_is_where_rounding_gives_one():
  for fraction, need in ((0.1, 6), (0.2, 3), (0.05, 11), (0.5, 2), (0.9, 1), (0.01, 51)):
    assert scenario.holdout_minimum(fraction) == need, fraction
    assert round(need * fraction) >= 1 > np.round((need - 1) * fraction)


def test_an_empty_validation_set_is_refused_at_start_in_one_line(idx_dir, tmp_path):
  """5 images per class at 0.1 hold out none (round(0.5) = 0): the run stops before it starts, where it
  used to stop after the first epoch; 6 per class hold out one each."""
  from helpers import load_config
  from cil_jax.engine import train
  c = load_config('lwf_fmnist.py', 't2,smoke', **{'dataset.root': idx_dir, 'dataset.max_per_class': 5})
  with pytest.raises(scenario.ScenarioError, match=r'^the validation set of task 1 would be empty: scenario.validation'
                                                   r'=0.1 .* none of fewer than 6, and its classes have 5 at most; give'
                                                   r' a class at least 6 training images') as info:
    train.train_and_evaluate(c, str(tmp_path / 'w'))
  assert '\n' not in str(info.value)
  assert not (tmp_path / 'w').exists()
  tasks = scenario.facil_split(4, 2)
  by_class = [np.arange(6 * k, 6 * k + n) for k, n in enumerate((6, 5, 5, 5))]
  val, _ = scenario.facil_holdout(by_class, tasks, 0.1, seed=0)
  scenario.check_holdout(val, [6, 5, 5, 5], tasks, 0.1, validated=[0])    # task 2 validates on nothing: not asked
  with pytest.raises(scenario.ScenarioError, match='task 2 would be empty'):
    scenario.check_holdout(val, [6, 5, 5, 5], tasks, 0.1, validated=[0, 1])


def test_facil_quota_is_not_trimmed():
  assert scenario.facil_quota(2000, 30) == 67 and 67 * 30 == 2010     # FACIL keeps 2010
  assert scenario.facil_quota(2000, 10) == 200 and scenario.facil_quota(2000, 3) == 667


def facil_herding(feats, m):
  """FACIL's HerdingExemplarsSelector inner loop, as written (strict '<' keeps the first index)."""
  feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
  cls_mu = feats.mean(0)
  selected, selected_feat = [], []
  for _ in range(m):
    sum_others = np.sum(selected_feat, axis=0) if selected_feat else np.zeros_like(cls_mu)
    dist_min = np.inf
    for item in range(len(feats)):
      if item not in selected:
        dist = np.linalg.norm(cls_mu - (feats[item] + sum_others) / (len(selected_feat) + 1))
        if dist < dist_min:
          dist_min, newone = dist, item
    selected.append(newone)
    selected_feat.append(feats[newone])
  return selected


class _Ctx:
  """The parts of a TaskContext that facil_memory reads."""

  def __init__(self, t, tasks, memory, by_class, feats):
    self.t, self.tasks, self.memory, self.train_by_class, self._feats = t, tasks, memory, by_class, feats

  def outputs(self, idx, keys=None):
    return {'features': self._feats[idx]}


@pytest.mark.parametrize('selection', ['herding', 'random'])
def test_facil_memory_quota_and_reselection(selection):
  """After task 1 every seen class keeps ceil(M / seen) images, chosen from its pool (old classes: their
  current exemplars only), herding = FACIL's selector on the same features."""
  rng = np.random.RandomState(0)
  tasks = scenario.facil_split(5, 2, 3)                # [3, 2]
  by_class = [np.arange(c * 20, c * 20 + 20) for c in range(5)]
  feats = rng.randn(100, 6)
  mem0 = facil_memory(_Ctx(0, tasks, scenario.Memory.empty(), by_class, feats), 20, selection, seed=0)
  assert mem0.counts.tolist() == [7, 7, 7]             # ceil(20 / 3), 21 in all
  mem1 = facil_memory(_Ctx(1, tasks, mem0, by_class, feats), 20, selection, seed=0)
  assert mem1.counts.tolist() == [4] * 5
  for c, (before, after) in enumerate(zip(mem0.per_class(), mem1.per_class()[:3])):
    assert set(after) <= set(before)
  if selection == 'herding':
    for c, chosen in enumerate(mem0.per_class()):
      np.testing.assert_array_equal(chosen, by_class[c][facil_herding(feats[by_class[c]], 7)])
    for c, chosen in enumerate(mem1.per_class()):
      pool = mem0.per_class()[c] if c < 3 else by_class[c]
      np.testing.assert_array_equal(chosen, pool[facil_herding(feats[pool], 4)])


# --- losses on uneven heads ------------------------------------------------------------------------

TASKS = scenario.facil_split(9, 3, 4)      # heads of 4, 3, 2 classes (a larger first task)
RNG = np.random.RandomState(3)
Z = (RNG.randn(6, 9) * 3).astype(np.float32)
ZT = (RNG.randn(6, 9) * 3).astype(np.float32)
Y = np.array([7, 8, 7, 2, 5, 8])           # task 3's classes are 7, 8; 2 and 5 are old (exemplars)


def np_facil_ce(out, tar, exp=1.0, eps=1e-5):
  """FACIL's LwF cross_entropy (approach/lwf.py), as written, in float64."""
  out = np.exp(out - out.max(1, keepdims=True))
  out = out / out.sum(1, keepdims=True)
  tar = np.exp(tar - tar.max(1, keepdims=True))
  tar = tar / tar.sum(1, keepdims=True)
  if exp != 1:
    out = out ** exp
    out = out / out.sum(1, keepdims=True)
    tar = tar ** exp
    tar = tar / tar.sum(1, keepdims=True)
  out = out + eps / out.shape[1]
  out = out / out.sum(1, keepdims=True)
  return -(tar * np.log(out)).sum(1).mean()


def np_bce(p, t):
  """torch.nn.functional.binary_cross_entropy (mean), log clamped at -100."""
  return -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log(1 - p), -100)).mean()


def sig(v):
  return 1 / (1 + np.exp(-v.astype(np.float64)))


def _x(z=Z, zt=ZT, y=Y, t=2, features=None, teacher_features=None, extra=None):
  out = {'logits': jnp.asarray(z), **(extra or {})}
  teacher = None if zt is None else {'logits': jnp.asarray(zt)}
  if features is not None:
    out['features'] = jnp.asarray(features)
    teacher['features'] = jnp.asarray(teacher_features)
  return LossInputs(out=out, teacher=teacher, params={}, teacher_params=None, batch={'label': jnp.asarray(y)},
                    classes=Classes.for_task(TASKS, t), state={})


def test_facil_kd_matches_facils_cross_entropy():
  for mask, cols in ((np.arange(9) < 7, slice(0, 7)), (np.arange(9) < 4, slice(0, 4))):
    got = float(facil_kd(jnp.asarray(Z), jnp.asarray(ZT), jnp.asarray(mask), 2.0).mean())
    np.testing.assert_allclose(got, np_facil_ce(Z[:, cols], ZT[:, cols], exp=0.5), rtol=1e-5)
  np.testing.assert_allclose(float(facil_kd(jnp.asarray(Z), jnp.asarray(ZT), jnp.asarray(np.arange(9) < 7),
                                            1.0).mean()), np_facil_ce(Z[:, :7], ZT[:, :7]), rtol=1e-5)
  assert float(facil_kd(jnp.asarray(Z), jnp.asarray(ZT), jnp.zeros(9, bool), 2.0).sum()) == 0.0


def lwf_numpy(variant, lamb=1.0, T=2.0, with_exemplars=False, z=Z, zt=ZT, y=Y):
  """The RethinkSoftmax criterion of each variant at task 3 (heads [0,4) [4,7) [7,9)), as written."""
  heads, old = [slice(0, 4), slice(4, 7)], slice(0, 7)
  joint = np_facil_ce(z[:, old], zt[:, old], exp=1 / T)
  per_kd = sum(np_facil_ce(z[:, h], zt[:, h], exp=1 / T) for h in heads)
  per_bce = sum(np_bce(sig(z[:, h]), sig(zt[:, h])) for h in heads)
  loss = {'lwf': lamb * joint, 's': lamb * per_kd, 'sr': 0.5 * lamb * joint + lamb * per_kd,
          'br': lamb * joint + lamb * per_bce, 'br2': lamb * joint + lamb * per_bce,
          'bsr': lamb * joint + lamb * per_kd + 0.5 * lamb * per_bce}[variant]
  if with_exemplars:
    return loss - np_log_softmax(z[:, :9])[np.arange(len(y)), y].mean()
  cur = z[:, 7:9]
  loss += -np_log_softmax(cur)[np.arange(len(y)), y - 7].mean()
  if variant == 'br2':
    loss += np_bce(sig(cur), np.eye(2)[y - 7])
  return loss


def np_log_softmax(v):
  v = v.astype(np.float64)
  return v - v.max(1, keepdims=True) - np.log(np.exp(v - v.max(1, keepdims=True)).sum(1, keepdims=True))


@pytest.mark.parametrize('variant', lwf.CHOICES['variant'])
def test_every_lwf_variant_against_numpy(variant):
  y_new = np.array([7, 8, 7, 7, 8, 8])
  loss, _ = lwf.lwf_loss(_x(y=y_new), variant, 1.5, 2.0, with_exemplars=False)
  np.testing.assert_allclose(float(loss), lwf_numpy(variant, lamb=1.5, y=y_new), rtol=1e-5)
  loss, _ = lwf.lwf_loss(_x(), variant, 1.0, 2.0, with_exemplars=True)   # old-class samples: exemplars
  np.testing.assert_allclose(float(loss), lwf_numpy(variant, with_exemplars=True), rtol=1e-5)


def test_lwf_first_task_is_ce_and_br2_adds_bcep_there():
  y0 = np.array([0, 1, 2, 3, 0, 1])
  for variant in lwf.CHOICES['variant']:
    loss, _ = lwf.lwf_loss(_x(zt=None, y=y0, t=0), variant, 1.0, 2.0, with_exemplars=False)
    want = -np_log_softmax(Z[:, :4])[np.arange(6), y0].mean()
    if variant == 'br2':
      want += np_bce(sig(Z[:, :4]), np.eye(4)[y0])
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)


def test_bce_keeps_the_exact_value_where_a_float32_sigmoid_saturates():
  """log σ(z) from the logits: z = 30 against target 0 costs 30 (PyTorch's float32 sigmoid rounds to 1
  there and clamps the log at -100); both are clamped at 100 beyond."""
  from cil_jax.methods.losses import sigmoid_bce
  np.testing.assert_allclose(np.asarray(sigmoid_bce(jnp.array([30.0, -30.0, 300.0]), jnp.zeros(3))),
                             [30.0, 0.0, 100.0], rtol=1e-6, atol=1e-6)


def test_multi_softmax_scores_are_per_head_log_softmax():
  c = Classes.for_task(TASKS, 1)                       # heads [0,4) [4,7) seen
  got = np.asarray(shared.multi_softmax_scores({'logits': jnp.asarray(Z)}, None, None, c))
  np.testing.assert_allclose(got[:, :4], np_log_softmax(Z[:, :4]), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got[:, 4:7], np_log_softmax(Z[:, 4:7]), rtol=1e-5, atol=1e-6)
  assert (got[:, 7:] < -1e29).all()


def test_frozen_old_heads_get_exactly_no_update():
  """LwF without exemplars at task 3: the old heads' columns (kernel and bias) do not move, to the bit,
  while the current head and the backbone do; with exemplars every seen head moves."""
  from cil_jax.methods.api import Optimizer
  tasks = scenario.facil_split(9, 3, 4)
  classes = Classes.for_task(tasks, 2)
  for columns, moving in (('new', slice(7, 9)), ('seen', slice(0, 9))):
    spec = Step(lambda x: lwf.lwf_loss(x, 'bsr', 1.0, 2.0, columns == 'seen'), teacher='task_start',
                trainable=shared.head_columns_trainable(columns))
    s = train_setup(spec, main_optimizer=Optimizer(momentum=0.0, weight_decay=0.0, clip_norm=10000.0))
    rng = np.random.RandomState(0)
    batch = {'image': rng.randint(0, 255, (8, 28, 28, 1)).astype(np.uint8),
             'label': np.array([7, 8, 7, 8, 2, 5, 8, 7], np.int32), 'replay': np.zeros(8, bool)}
    before = jax.device_get(s.state.params)
    teacher = s.state.teacher_copy()
    state, _ = s.step(s.state, teacher, batch, classes, jnp.float32(0.1), {})
    after = jax.device_get(state.params)
    fc0, fc1 = before['model']['head']['fc'], after['model']['head']['fc']
    for name in ('kernel', 'bias'):
      frozen = np.ones(9, bool)
      frozen[moving] = False
      np.testing.assert_array_equal(fc1[name][..., frozen], fc0[name][..., frozen])
      assert (fc1[name][..., moving] != fc0[name][..., moving]).any()
    assert not np.array_equal(after['model']['conv1']['kernel'], before['model']['conv1']['kernel'])


# --- LUCIR's variants ------------------------------------------------------------------------------

def _lucir_inputs(y):
  rng = np.random.RandomState(5)
  f, g = rng.randn(6, 5).astype(np.float32), rng.randn(6, 5).astype(np.float32)
  eta, eta_t = 1.7, 1.3
  cos, cos_t = np.tanh(Z / 3), np.tanh(ZT / 3)
  x = _x(z=eta * cos, zt=eta_t * cos_t, y=y, features=f, teacher_features=g,
         extra={'cosine': jnp.asarray(cos), 'scale': jnp.asarray(eta)})
  return x, f, g, eta * cos, eta_t * cos_t, cos


def np_cos_emb(f, g):
  fn, gn = f / np.linalg.norm(f, axis=1, keepdims=True), g / np.linalg.norm(g, axis=1, keepdims=True)
  return (1 - (fn * gn).sum(1)).mean()


def np_lucir_facil(y, f, g, logits, cos, lam_base=5.0, margin=0.5, k=2):
  """FACIL's lucir.py criterion at task 3 (old [0,7), new [7,9)): CosEmb·λ + CE + margin ranking."""
  lam = lam_base * math.sqrt(7 / 2)
  ce = -np_log_softmax(logits[:, :9])[np.arange(len(y)), y].mean()
  hard = y < 7
  mr = 0.0
  if hard.any():
    gt = np.repeat(cos[hard, y[hard]][:, None], k, 1)
    top = -np.sort(-cos[hard, 7:9], axis=1)[:, :k]
    mr = np.maximum(0, margin - (gt - top)).mean()
  return lam * np_cos_emb(f, g) + ce + mr, lam


@pytest.mark.parametrize('variant', lucir.CHOICES['variant'])
def test_lucir_variants_against_numpy(variant):
  x, f, g, logits, logits_t, cos = _lucir_inputs(Y)
  base, lam = np_lucir_facil(Y, f, g, logits, cos)
  t = 2   # old tasks before task 3
  want = base + {
      'lucir': 0.0,
      'sr': sum(0.1 * lam * np_facil_ce(logits[:, h], logits_t[:, h]) for h in (slice(0, 4), slice(4, 7))),
      'bsr': t * (lam * np_cos_emb(f, g) + lam * np_bce(sig(f), sig(g))),
      'br2': t * lam * np_bce(sig(f), sig(g)) + np_bce(sig(logits[:, :9]), np.eye(9)[Y]),
  }[variant]
  loss, _ = lucir.lucir_loss(x, 5.0, 0.5, 2, form='facil', variant=variant)
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)


def test_lucir_feature_distillation_by_sample_task():
  """by_sample_task: old task i's terms over the batch's samples of task i only (here samples 3 (class 2,
  task 1) and 4 (class 5, task 2)); none of an old task: 0."""
  x, f, g, *_ = _lucir_inputs(Y)
  cos_part, bce_part = lucir.feature_distillation(x.out['features'], x.teacher['features'], x.batch['label'],
                                                  x.classes, 'by_sample_task')
  rows = [[3], [4]]
  np.testing.assert_allclose(float(cos_part), sum(np_cos_emb(f[r], g[r]) for r in rows), rtol=1e-5)
  np.testing.assert_allclose(float(bce_part), sum(np_bce(sig(f[r]), sig(g[r])) for r in rows), rtol=1e-5)
  y_new = np.array([7, 8, 7, 7, 8, 8])
  parts = lucir.feature_distillation(x.out['features'], x.teacher['features'], jnp.asarray(y_new), x.classes,
                                     'by_sample_task')
  assert [float(p) for p in parts] == [0.0, 0.0]


def test_lucir_facil_margin_ranking_sends_no_gradient_to_the_scale():
  """FACIL's margin ranking uses the unscaled cosines; the SS-IL form's reaches η through logits / η."""
  def mr_grad(form):
    def f(eta):
      x, *_ = _lucir_inputs(Y)
      cos = x.out['cosine']
      out = dict(x.out, logits=eta * cos, scale=eta)
      return lucir.lucir_loss(x.replace(out=out), 5.0, 0.5, 2, form=form)[1]['margin_ranking']
    return float(jax.grad(f)(jnp.float32(1.7)))
  assert mr_grad('facil') == 0.0 and mr_grad('ssil') != 0.0


# --- FACIL's metrics ---------------------------------------------------------------------------------

def test_average_accuracy_and_forgetting_by_hand():
  acc = [[80.0], [60.0, 90.0], [70.0, 50.0, 40.0]]
  assert metrics.lower_triangle_mean(acc) == pytest.approx((80 + 60 + 90 + 70 + 50 + 40) / 6)
  # drops: (k=1, j=0) 80-60 = 20; (2, 0) max(80, 60) - 70 = 10; (2, 1) 90 - 50 = 40
  honest, clipped = metrics.mean_forgetting(acc)
  assert honest == pytest.approx(70 / 3) and clipped == pytest.approx(70 / 3)
  acc = [[50.0], [60.0, 90.0], [45.0, 95.0, 40.0]]   # a negative drop: task 1 after task 2: 90 - 95
  honest, clipped = metrics.mean_forgetting(acc)
  # drops: (1, 0) 50 - 60 = -10; (2, 0) 60 - 45 = 15; (2, 1) 90 - 95 = -5
  assert honest == pytest.approx(0.0) and clipped == pytest.approx(15 / 3)
  # the IIL-CLSF scripts: the mean of the n(n-1)/2 largest entries of FACIL's n x n forgetting matrix
  forg = np.zeros((3, 3))
  forg[1, 0], forg[2, 0], forg[2, 1] = -10, 15, -5
  assert np.sort(forg.ravel())[::-1][:3].mean() == pytest.approx(clipped)


def test_summary_carries_both_matrices_and_facils_numbers():
  rows = [{'top1': [80.0], 'top5': [100.0], 'task_aware': [80.0], 'top1_all': 80.0, 'top5_all': 100.0,
           'old': None, 'new': 80.0},
          {'top1': [30.0, 70.0], 'top5': [90.0, 99.0], 'task_aware': [75.0, 85.0], 'top1_all': 50.0,
           'top5_all': 94.5, 'old': 30.0, 'new': 70.0}]
  s = metrics.summarize(rows, 2)
  assert s['task_aware'] == [[80.0], [75.0, 85.0]] and s['top1'] == [[80.0], [30.0, 70.0]]
  assert s['last_task_aware'] == 80.0 and s['last_task_agnostic'] == 50.0
  assert s['average_task_aware'] == pytest.approx(80) and s['average_task_agnostic'] == pytest.approx(60)
  assert s['mean_forgetting_task_aware'] == 5.0 and s['mean_forgetting_task_agnostic'] == 50.0
  assert 'per-task means (FACIL)' in metrics.format_table(s)




# --- the two ideas on iCaRL / EEIL (beyond the paper) ---------------------------------------------

@pytest.mark.parametrize('kd', icarl.CHOICES['kd'])
@pytest.mark.parametrize('pred_loss', icarl.CHOICES['pred_loss'])
def test_kd_and_pred_loss_options_against_numpy(kd, pred_loss):
  from test_losses import np_kl_batchmean
  y = np.array([7, 8, 7, 2, 5, 8])
  loss, _ = shared.ce_kd_loss(_x(y=y), 2.0, kd, pred_loss)
  ce = -np_log_softmax(Z[:, :9])[np.arange(6), y].mean()
  bce = np_bce(sig(Z[:, :9]), np.eye(9)[y])
  taskwise = np_kl_batchmean(ZT[:, 0:4], Z[:, 0:4], 2.0) + np_kl_batchmean(ZT[:, 4:7], Z[:, 4:7], 2.0)
  joint = np_kl_batchmean(ZT[:, 0:7], Z[:, 0:7], 2.0)
  want = {'ce': ce, 'bce': bce, 'ce+bce': ce + bce}[pred_loss] + {'taskwise': taskwise, 'joint': joint,
                                                                   'both': taskwise + joint}[kd]
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)


def test_kd_options_are_checked_and_refused_where_they_do_not_apply():
  from helpers import load_config
  from cil_jax.methods import eeil
  assert eeil.CHOICES == {k: icarl.CHOICES[k] for k in ('kd', 'pred_loss')}   # both take shared.ce_kd_loss's
  c = load_config('icarl_fmnist.py', 'smoke,kd=both,pred_loss=ce+bce')
  assert (c.method.kd, c.method.pred_loss) == ('both', 'ce+bce')
  icarl.make(c)
  eeil.make(load_config('eeil_fmnist.py', 'smoke,kd=joint'))
  with pytest.raises(ValueError, match='apply to variant'):
    icarl.make(load_config('icarl_fmnist.py', 'smoke,variant=original,kd=joint'))
  with pytest.raises(ValueError, match='method.kd'):
    icarl.make(load_config('icarl_fmnist.py', 'smoke,kd=blockwise'))


# --- configs and the clear errors ------------------------------------------------------------------

def test_facil_configs_carry_main_incrementals_defaults():
  from helpers import load_config
  for name, arg in (('lwf_cifar100.py', None), ('lucir_facil.py', 'cifar100')):
    c = load_config(name, arg)
    assert (c.scenario.num_tasks, c.scenario.validation, c.scenario.class_order, c.scenario.seed) == \
        (10, 0.1, 'facil', -1)
    t = c.train
    assert (t.schedule, t.lr, t.epochs, t.lr_patience, t.lr_factor, t.lr_min, t.momentum, t.weight_decay,
            t.batch_size) == ('patience', 0.1, 200, 5, 3.0, 1e-4, 0.0, 0.0, 64)
    assert c.memory.size == 0 and c.model.name == 'resnet32_cifar' and c.dataset.augment == 'pad_rrc_flip'
    assert tuple(c.dataset.std) == (0.2009, 0.1984, 0.2023)
  assert load_config('lwf_cifar100.py', None).train.clip_norm == 10000.0
  c = load_config('lucir_facil.py', 'cifar100,t20,m2000,variant=bsr')
  assert c.train.clip_norm == 0.0 and c.method.lambda_base == 5.0 and c.method.form == 'facil'
  assert (c.scenario.num_tasks, c.memory.size, c.memory.policy, c.method.variant) == (20, 2000, 'facil', 'bsr')


def test_protocol_errors_are_clear(tmp_path):
  from helpers import load_config
  from cil_jax.input_pipeline import sources
  from cil_jax.input_pipeline.base import DataError
  with pytest.raises(ValueError, match='scenario.validation'):
    load_config('lwf_fmnist.py', 'smoke', **{'scenario.validation': 0.0})
  with pytest.raises(ValueError, match='set scenario.num_tasks'):
    load_config('ft_fmnist.py', 'smoke', **{'scenario.nc_first_task': 3})
  with pytest.raises(ValueError, match="lwf option lamb='x' must be a float"):
    load_config('lwf_fmnist.py', 'smoke,lamb=x')
  with pytest.raises(ValueError, match='has no option'):
    load_config('lwf_fmnist.py', 'smoke,gamma1=0.2')
  with pytest.raises(ValueError, match='step schedule'):
    from cil_jax.methods import eeil
    eeil.make(load_config('eeil_fmnist.py', 'smoke', **{'train.schedule': 'patience',
                                                        'scenario.validation': 0.1})).phases(1)
  (tmp_path / 'train').mkdir()
  with pytest.raises(DataError, match="no folder for class 'n01440764', which the class list has"):
    sources.load(load_config('lwf_imagenet100.py', None, **{'dataset.root': str(tmp_path)}).dataset)


def test_a_workdir_accepts_a_field_added_later_at_its_default(tmp_path):
  """A run started before a field existed resumes when the field is at its default; else refused."""
  import json
  from cil_jax import config_base
  from cil_jax.engine import workdir
  from helpers import load_config
  c = load_config('lwf_fmnist.py', 'smoke')
  there = json.loads(c.to_json_best_effort())
  del there['train']['clip_norm']            # as if written before clip_norm existed (default 0)
  del there['method']['multi_softmax']       # a method option added later (default False)
  (tmp_path / 'config.json').write_text(json.dumps(there))
  (tmp_path / 'results.json').write_text('{}')
  c.train.clip_norm = 0.0
  workdir.check_compatible(c, str(tmp_path))
  c.train.clip_norm = 10000.0
  with pytest.raises(workdir.WorkdirError, match='clip_norm'):
    workdir.check_compatible(c, str(tmp_path))
  del config_base


def test_reference_feature_split_is_the_first_slice_only():
  x, f, g, *_ = _lucir_inputs(Y)
  cos_part, bce_part = lucir.feature_distillation(x.out['features'], x.teacher['features'], x.batch['label'],
                                                  x.classes, 'reference')
  np.testing.assert_allclose([float(cos_part), float(bce_part)], [np_cos_emb(f, g), np_bce(sig(f), sig(g))],
                             rtol=1e-5)


def test_sequence_options_are_not_taken_from_the_config_argument():
  from helpers import load_config
  with pytest.raises(ValueError, match='is a sequence'):
    load_config('lucir_fmnist.py', 'smoke,cbf_milestones=10')
