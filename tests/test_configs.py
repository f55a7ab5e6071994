"""Config files: the ImageNet configs against the SS-IL README commands (as its main.py runs them),
the task-count argument, and errors a person can act on, fast."""
import os
import subprocess
import sys
import time

import pytest

from cil_jax import config_base, methods
from cil_jax.methods.schedules import Cosine
from helpers import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ssil_main(epochs, schedule, gamma, lr, batch, ft_or_ssil, t):
  """The reference main.py: trainers named ft/ssil get lr/(t+1) and, from task 1 on, epochs and
  schedule // factor (default 4, and the README commands pass 4 where they pass it); the others
  run the command's values every task."""
  if ft_or_ssil:
    lr = lr / (t + 1)
    if t >= 1:
      epochs, schedule = epochs // 4, tuple(m // 4 for m in schedule)
  return dict(epochs=epochs, milestones=tuple(schedule), gamma=gamma, lr=lr, batch=batch)


def _expected(method, t):
  """(phase name, epochs, milestones, gamma, lr, batch, replay batch, cosine) per phase of task t,
  written from the README commands and the reference trainers, not from our code."""
  def main(name, *args, replay=0, ft_or_ssil=False):
    p = _ssil_main(*args, ft_or_ssil=ft_or_ssil, t=t)
    return (name, p['epochs'], p['milestones'], p['gamma'], p['lr'], p['batch'], replay, False)
  if method == 'ssil':   # --replay-batch-size 32 --nepochs 100 --schedule 40 80 --gammas 0.1 0.1 (no --factor)
    if t == 0:
      return [main('base', 100, (40, 80), 0.1, 0.1, 128, ft_or_ssil=True)]
    return [main('train', 100, (40, 80), 0.1, 0.1, 128, replay=32, ft_or_ssil=True)]
  if method in ('ft', 'ft_nomem', 'il2m'):  # IL2M evaluates FT's models: FT's training
    return [main('train', 100, (40, 80), 0.1, 0.1, 128, ft_or_ssil=True)]
  if method == 'joint':  # no reference command: FT's epochs and factor, the base lr every task
    p = _ssil_main(100, (40, 80), 0.1, 0.1, 128, True, t)
    return [('train', p['epochs'], p['milestones'], 0.1, 0.1, 128, 0, False)]
  if method == 'icarl':
    return [main('base' if t == 0 else 'train', 60, (20, 30, 40, 50), 0.2, 0.1, 128)]
  if method == 'eeil':  # balance_fine_tune: lr/10, int(nepochs * 3/4) epochs, the same schedule
    first = main('base' if t == 0 else 'train', 40, (10, 20, 30), 0.1, 0.1, 128)
    return [first] if t == 0 else [first, ('balanced_ft', 30, (10, 20, 30), 0.1, 0.01, 128, 0, False)]
  if method == 'bic':  # bias stage: lr/100, 2 x nepochs, decay after epoch 2·m (i.e. from 2·m + 1)
    first = main('base' if t == 0 else 'train', 100, (30, 60, 90), 0.1, 0.1, 256)
    return [first] if t == 0 else [first, ('bias_correction', 200, (61, 121, 181), 0.1, 0.001, 256, 0, False)]
  if method == 'lucir':  # --nepochs 90 --schedule 30 60
    return [main('base' if t == 0 else 'train', 90, (30, 60), 0.1, 0.1, 128)]
  if method == 'podnet':  # --lr 0.05 --batch-size 64, cosine over 90 epochs; 20 fine-tuning epochs at 0.01
    first = ('base' if t == 0 else 'train', 90, (), 0.1, 0.05, 64, 0, True)
    return [first] if t == 0 else [first, ('classifier_ft', 20, (), 0.1, 0.01, 64, 0, False)]
  raise AssertionError(method)


IMAGENET_METHODS = sorted(f[:-len('_imagenet.py')] for f in os.listdir(os.path.join(ROOT, 'configs'))
                          if f.endswith('_imagenet.py'))


