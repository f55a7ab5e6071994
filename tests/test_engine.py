"""The engine's general pieces, each against an independent computation: schedules (step decay,
cosine, warm-up, FACIL's patience), optimizers (SGD, AdamW, clipping, per-group lr), the
class-balanced stream, FACIL's validation split, the validation loss, the phase-start hook, the
dataset's class metadata."""
import math
import random

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cil_jax.input_pipeline import scenario
from cil_jax.input_pipeline import base, sources, streams
from cil_jax.methods.api import Classes, Optimizer, Phase, Step
from cil_jax.methods.shared import seen_cross_entropy
from cil_jax.methods.schedules import Cosine, Patience, PerGroup, StepDecay, WarmUp
from cil_jax.engine.step import make_optimizer
from engine_worker import head_or_backbone
from helpers import fake_batch, train_setup


# --- schedules ---------------------------------------------------------------------------------

def test_step_decay_and_cosine_by_hand():
  s = StepDecay(lr0=0.1, epochs=9, milestones=(3, 6), gamma=0.1)
  assert [s.lr(e) for e in (0, 2, 3, 5, 6, 8)] == [0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1, 0.1 * 0.1 * 0.1]
  c = Cosine(lr0=0.2, epochs=4)
  np.testing.assert_allclose([c.lr(e) for e in range(4)], [0.2, 0.1 * (1 + math.sqrt(0.5)), 0.1,
                                                            0.1 * (1 - math.sqrt(0.5))], rtol=1e-15)


def test_warmup_lr_per_step_as_mgrb_warmuplr():
  """pytorch-cifar100's WarmUpLR, stepped before each of the first epoch's 4 batches: base·i/(4+1e-8)."""
  w = WarmUp(StepDecay(lr0=1e-3, epochs=3, milestones=(2,)), warmup_epochs=1)
  assert w.per_step and w.epochs == 3
  got = [w.lr(0, k, 4) for k in range(4)] + [w.lr(1, k, 4) for k in range(4)] + [w.lr(2, 0, 4)]
  want = [1e-3 * i / (4 + 1e-8) for i in (1, 2, 3, 4)] + [1e-3] * 4 + [1e-3 * 0.1]
  assert got == want
  g = PerGroup((('backbone', w), ('head', StepDecay(lr0=1e-3, epochs=3, milestones=(2,)))))
  assert g.per_step and g.lr(0, 1, 4) == {'backbone': 1e-3 * 2 / (4 + 1e-8), 'head': 1e-3}
  with pytest.raises(ValueError, match='disagree on the epochs'):
    PerGroup((('a', StepDecay(0.1, 3)), ('b', StepDecay(0.1, 4))))


def facil_train_loop(val_losses, lr, nepochs, lr_factor, lr_patience, lr_min):
  """FACIL's incremental_learning.train_loop, with 'models' named by the epoch that made them (0 =
  the start weights): returns (lr of each epoch run, model after each epoch, final model)."""
  best_loss, patience, best_model, model = np.inf, lr_patience, 0, 0
  lrs, models = [], []
  for e in range(nepochs):
    lrs.append(lr)
    model = e + 1                       # train_epoch
    valid_loss = val_losses[e]
    if valid_loss < best_loss:
      best_loss, best_model, patience = valid_loss, model, lr_patience
    else:
      patience -= 1
      if patience <= 0:
        lr /= lr_factor
        if lr < lr_min:
          models.append(model)
          break
        patience = lr_patience
        model = best_model              # set_state_dict(best_model)
    models.append(model)
  return lrs, models, best_model


def run_patience(schedule, val_losses):
  """The same loop driven by schedules.Patience as the engine drives it."""
  state, best, model = schedule.initial_state(), 0, 0
  lrs, models = [], []
  for e in range(schedule.epochs):
    lrs.append(schedule.lr(e, 0, 1, state))
    model = e + 1
    end = schedule.end_epoch(e, state, val_losses[e])
    state = end.state
    if end.new_best:
      best = model
    if end.restore_best:
      model = best
    models.append(model)
    if end.stop:
      break
  return lrs, models, best, state


