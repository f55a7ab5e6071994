"""A tiny end-to-end run per config family, on fixtures in each real on-disk format, and the
errors a user meets with bad input."""
import json
import os
import re
import subprocess
import sys

import pytest

from cil_jax.engine import train, workdir
from helpers import check_summary as _check, load_config as _config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_default_config_on_idx_files(idx_dir, tmp_path):
  c = _config('default.py', **{'dataset.root': idx_dir})
  summary = train.train_and_evaluate(c, str(tmp_path))
  _check(summary, 5)
  on_disk = json.load(open(tmp_path / 'results.json'))
  assert on_disk['top1'] == summary['top1']
  assert os.path.getsize(tmp_path / 'accuracy.png') > 1000
  assert json.load(open(tmp_path / 'config.json'))['method']['name'] == 'ssil'
  assert os.listdir(tmp_path / 'tensorboard')
  # run again on the finished workdir: nothing is retrained, same results
  assert train.train_and_evaluate(c, str(tmp_path))['top1'] == summary['top1']


@pytest.mark.parametrize('method', ['ft', 'icarl', 'il2m', 'eeil', 'bic', 'joint', 'ft_nomem'])
def test_each_method_end_to_end(method, idx_dir, tmp_path):
  """A tiny run per method on the shared Fashion-MNIST protocol (configs/<method>_fmnist.py)."""
  c = _config(f'{method}_fmnist.py', **{'dataset.root': idx_dir})
  summary = train.train_and_evaluate(c, str(tmp_path))
  _check(summary, 5)
  assert summary['tasks_done'] == 5


def test_fashion_mnist_from_a_prepared_tfds_copy(tmp_path, monkeypatch):
  """No dataset.root: a prepared tfds copy is read before the Debian package's IDX files (tfds's
  builder patched to hold 40 images per class, so nothing is downloaded or read from elsewhere)."""
  import numpy as np
  import tensorflow as tf
  import tensorflow_datasets as tfds
  from conftest import _class_images

  def as_dataset(self, split, batch_size):
    labels = np.tile(np.arange(10), 40 if split == 'train' else 8)
    images = _class_images(np.random.RandomState(3), labels, (28, 28, 1))
    return {'image': tf.constant(images), 'label': tf.constant(labels, tf.int64)}
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'is_prepared', lambda self: True)
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'as_dataset', as_dataset)
  monkeypatch.setattr('cil_jax.input_pipeline.fashion_mnist.DEBIAN_DIR', str(tmp_path / 'no_deb'))
  c = _config('default.py', **{'dataset.data_dir': str(tmp_path / 'tfds')})
  _check(train.train_and_evaluate(c, str(tmp_path / 'w')), 5)


@pytest.mark.parametrize('config', ['ssil_imagenet.py', 'ft_imagenet.py'])
def test_imagenet_configs_on_image_folders(config, imagenet_dir, tmp_path):
  c = _config(config, **{'dataset.root': imagenet_dir})
  _check(train.train_and_evaluate(c, str(tmp_path)), 2)


def test_ssil_cifar100_on_python_pickles(cifar100_dir, tmp_path):
  c = _config('ssil_cifar100.py', **{'dataset.root': cifar100_dir})
  _check(train.train_and_evaluate(c, str(tmp_path)), 2)