@pytest.mark.parametrize('method', IMAGENET_METHODS)
def test_imagenet_configs_run_the_readme_commands(method):
  c = load_config(f'{method}_imagenet.py', None)
  assert (c.dataset.name, c.dataset.num_classes, c.model.name) == ('imagenet', 1000, 'resnet18')
  assert (c.scenario.base, c.scenario.step) == (100, 100)
  assert c.memory.size == (0 if method in ('ft_nomem', 'joint') else 20000)
  assert (c.train.momentum, c.train.weight_decay) == (0.9, 1e-4)
  m = methods.get(c.method.name).make(c)
  for t in (0, 1, 2):
    got = [(p.name, p.schedule.epochs, tuple(getattr(p.schedule, 'milestones', ())), getattr(p.schedule, 'gamma', 0.1),
            p.schedule.lr0, p.batch_size, p.replay_batch_size, isinstance(p.schedule, Cosine)) for p in m.phases(t)]
    want = _expected(method, t)
    assert len(got) == len(want), (method, t, got)
    for g, w in zip(got, want):
      assert g[:4] == w[:4] and g[5:] == w[5:], (method, t, g, w)
      assert g[4] == pytest.approx(w[4], rel=1e-12), (method, t, g, w)


def test_every_method_has_a_module_and_the_light_names_match_the_real_ones():
  from cil_jax import models
  from cil_jax.models import heads, resnet
  assert sorted(resnet.MODELS) == sorted(models.NAMES)
  assert sorted(heads.HEADS) == sorted(models.HEADS)
  for name in methods.names():
    assert callable(methods.get(name).make)


@pytest.mark.parametrize('config,classes', [('default.py', 10), ('ssil_fmnist.py', 10), ('ssil_cifar100.py', 100),
                                            ('ssil_imagenet.py', 1000)])
def test_task_argument_must_divide_the_classes(config, classes):
  for tasks in (2, 5, 10):
    c = load_config(config, f't{tasks}')
    assert c.scenario.base == c.scenario.step == classes // tasks
  for bad in [b for b in (3, 4, 6, 7, 30) if classes % b] + [classes + 1]:
    with pytest.raises(ValueError, match=f't{bad} does not divide'):
      load_config(config, f't{bad}')
  with pytest.raises(ValueError, match='t0'):
    load_config(config, 't0')
  if config == 'ssil_imagenet.py':   # with smoke, the split is of the smoke setting's 4 classes
    assert load_config(config, 't4,smoke').scenario.base == 1
    with pytest.raises(ValueError, match='t7 does not divide the 4 classes of the 4-class smoke setting'):
      load_config(config, 't7,smoke')


def test_smoke_keeps_the_task_count_or_refuses():
  c = load_config('ssil_imagenet.py', 'smoke')
  assert c.dataset.num_classes // c.scenario.step == 2
  c = load_config('ssil_imagenet.py', 't2,smoke')
  assert c.dataset.num_classes // c.scenario.step == 2
  c = load_config('ssil_imagenet.py', 't4,smoke')   # 4 tasks of the 4-class fixture
  assert (c.dataset.num_classes, c.scenario.base, c.scenario.step) == (4, 1, 1)
  with pytest.raises(ValueError, match='smoke'):
    load_config('ssil_imagenet.py', 't5,smoke')
  c = load_config('default.py', 't5,smoke')
  assert c.scenario.base == c.scenario.step == 2


def _main(*args, cwd=ROOT, env=None):
  t0 = time.perf_counter()
  r = subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), *args], cwd=cwd, capture_output=True,
                     text=True, timeout=300, env=env)
  return r, time.perf_counter() - t0