@pytest.mark.parametrize('seed', range(20))
def test_patience_matches_facils_loop_on_scripted_losses(seed):
  rng = np.random.RandomState(seed)
  losses = list(1.0 + rng.randn(40).cumsum() * 0.1)
  args = dict(lr=0.1, nepochs=40, lr_factor=3.0, lr_patience=int(rng.randint(1, 6)), lr_min=1e-3)
  want = facil_train_loop(losses, **args)
  got = run_patience(Patience(lr0=0.1, epochs=40, lr_factor=3.0, lr_patience=args['lr_patience'], lr_min=1e-3),
                     losses)
  assert got[:3] == want


def test_patience_by_hand():
  """lr 0.1, patience 2, factor 3, lr_min 0.02: losses 1, .9, .95, .97 (2 bad: lr .1/3, restore the
  weights of epoch 2), .8 (best), .85, .85 (lr .1/9 < .02: stop; the phase ends with epoch 5's)."""
  s = Patience(lr0=0.1, epochs=10, lr_factor=3.0, lr_patience=2, lr_min=0.02)
  lrs, models, best, state = run_patience(s, [1.0, 0.9, 0.95, 0.97, 0.8, 0.85, 0.85, 0.1, 0.1, 0.1])
  assert lrs == [0.1, 0.1, 0.1, 0.1, 0.1 / 3, 0.1 / 3, 0.1 / 3]
  assert models == [1, 2, 3, 2, 5, 6, 7] and best == 5
  assert state == {'lr': 0.1 / 3 / 3, 'best_loss': 0.8, 'patience': 0}
  assert not Patience(0.1, 5).end_epoch(0, Patience(0.1, 5).initial_state(), float('nan')).new_best  # as FACIL


def test_a_patience_phase_needs_a_validation_set():
  with pytest.raises(ValueError, match='needs validation='):
    Phase('train', Step(seen_cross_entropy), Patience(0.1, 5), stream='mixed', batch_size=8)


# --- optimizers --------------------------------------------------------------------------------

def _apply(spec, params, grads_seq, lr):
  tx = make_optimizer(spec)
  state = tx.init(params)
  for g in grads_seq:
    u, state = tx.update(g, state, params)
    params = jax.tree.map(lambda p, u: p - lr * u, params, u)
  return params


def test_adamw_matches_optax_and_pytorch_on_two_steps():
  rng = np.random.RandomState(0)
  p0 = {'w': jnp.asarray(rng.randn(3, 2), jnp.float32), 'b': jnp.asarray(rng.randn(2), jnp.float32)}
  grads = [jax.tree.map(lambda x: jnp.asarray(rng.randn(*x.shape), jnp.float32), p0) for _ in range(2)]
  lr, wd = 1e-3, 0.05
  got = _apply(Optimizer(kind='adamw', weight_decay=wd), p0, grads, lr)
  ref_tx = optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=wd)
  ref, st = p0, ref_tx.init(p0)
  for g in grads:
    u, st = ref_tx.update(g, st, ref)
    ref = optax.apply_updates(ref, u)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9), got, ref)
  # PyTorch AdamW by hand, float64: p ← p(1 − lr·wd); m, v; p ← p − lr·m̂/(sqrt(v̂) + eps)
  for k in p0:
    p, m, v = np.asarray(p0[k], np.float64), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
      g = np.asarray(g[k], np.float64)
      p = p * (1 - lr * wd)
      m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
      p = p - lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(np.asarray(got[k]), p, rtol=1e-5, atol=1e-8)