def _main(*args, cwd=ROOT):
  return subprocess.run([sys.executable, 'main.py', *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_every_config_file_loads_for_every_argument():
  for name in sorted(os.listdir(os.path.join(ROOT, 'configs'))):
    if not name.endswith('.py') or name.endswith('_common.py') or name == '__init__.py':
      continue
    if name.startswith('mgrb_'):   # MGRB's split is n/m and its memory per class (tests/test_mgrb.py)
      args = ('', 'smoke', 'vis', 'none,4/2' if name in ('mgrb_cifar10.py', 'mgrb_fmnist.py') else 'none,20/20')
    elif name == 'lucir_facil.py':   # one file for three datasets, an argument
      args = ('',) + tuple(f'{d},{a}' for d in ('fmnist', 'cifar100', 'imagenet100') for a in ('', 'smoke', 't5', 't20,m5000'))
    else:
      args = ('', 'smoke', 't5', 't20,m5000') if 'imagenet' in name else ('', 'smoke', 't5')
    for arg in args:
      c = _config(name, arg or None)
      if 't5' in arg:
        assert c.scenario.base == c.scenario.step
      if 'm5000' in arg:
        assert c.memory.size == (0 if 'nomem' in name or 'joint' in name else 5000)


def test_cli_rejects_unknown_keys_and_names(tmp_path):
  r = _main('--config', 'configs/default.py:smoke', '--config.train.no_such_key=1', '--workdir', str(tmp_path))
  assert r.returncode != 0 and 'no_such_key' in r.stderr
  r = _main('--config', 'configs/default.py:smoke', '--config.method.name=icarl2', '--workdir', str(tmp_path))
  assert r.returncode != 0 and "method.name='icarl2' is unknown; choose one of ['bic', 'eeil', 'ft', 'icarl'" in r.stderr
  r = _main('--config', 'configs/default.py:smoke', '--config.dataset.name=mnist', '--workdir', str(tmp_path))
  assert r.returncode != 0 and 'choose one of' in r.stderr and 'imagenet' in r.stderr
  assert not os.path.exists(tmp_path / 'checkpoints')  # refused before any compute


def test_cli_names_the_type_a_value_needs_and_the_field_or_file_meant():
  from cil_jax import command_line, config_base
  config = command_line.load_config_file('configs/default.py:smoke')
  for override, line in (({'train.epochs': 'two'}, '--config.train.epochs=two: train.epochs takes an integer'),
                         ({'train.epochs': '2.5'}, '--config.train.epochs=2.5: train.epochs takes an integer'),
                         ({'train.lr': 'fast'}, '--config.train.lr=fast: train.lr takes a number'),
                         ({'dataset.download': 'maybe'}, 'dataset.download takes true or false'),
                         ({'logging.every_steps': '1'}, "did you mean 'log_every_steps'?")):
    with pytest.raises(ValueError, match=re.escape(line)):
      config_base.check_overrides(config, override)
  config_base.check_overrides(config, {'train.lr': '1e-3', 'train.epochs': '2', 'dataset.download': 'True',
                                       'seed': '-1', 'scenario.class_order': '1,0'})
  with pytest.raises(ValueError, match=re.escape('did you mean --config configs/ssil_fmnist.py:smoke?')):
    command_line.config_arg(['main.py', '--config', 'configs/ssil_fmnst.py:smoke'])


def test_missing_dataset_and_impossible_memory_are_clear_errors(tmp_path, idx_dir):
  r = _main('--config', 'configs/ssil_imagenet.py:smoke', f'--config.dataset.root={tmp_path}/nowhere',
            '--workdir', str(tmp_path / 'w1'))
  assert r.returncode != 0 and 'does not exist' in r.stderr
  r = _main('--config', 'configs/default.py:smoke', f'--config.dataset.root={idx_dir}', '--config.memory.size=5',
            '--workdir', str(tmp_path / 'w2'))
  assert r.returncode != 0 and 'memory.size=5 is smaller than the 6 classes seen after task 3 of 5' in r.stderr


def test_corrupt_image_names_the_file_and_keeps_the_checkpoint(imagenet_dir, tmp_path):
  import shutil
  root = tmp_path / 'imagenet'
  shutil.copytree(imagenet_dir, root)
  bad = root / 'train' / 'n00000002' / 'n00000002_0.JPEG'
  bad.write_bytes(b'not a jpeg at all')   # class 2: task 2 of 2 in the identity order
  c = _config('ssil_imagenet.py', **{'dataset.root': str(root), 'scenario.class_order': 'identity'})
  with pytest.raises(Exception) as info:
    train.train_and_evaluate(c, str(tmp_path / 'w'))
  assert 'n00000002_0.JPEG' in str(info.value) and 'replace it with a readable image' in str(info.value)
  assert os.listdir(tmp_path / 'w' / 'checkpoints')  # task 1 (and the state at the failure) is saved
  # removed, the file's place shifts every index the checkpoints hold: refused in one line
  bad.unlink()
  with pytest.raises(workdir.WorkdirError, match=r'the dataset changed since the run in .* began \(train: 39 '
                                                 r'images, 40 at the start\); to resume, put the files back'):
    train.train_and_evaluate(c, str(tmp_path / 'w'))
  shutil.copy(root / 'train' / 'n00000002' / 'n00000002_1.JPEG', bad)   # replaced by a readable image: resumes
  _check(train.train_and_evaluate(c, str(tmp_path / 'w')), 2)


def test_an_unreadable_first_batch_leaves_no_trace(imagenet_dir, tmp_path):
  import shutil
  root = tmp_path / 'imagenet'
  shutil.copytree(imagenet_dir, root)
  for path in (root / 'train').glob('*/*.JPEG'):
    path.write_bytes(b'not a jpeg')
  c = _config('ssil_imagenet.py', **{'dataset.root': str(root)})
  with pytest.raises(Exception, match='corrupt or unreadable image'):
    train.train_and_evaluate(c, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()   # nothing was computed: removing the files and rerunning starts afresh


def test_herding_memory_and_profiler_trace(idx_dir, tmp_path):
  c = _config('default.py', **{'dataset.root': idx_dir, 'memory.selection': 'herding',
                               'profile.start_step': 1, 'profile.num_steps': 2})
  _check(train.train_and_evaluate(c, str(tmp_path)), 5)
  traces = [f for _, _, files in os.walk(tmp_path / 'tensorboard') for f in files if f.endswith('.xplane.pb')]
  assert traces, 'no profiler trace written'
  from cil_jax.engine.checkpoint import Checkpointer
  ckpt = Checkpointer(str(tmp_path / 'checkpoints'))
  meta = ckpt.restore_meta(ckpt.latest())
  counts = meta['memory_counts']
  assert sum(counts) == 40 and len(counts) == 8  # M = 40 over the 8 classes seen before the last task


def test_corrupt_images_outside_the_training_loop_are_named(imagenet_dir, tmp_path):
  """A corrupt val/ image (evaluation) and a corrupt training image read by a host-side pass (class
  means, statistics, imprinting, herding) are named like a training image."""
  import shutil
  import numpy as np
  from cil_jax.input_pipeline.base import DataError
  root = tmp_path / 'imagenet'
  shutil.copytree(imagenet_dir, root)
  c = _config('ssil_imagenet.py', **{'dataset.root': str(root)})
  exp = train.Experiment(c, str(tmp_path / 'w'))   # the start checks val/: the files break after it
  (root / 'val' / 'n00000001' / 'n00000001_2.JPEG').write_bytes(b'\xff\xd8\xff but no JPEG after that')
  (root / 'train' / 'n00000003' / 'n00000003_4.JPEG').write_bytes(b'not a jpeg either')
  state, method_state = exp.init_state()
  with pytest.raises(DataError, match=r'n00000001_2\.JPEG .*\(read during evaluation\); replace it with'):
    exp.evaluator.test_accuracy(state, method_state, 1, train.Classes.for_task(exp.data.tasks, 1), 8)  # all seen
  everything = np.arange(len(exp.data.train_labels))
  with pytest.raises(DataError, match=r'n00000003_4\.JPEG .*\(read during a pass over training images\)'):
    exp.evaluator.outputs(state, everything, augment=False, seed=0, eval_batch=8)
  with pytest.raises(DataError, match=r'n00000003_4\.JPEG'):
    exp.evaluator.outputs(state, everything, augment=True, seed=0, eval_batch=8)
  with pytest.raises(DataError, match=r'n00000003_4\.JPEG .*\(read during validation\)'):
    exp.evaluator.validation_loss(exp.method.phases(0)[0].step, state, None, method_state,
                                  train.Classes.for_task(exp.data.tasks, 0), everything, everything[:0], 8)


def test_an_unreadable_test_image_is_found_at_start_in_one_line_and_leaves_no_trace(imagenet_dir, tmp_path):
  """val/ images are first read after a task's training: checked at the start (exists, not empty,
  a header that parses), the first bad one named with the fix, nothing written."""
  import shutil
  from cil_jax.input_pipeline.base import DataError
  root = tmp_path / 'imagenet'
  shutil.copytree(imagenet_dir, root)
  c = _config('ssil_imagenet.py', **{'dataset.root': str(root)})
  cases = (('n00000003_2.JPEG', b'', 'an empty file'),
           ('n00000003_1.JPEG', b'<html>403 Forbidden</html>', 'not a JPEG, PNG, GIF, BMP or WebP file'),
           ('n00000003_0.JPEG', b'\xff\xd8\xff\xe0 truncated', 'its JPEG header does not parse'))
  for name, data, why in cases:
    (root / 'val' / 'n00000003' / name).write_bytes(data)
    with pytest.raises(DataError) as info:
      train.train_and_evaluate(c, str(tmp_path / 'w'))
    line = str(info.value)
    assert '\n' not in line and name in line and why in line, line
    assert not (tmp_path / 'w').exists()
  assert line.startswith('3 of the 12 test images cannot be read, the first: ') and 'n00000003_0.JPEG' in line
  assert 'replace it with a readable image at the same path' in line
  # a held-out validation image (FACIL's split of the training images) is checked too
  for name, _, _ in cases:
    shutil.copy(root / 'val' / 'n00000000' / 'n00000000_0.JPEG', root / 'val' / 'n00000003' / name)
  for image in (root / 'train').glob('*/*.JPEG'):
    image.write_bytes(b'GIF89a, no more')
  c = _config('lwf_imagenet100.py', 't2,smoke', **{'dataset.root': str(root), 'dataset.class_list': str(root / 'list')})
  (root / 'list').write_text('\n'.join(f'n0000000{k}' for k in range(4)))
  with pytest.raises(DataError, match=r'^4 of the 4 validation images cannot be read, the first: .*train/'):
    train.train_and_evaluate(c, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


def test_a_task_without_test_images_is_an_error_before_training(tmp_path):
  import numpy as np
  from conftest import _class_images, _write_idx
  from cil_jax.input_pipeline.base import DataError
  rng = np.random.RandomState(0)
  for prefix, labels in (('train', np.tile(np.arange(10), 48)), ('t10k', np.tile(np.arange(8), 8))):
    _write_idx(tmp_path / f'{prefix}-images-idx3-ubyte.gz', _class_images(rng, labels, (28, 28)))
    _write_idx(tmp_path / f'{prefix}-labels-idx1-ubyte.gz', labels)
  c = _config('default.py', **{'dataset.root': str(tmp_path), 'scenario.class_order': 'identity'})
  with pytest.raises(DataError, match=r'task 5 \(original classes \[8, 9\]\) has no test images'):
    train.train_and_evaluate(c, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()