def _one_line_error(r):
  assert r.returncode != 0
  lines = [line for line in r.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith('error: ') and 'Traceback' not in r.stderr, r.stderr
  return lines[0]


@pytest.mark.parametrize('args,expect', [
    (['--config.train.lrr=0.1'], ["'train.lrr'", "'train.lr'", 'train fields']),
    (['--config.trian.lr=0.1'], ["'trian.lr'", "'train.lr'"]),
    (['--config.method.temprature=3'], ["'method.temprature'", "'method.temperature'"]),
    (['--config.train.lr=fast'], ['train.lr', 'fast']),
    (['--config.train.epochs=0'], ['train.epochs=0']),
    (['--config.method.name=icarl'], ['method.name', 'configs/icarl_fmnist.py']),
    (['--config.model.name=resnet50'], ["model.name='resnet50' is unknown", 'resnet18']),
    (['--config', 'configs/default.py:t3'], ['t3 does not divide']),
    (['--config', 'configs/nowhere.py'], ['configs/nowhere.py']),
    (['--no-config', '--config.train.lrr=0.1'], ["'train.lrr'"]),   # the default config file
    (['--config', 'configs/lucir_fmnist.py:smoke', '--config.model.head=linear'],
     ["lucir needs model.head='cosine'", "(got model.head='linear')", 'pass --config.model.head=cosine']),
    (['--config', 'configs/mgrb_fmnist.py:smoke', '--config.method.cb_reduction=max'],
     ["method.cb_reduction='max' is unknown; choose one of ['mean', 'sum']"]),
])
def test_config_errors_are_one_line_before_any_heavy_import(args, expect, tmp_path):
  if args[0] == '--no-config':
    args = args[1:]
  elif args[0] != '--config':
    args = ['--config', 'configs/default.py:smoke'] + args
  r, seconds = _main(*args, '--workdir', str(tmp_path / 'w'))
  line = _one_line_error(r)
  for text in expect:
    assert text in line, line
  assert not os.path.exists(tmp_path / 'w')   # refused before anything is written
  assert seconds < 4, f'{seconds:.1f} s: validation must not wait for JAX / TensorFlow imports'


def _validated_alone(config: str, then: str = '') -> subprocess.CompletedProcess:
  """configs/<config> validated in a fresh interpreter, then the code `then`; heavy modules must not load."""
  module, arg = config.split(':')
  code = (f'import sys; sys.path.insert(0, "."); from configs import {module}; from cil_jax import config_base\n'
          f'try:\n  config_base.validate({module}.get_config({arg!r}))\nexcept ValueError as e:\n  print(e)\n'
          'heavy = [m for m in sys.modules if m.split(".")[0] in ("jax", "tensorflow", "flax", "optax")]\n'
          'assert not heavy, heavy\n' + then)
  r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=60)
  assert r.returncode == 0, r.stderr
  return r


def test_configs_import_without_jax_or_tensorflow():
  assert _validated_alone('lucir_imagenet:t5').stdout == ''   # valid: nothing printed


def test_explicit_class_order_on_the_command_line():
  from cil_jax.input_pipeline import scenario
  c = load_config('default.py', None)
  order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
  c.scenario.class_order = ','.join(map(str, order))   # what --config.scenario.class_order=9,8,... gives
  config_base.validate(c)
  assert scenario.label_map(10, c.scenario.class_order, 0).tolist() == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
  c.scenario.class_order = '[1, 0, 2, 3, 4, 5, 6, 7, 8, 9]'
  assert scenario.label_map(10, c.scenario.class_order, 0).tolist() == [1, 0, 2, 3, 4, 5, 6, 7, 8, 9]
  c.scenario.class_order = '1,0,2'
  with pytest.raises(ValueError, match='permutation of 0..9'):
    scenario.label_map(10, c.scenario.class_order, 0)
  c.scenario.class_order = 'sssil'
  with pytest.raises(ValueError, match="'ssil'"):
    config_base.validate(c)


def test_no_download_unless_asked():
  assert config_base.base_config().dataset.download is False   # offline, a missing dataset fails at once