def test_sgd_plain_and_with_momentum_by_hand():
  p0 = {'w': jnp.asarray([1.0, -2.0])}
  g1, g2 = {'w': jnp.asarray([0.5, 0.5])}, {'w': jnp.asarray([-1.0, 2.0])}
  got = _apply(Optimizer(momentum=0.0, weight_decay=0.1), p0, [g1], 0.1)
  np.testing.assert_allclose(got['w'], [1.0 - 0.1 * (0.5 + 0.1), -2.0 - 0.1 * (0.5 - 0.2)], rtol=1e-6)
  got = _apply(Optimizer(momentum=0.9, weight_decay=0.0), p0, [g1, g2], 0.1)
  p1 = np.array([1.0, -2.0]) - 0.1 * np.array([0.5, 0.5])
  np.testing.assert_allclose(got['w'], p1 - 0.1 * (0.9 * np.array([0.5, 0.5]) + np.array([-1.0, 2.0])), rtol=1e-6)


def test_clipping_is_pytorchs_clip_grad_norm():
  p0 = {'a': jnp.zeros(2), 'b': jnp.zeros(1)}
  g = {'a': jnp.asarray([3.0, 0.0]), 'b': jnp.asarray([4.0])}            # global norm 5
  got = _apply(Optimizer(momentum=0.0, weight_decay=0.0, clip_norm=1.0), p0, [g], 1.0)
  scale = 1.0 / (5.0 + 1e-6)
  np.testing.assert_allclose(got['a'], [-3.0 * scale, 0.0], rtol=1e-6)
  np.testing.assert_allclose(got['b'], [-4.0 * scale], rtol=1e-6)
  got = _apply(Optimizer(momentum=0.0, weight_decay=0.0, clip_norm=10.0), p0, [g], 1.0)   # under the norm
  np.testing.assert_array_equal(got['a'], [-3.0, 0.0])


def test_per_group_lr_moves_each_group_at_its_own_rate():
  C = Classes.for_task(scenario.Tasks(9, 3, 2), 2)
  batch = fake_batch()
  plain = train_setup(Step(seen_cross_entropy, optimizer=Optimizer(momentum=0.0, weight_decay=0.0)))
  grouped = train_setup(Step(seen_cross_entropy, optimizer=Optimizer(momentum=0.0, weight_decay=0.0),
                             groups=head_or_backbone))
  before = jax.tree.map(np.asarray, plain.state.params)
  a, _ = plain.step(plain.state, None, batch, C, jnp.float32(0.1), {})
  b, _ = grouped.step(grouped.state, None, batch, C, {'backbone': jnp.float32(0.1), 'head': jnp.float32(0.1)}, {})
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, a.params), jax.tree.map(np.asarray, b.params))
  c = train_setup(Step(seen_cross_entropy, optimizer=Optimizer(momentum=0.0, weight_decay=0.0), groups=head_or_backbone))
  c_state, _ = c.step(c.state, None, batch, C, {'backbone': jnp.float32(0.0), 'head': jnp.float32(0.1)}, {})
  after = jax.tree.map(np.asarray, c_state.params)
  jax.tree.map(np.testing.assert_array_equal, {k: v for k, v in before['model'].items() if k != 'head'},
               {k: v for k, v in after['model'].items() if k != 'head'})       # backbone lr 0: unchanged
  np.testing.assert_array_equal(after['model']['head']['fc']['kernel'],        # head: the plain step's move
                                np.asarray(a.params['model']['head']['fc']['kernel']))


# --- streams and splits ------------------------------------------------------------------------