def test_progress_line_fits_80_columns_keeps_the_loss_and_smooths_the_rate():
  import io
  from cil_jax.engine.progress import Progress
  p = Progress(io.StringIO())
  metrics = {'loss': 0.123456, 'ce': 0.5, 'kd': 1.25, 'pod_flat': 0.1, 'pod_spatial': 0.3, 'nca': 1.0}
  first = p.line('task 10/10 bias_correction ep 200/200', 1, 1234, 1000, metrics, now=p.start + 1, extra='lr 0.001')
  assert ' - img/s ' in first   # the first interval after a pause holds the compile: no rate yet
  p.line('task 10/10 bias_correction ep 200/200', 2, 1234, 2000, metrics, now=p.start + 2, extra='lr 0.001')
  line = p.line('task 10/10 bias_correction ep 200/200', 3, 1234, 4000, metrics, now=p.start + 3, extra='lr 0.001')
  assert len(line) <= 80 and 'loss 0.1235' in line and line.endswith(' 1,300 img/s 3s'), line  # 0.3·2000 + 0.7·1000
  short = p.line('task 1/5 train ep 1/3', 12, 94, 5000, {'loss': 0.5, 'ce': 0.25, 'kd': 0.25}, now=p.start + 4,
                 extra='lr 0.1')
  assert short == 'task 1/5 train ep 1/3 lr 0.1 [#.........] 12/94 loss 0.5 ce 0.25 1,210 img/s 4s', short
  assert len(short) <= 80   # 'kd 0.25' did not fit
  p.reset_rate(5000)          # a new epoch of the same phase: the rate stays until measured again
  assert p.line('task 1/5 train ep 2/3', 1, 94, 6000, {'loss': 0.5}, now=p.start + 5).endswith(' 1,210 img/s 5s')
  p.reset_rate(6000, forget=True)   # a new phase: another workload, no rate until it is measured
  assert p.line('task 2/5 train ep 1/3', 1, 94, 7000, {'loss': 0.5}, now=p.start + 6).endswith(' - img/s 6s')


def test_progress_rate_of_epochs_too_short_for_two_log_lines():
  """The loop marks where its steps run clean (after the call that compiled, or before an epoch's
  first step): the epoch's one line then shows a rate, without the compile."""
  import io
  from cil_jax.engine.progress import Progress
  p = Progress(io.StringIO())
  p.reset_rate(0, forget=True)
  p.mark(64, now=p.start + 30)    # the first step (64 images) compiled for 30 s
  assert p.line('task 1/5 train ep 1/3', 4, 4, 256, {'loss': 0.5}, now=p.start + 31).endswith(' 192 img/s 31s')
  p.reset_rate(256)               # the next epoch, one step, compiled already: counted from before it
  p.mark(256, now=p.start + 40)
  line = p.line('task 1/5 train ep 2/3', 1, 1, 320, {'loss': 0.5}, now=p.start + 40.5)
  assert line.endswith(' 173 img/s 40s'), line   # 0.3 · 128 + 0.7 · 192
  p.reset_rate(320, forget=True)  # a new phase whose one step compiles: nothing left to measure
  p.mark(384, now=p.start + 50)
  assert p.line('task 2/5 balanced ep 1/1', 1, 1, 384, {'loss': 0.5}, now=p.start + 50.1).endswith(' - img/s 50s')


def test_a_method_sets_what_it_needs_from_the_model_and_memory():
  c = config_base.base_config()
  config_base.set_method(c, 'podnet')
  assert (c.model.head, c.model.last_relu) == ('lsc', False)
  config_base.validate(c)
  c.model.last_relu = True
  with pytest.raises(ValueError, match=r"podnet needs model.head='lsc', model.last_relu=False "
                                       r"\(got model.last_relu=True\)"):
    config_base.validate(c)
  c = config_base.base_config()
  config_base.set_method(c, 'mgrb')
  assert (c.model.head, c.memory.policy, c.memory.selection) == ('linear', 'per_class', 'file_order')
  c.memory.selection = 'herding'
  with pytest.raises(ValueError, match=r"mgrb needs .*memory.selection='file_order' "
                                       r"\(got memory.selection='herding'\)"):
    config_base.validate(c)
  c = config_base.base_config()
  config_base.set_method(c, 'ssil')   # no needs: the defaults stay
  assert (c.model.head, c.model.last_relu, c.memory.policy) == ('linear', True, 'fixed')


def test_every_method_declares_its_options_in_its_own_file_read_without_importing_it():
  """The registry reads OPTIONS / CHOICES / REQUIRES from the file's syntax: equal to the module's own."""
  assert methods.names() == ('bic', 'eeil', 'ft', 'icarl', 'il2m', 'joint', 'lucir', 'lwf', 'mgrb', 'podnet', 'ssil')
  for name in methods.names():
    module, declared = methods.get(name), methods.declared(name)
    assert declared.options == module.OPTIONS
    assert declared.choices == getattr(module, 'CHOICES', {}) and declared.requires == getattr(module, 'REQUIRES', {})
    for option, valid in declared.choices.items():
      assert declared.options[option] in valid, (name, option)


def test_a_choice_outside_the_declared_ones_is_one_line_before_jax():
  r = _validated_alone('lucir_fmnist:smoke,variant=bsrr')
  assert r.stdout == "method.variant='bsrr' is unknown; choose one of ['br2', 'bsr', 'lucir', 'sr']\n", r.stdout


def test_speed_settings_are_checked():
  c = config_base.base_config()
  config_base.set_method(c, 'ssil')
  c.train.steps_per_call = -2
  with pytest.raises(ValueError, match=r'train.steps_per_call=-2 must be >= 0'):
    config_base.validate(c)
  c = config_base.base_config()
  config_base.set_method(c, 'ssil')
  c.dataset.on_device = 'yes'
  with pytest.raises(ValueError, match=r"dataset.on_device='yes' is unknown; choose one of \['auto', 'off', 'on'\]"):
    config_base.validate(c)


@pytest.mark.parametrize('config', ['ssil_imagenet.py', 'ft_landmarks.py', 'icarl_cifar100.py', 'default.py'])
def test_the_run_seed_draws_the_class_order_as_ss_il_officials_seed(config, imagenet_dir, tmp_path):
  """SS-IL-Official's --seed N also draws perm = RandomState(N).permutation(C): --config.seed=N does
  the same (scenario.seed -1); the default seed 0 keeps the order of the pinned scenario.seed 0."""
  c = load_config(config, None)
  assert (c.scenario.seed, c.scenario.class_order, c.seed) == (-1, 'ssil', 0)
  if config != 'ssil_imagenet.py':
    return
  import numpy as np
  from cil_jax.input_pipeline import scenario
  from cil_jax.engine import train
  for seed in (0, 1, 7):
    c = load_config(config, 'smoke', **{'dataset.root': imagenet_dir, 'seed': seed})
    exp = train.Experiment(c, str(tmp_path / 'w'))
    assert exp.data.label_map.tolist() == np.random.RandomState(seed).permutation(4).tolist()
    assert exp.data.label_map.tolist() == scenario.label_map(4, 'ssil', seed).tolist()


def test_a_workdir_of_the_pinned_class_order_resumes_with_the_tied_one(tmp_path):
  """Runs begun when the SS-IL configs pinned scenario.seed 0: seed 0 is the same experiment (resumed);
  seed 1 drew the order of seed 0, now of seed 1: another experiment, refused naming the field."""
  import json
  from cil_jax.engine import workdir
  for seed, same in ((0, True), (1, False)):
    c = load_config('ssil_imagenet.py', 'smoke', seed=seed)
    there = json.loads(c.to_json_best_effort())
    there['scenario']['seed'] = 0
    w = tmp_path / f's{seed}'
    w.mkdir()
    (w / 'config.json').write_text(json.dumps(there))
    (w / 'results.json').write_text('{}')
    if same:
      workdir.check_compatible(c, str(w))
    else:
      with pytest.raises(workdir.WorkdirError, match=r'scenario.seed 0 there, 1 here.*--config.scenario.seed=0'):
        workdir.check_compatible(c, str(w))
      c.scenario.seed = 0
      workdir.check_compatible(c, str(w))