def test_class_balanced_stream_draws_classes_uniformly():
  labels = np.repeat([0, 1, 2], [1000, 50, 5])
  new, mem = np.arange(1000), np.arange(1000, 1055)
  plan = streams.make_plan('class_balanced', new, mem, 64, 0, seed=3, labels=labels)
  assert plan.indices.shape == (1055 // 64, 64)
  assert np.array_equal(plan.replay, plan.indices >= 1000)
  counts = np.bincount(labels[plan.indices.reshape(-1)], minlength=3) / plan.indices.size
  np.testing.assert_allclose(counts, [1 / 3] * 3, atol=0.04)   # 1024 draws: 3 sigma ~ 0.044
  small = plan.indices[labels[plan.indices] == 2]
  assert set(small.tolist()) == set(range(1050, 1055))         # every image of the rare class is used
  again = streams.make_plan('class_balanced', new, mem, 64, 0, seed=3, labels=labels)
  np.testing.assert_array_equal(plan.indices, again.indices)   # a pure function of the seed


def facil_get_data_validation(trn_y_by_task, validation, seed):
  """FACIL's get_data validation block verbatim in spirit: lists, random.sample, pop in place."""
  random.seed(seed)
  out = []
  for trn in trn_y_by_task:
    x, y = list(range(len(trn))), list(trn)     # x: positions in the task's training list
    val_x = []
    for cc in sorted(set(y)):
      cls_idx = list(np.where(np.asarray(y) == cc)[0])
      rnd_img = random.sample(cls_idx, int(np.round(len(cls_idx) * validation)))
      rnd_img.sort(reverse=True)
      for ii in range(len(rnd_img)):
        val_x.append(x[rnd_img[ii]])
        x.pop(rnd_img[ii])
        y.pop(rnd_img[ii])
    out.append((val_x, x))
  return out


def test_facil_holdout_matches_facils_get_data():
  rng = np.random.RandomState(0)
  labels = rng.randint(0, 7, 300)                 # uneven classes, interleaved in file order
  tasks = scenario.Tasks(7, 3, 2)
  by_class = [np.flatnonzero(labels == c) for c in range(7)]
  val, remaining = scenario.facil_holdout(by_class, tasks, 0.1, seed=5)
  trn_by_task = [[c - tasks.start(t) for c in labels if tasks.start(t) <= c < tasks.end(t)] for t in range(3)]
  files_by_task = [np.flatnonzero((labels >= tasks.start(t)) & (labels < tasks.end(t))) for t in range(3)]
  for t, (val_pos, trn_pos) in enumerate(facil_get_data_validation(trn_by_task, 0.1, seed=5)):
    np.testing.assert_array_equal(val[t], files_by_task[t][val_pos])       # same images, same order
    kept = np.concatenate([remaining[c] for c in range(tasks.start(t), tasks.end(t))])
    np.testing.assert_array_equal(np.sort(kept), files_by_task[t][trn_pos])
  assert [len(v) for v in val] == [sum(int(np.round(len(by_class[c]) * 0.1)) for c in range(tasks.start(t),
                                                                                          tasks.end(t)))
                                   for t in range(3)]


# --- validation loss and the phase-start hook (through a real experiment) -----------------------

@pytest.fixture(scope='module')
def experiment(idx_dir, tmp_path_factory):
  from cil_jax.engine import train
  from helpers import load_config
  c = load_config('ft_fmnist.py', 'smoke', **{'dataset.root': idx_dir})
  return train.Experiment(c, str(tmp_path_factory.mktemp('exp')))


def test_validation_loss_is_facils_weighted_mean_of_batch_losses(experiment):
  exp = experiment
  state, _ = exp.init_state()
  classes = Classes.for_task(exp.data.tasks, 1)
  new, mem = exp.data.train_by_class[2][:7], exp.data.train_by_class[0][:6]     # 13 images: batches of 4, 4, 4, 1
  spec = Step(seen_cross_entropy)
  got = exp.evaluator.validation_loss(spec, state, None, {}, classes, new, mem, 4)
  idx = np.concatenate([new, mem])
  images = exp.source.train.images[idx]
  out = exp.factory.model.apply(state.variables, exp.factory.normalize(images), train=False)
  z = np.asarray(out['logits'], np.float64)[:, :4]                        # seen classes after task 2
  logp = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
  per = -logp[np.arange(13), exp.data.train_labels[idx]]
  batches = [per[0:4], per[4:8], per[8:12], per[12:13]]
  want = sum(len(b) * b.mean() for b in batches) / 13
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_phase_start_hook_runs_once_per_fresh_phase_and_is_seeded(experiment, monkeypatch):
  """An on_start hook that draws the head from ctx.rng: the run's head after a 0-epoch phase is
  exactly that draw (seeded by run seed, task and stream), and the hook ran once per task."""
  from cil_jax.engine import train
  from cil_jax.engine.hooks import Hook
  from cil_jax.methods.api import Method
  from cil_jax.methods.shared import with_head
  calls = []

  def on_start(ctx):
    calls.append(ctx.t)
    fc = ctx.state.params['model']['head']['fc']
    kernel = ctx.rng('head_init').normal(size=fc['kernel'].shape).astype(np.float32)
    return with_head(ctx.state.params, fc=dict(fc, kernel=jnp.asarray(kernel))), ctx.method_state

  phase = Phase('hook', Step(seen_cross_entropy), StepDecay(0.1, 0), stream='mixed', batch_size=32,
                on_start=on_start)
  monkeypatch.setattr(experiment, 'method', Method('probe', lambda t: [phase]))
  monkeypatch.setattr(experiment, 'workdir', experiment.workdir + '_hook')
  heads = {}

  class AfterTask(Hook):   # the head as task t ends (its evaluation done, the next task's hook not run)
    def end_task(self, run, t, row):
      heads[t] = (list(calls), np.asarray(run.rs.state.params['model']['head']['fc']['kernel']))

  run = train.Run(experiment)
  run.hooks.append(AfterTask())
  run.run()
  assert heads[0][0] == [0]
  want = np.random.default_rng(scenario.stream_seed(0, 0, 1000 + 12)).normal(size=heads[0][1].shape).astype(np.float32)
  np.testing.assert_array_equal(heads[0][1], want)
  assert heads[1][0] == [0, 1] and calls == sorted(heads)   # once per task


# --- class metadata ----------------------------------------------------------------------------

def test_cifar100_coarse_labels_and_names_follow_the_class_order(cifar100_dir):
  import ml_collections
  src = sources.load(ml_collections.ConfigDict({'name': 'cifar100', 'root': cifar100_dir}))
  lm = scenario.label_map(100, 'ssil', 1993)
  info = base.class_info(src, lm)
  np.testing.assert_array_equal(lm[info.original], np.arange(100))
  np.testing.assert_array_equal(info.coarse, info.original // 5)      # the fixture's coarse = fine // 5
  assert info.wnids is None and len(info.names) == 100


def test_fashion_mnist_names_and_imagenet_wnids(idx_dir, imagenet_dir):
  import ml_collections
  src = sources.load(ml_collections.ConfigDict({'name': 'fashion_mnist', 'root': idx_dir}))
  lm = scenario.label_map(10, [3, 1, 0, 2, 4, 5, 6, 7, 8, 9], 0)
  info = base.class_info(src, lm)
  assert info.names[:3] == ('Dress', 'Trouser', 'T-shirt/top') and info.coarse is None   # classes 3, 1, 0
  src = sources.load(ml_collections.ConfigDict({'name': 'imagenet', 'root': imagenet_dir, 'num_classes': 4}))
  info = base.class_info(src, scenario.label_map(4, [2, 0, 1, 3], 0))
  assert info.wnids == ('n00000002', 'n00000000', 'n00000001', 'n00000003')


def test_the_readme_example_method_runs(idx_dir, tmp_path, monkeypatch):
  """The 'Adding a method' example of the README, as written, through two tasks."""
  import os
  import types
  from cil_jax import methods
  from cil_jax.engine import train
  from helpers import ROOT, check_summary, load_config
  text = open(os.path.join(ROOT, 'README.md')).read()
  code = text.split('### Adding a method', 1)[1].split('```python', 1)[1].split('```', 1)[0]
  namespace = {}
  exec(compile(code, 'README.md', 'exec'), namespace)
  c = load_config('ft_fmnist.py', 'smoke', **{'dataset.root': idx_dir, 'scenario.base': 5, 'scenario.step': 5,
                                              'train.epochs': 3, 'scenario.validation': 0.1})
  c.method.temperature, c.method.lamb = 2.0, 1.0      # the example's options (OPTIONS['kd'])
  monkeypatch.setattr(methods, 'get', lambda name: types.SimpleNamespace(make=namespace['make']))
  monkeypatch.setattr(train.config_base, 'validate', lambda config: None)   # 'ft' has no such options
  check_summary(train.train_and_evaluate(c, str(tmp_path)), 2)


def test_phases_differing_only_in_schedule_share_one_compiled_step(experiment):
  """The compiled step is keyed by the Step (and the augmentation and chunk size): every task's FT phase
  (other lr, epochs) reuses it."""
  from cil_jax.methods.shared import ce_phase
  c = experiment.config
  a, b = ce_phase(c, 0, lr_by_task=True), ce_phase(c, 3, lr_by_task=True)
  assert a.schedule != b.schedule and a.step == b.step
  factory = experiment.factory
  assert factory.train_step(a.step) is factory.train_step(b.step)
  assert factory.train_step(Step(seen_cross_entropy, bn_train=False)) is not factory.train_step(a.step)


def test_a_validation_split_removes_its_images_from_everything_else(idx_dir, tmp_path, monkeypatch):
  """scenario.validation is applied once for the run, as FACIL: the held-out images are in no
  class's training list (so no phase, exemplar selection or class mean sees them), and the default
  task data offers each task's as 'validation'."""
  import types
  from cil_jax import methods
  from cil_jax.engine import train
  from cil_jax.methods.api import TaskContext, default_task_data
  from engine_worker import config_for, make_probe
  monkeypatch.setattr(methods, 'get', lambda name: types.SimpleNamespace(make=make_probe('patience')))
  exp = train.Experiment(config_for(idx_dir), str(tmp_path))
  data = exp.data
  full = [np.flatnonzero(data.train_labels == c) for c in range(10)]
  want_val, want_rest = scenario.facil_holdout(full, data.tasks, 0.1, seed=0)
  for c in range(10):
    np.testing.assert_array_equal(data.train_by_class[c], want_rest[c])
  for t in range(2):
    np.testing.assert_array_equal(data.validation_by_task[t], want_val[t])
    assert not set(data.validation_by_task[t]) & set(np.concatenate(data.train_by_class))
  ctx = TaskContext(t=1, tasks=data.tasks, config=exp.config, memory=scenario.Memory.empty(),
                    train_by_class=data.train_by_class, train_labels=data.train_labels, label_map=data.label_map,
                    class_info=data.class_info, validation=data.validation_by_task[1], state=None, method_state={},
                    _outputs=None)
  data = default_task_data(ctx)
  np.testing.assert_array_equal(data['validation'][0], want_val[1])
  assert len(data['train'][0]) == sum(len(want_rest[c]) for c in range(5, 10))


def test_warmup_passes_the_inner_schedules_state_through():
  w = WarmUp(Patience(lr0=0.1, epochs=10, lr_patience=1, lr_min=0.01), warmup_epochs=1)
  assert w.needs_validation and w.keeps_best
  state = w.initial_state()
  assert w.lr(0, 1, 4, state) == 0.1 * 2 / (4 + 1e-8) and w.lr(1, 0, 4, state) == 0.1
  end = w.end_epoch(0, state, 1.0)
  end = w.end_epoch(1, end.state, 2.0)                      # worse: lr 0.1 / 3, best restored
  assert end.restore_best and w.lr(2, 0, 4, end.state) == 0.1 / 3
  with pytest.raises(ValueError, match='stateless'):
    PerGroup((('a', Patience(0.1, 5)), ('b', StepDecay(0.1, 5))))


def test_checkpoint_meta_is_a_copy_of_the_run_state():
  """Orbax writes the JSON in a background thread: rows appended after a save must not reach it."""
  from cil_jax.engine.run_state import RunState
  from cil_jax.engine.step import TrainState
  rs = RunState(TrainState({}, {}, (), ()), {}, rows=[{'a': 1}], schedule_state={'lr': 0.1})
  meta = rs.meta(seed=0)
  rs.rows.append({'b': 2})
  rs.schedule_state['lr'] = 0.0
  assert meta['rows'] == [{'a': 1}] and meta['schedule_state'] == {'lr': 0.1}
