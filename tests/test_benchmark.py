"""The benchmark module runs end to end on tiny settings and reports sane numbers."""
import json
import math

import pytest

from cil_jax.tools import benchmark


def _positive_finite(result, keys):
  for key in keys:
    assert key in result, key
    assert math.isfinite(result[key]) and result[key] > 0, (key, result[key])


def test_train_step_benchmark(tmp_path):
  path = tmp_path / 'bench.json'
  result = benchmark.main(['--model', 'small_convnet', '--method', 'ssil', '--num-classes', '10', '--num-tasks', '5',
                           '--batch-size', '4', '--replay-batch-size', '4', '--steps', '2',
                           '--json', str(path)])
  _positive_finite(result, ('img_per_s', 'ms_per_step', 'compile_s', 'loss'))   # a real step: a loss above 0
  assert (result['batch_size'], result['replay_batch_size'], result['steps']) == (4, 4, 2)
  assert result['image_shape'] == [28, 28, 1] and result['devices'] >= 1
  assert json.loads(path.read_text()) == result
  line = benchmark.format_result(result)
  assert line.startswith('train_step method=ssil model=small_convnet batch=4+4') and 'img/s' in line


def test_train_step_benchmark_reports_flops():
  result = benchmark.bench_train_step('ssil', 'small_convnet', num_classes=10, batch_size=8, replay_batch_size=0,
                                      steps=1, num_tasks=5)
  # 3x3 convs at 28, 14, 7 px: 2 * 9 * (1*16*28² + 16*32*14² + 32*64*7²) FLOPs per image forward;
  # the step is the student's forward and backward (about 3x) plus the teacher's forward
  conv_forward = 2 * 9 * (1 * 16 * 28 ** 2 + 16 * 32 * 14 ** 2 + 32 * 64 * 7 ** 2) * 8
  assert 3 * conv_forward < result['flops_per_step'] < 6 * conv_forward
  assert result['tflop_per_s'] > 0 and 'mfu' not in result     # CPU: no peak to divide by
  assert benchmark.peak_flops('NVIDIA H100 80GB HBM3', 'bfloat16') == 989e12
  assert benchmark.peak_flops('NVIDIA H100 PCIe', 'bfloat16') == 756e12
  assert benchmark.peak_flops('cpu', 'float32') is None


def test_train_step_benchmark_against_torch(tmp_path):
  """In a fresh process, as users run it: torch crashes where TensorFlow is loaded (other tests)."""
  import importlib.util
  import subprocess
  import sys
  if importlib.util.find_spec('torch') is None:
    pytest.skip('torch is not installed (requirements-bench.txt)')
  path = tmp_path / 'bench.json'
  done = subprocess.run([sys.executable, '-m', 'cil_jax', 'benchmark', '--model', 'small_convnet', '--num-classes', '10',
                         '--num-tasks', '5', '--batch-size', '8', '--replay-batch-size', '4', '--steps', '2',
                         '--compare', 'torch', '--rounds', '2', '--json', str(path)],
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  result = json.loads(path.read_text())
  for name in ('torch_eager', 'torch_compile'):
    _positive_finite(result[name], ('img_per_s', 'ms_per_step', 'warmup_s', 'loss'))
    _positive_finite(result, ('ratio_' + name,))
  assert result['rounds'] == 2
  assert 'jax / eager' in benchmark.format_result(result)


def test_train_step_benchmark_ft():
  result = benchmark.bench_train_step('ft', 'small_convnet', num_classes=4, batch_size=4, steps=2,
                                      num_tasks=2)
  _positive_finite(result, ('img_per_s', 'ms_per_step', 'compile_s'))
  assert result['replay_batch_size'] == 0   # FT: one mixed stream


def test_input_benchmark_memory():
  result = benchmark.bench_input('memory', num_images=128, image_size=8, batch_size=16,
                                 replay_batch_size=4)
  _positive_finite(result, ('img_per_s', 'ms_per_batch'))
  assert result['batches'] == 128 // 16 - 1   # one epoch of the new stream minus the warm-up batch
  assert result['augment'] == 'crop_flip'
  assert 'img/s' in benchmark.format_result(result)


def test_input_benchmark_synthetic_jpegs():
  result = benchmark.bench_input('jpeg-synthetic', num_images=48, image_size=32, batch_size=16,
                                 replay_batch_size=4)
  _positive_finite(result, ('img_per_s', 'ms_per_batch'))
  assert (result['augment'], result['num_images'], result['batches']) == ('imagenet', 48, 2)


def test_input_benchmark_on_a_small_image_folder(imagenet_dir):
  """The default batch does not fit 40 images: one line with sizes that fit, and those sizes work."""
  with pytest.raises(SystemExit, match=r'error: 40 images make 0 batch\(es\) of 128 .*--batch-size 10 '):
    benchmark.main(['--input', 'files', '--root', imagenet_dir])
  r = benchmark.main(['--input', 'files', '--root', imagenet_dir, '--batch-size', '10', '--replay-batch-size', '1'])
  assert r['num_images'] == 40 and r['batches'] == 3 and r['img_per_s'] > 0


def test_input_benchmark_names_an_unreadable_image_and_the_synthetic_mode_its_flag(imagenet_dir, tmp_path):
  import shutil
  root = tmp_path / 'imagenet'
  shutil.copytree(imagenet_dir, root)
  (root / 'train' / 'n00000001' / 'n00000001_3.JPEG').write_bytes(b'not a jpeg')
  with pytest.raises(SystemExit, match=r'^error: corrupt or unreadable image .*n00000001_3\.JPEG .*; remove or '
                                       r'replace it$'):
    benchmark.main(['--input', 'files', '--root', str(root), '--batch-size', '10', '--replay-batch-size', '1'])
  with pytest.raises(SystemExit, match=r'needs at least 2 \(one warm-up\): use --num-images 32, or'):
    benchmark.main(['--input', 'jpeg-synthetic', '--num-images', '20', '--batch-size', '16'])


def test_input_benchmark_against_the_torch_pipeline_on_the_same_files(tmp_path):
  import importlib.util
  if not (importlib.util.find_spec('torch') and importlib.util.find_spec('torchvision')):   # not imported
    pytest.skip('torch / torchvision are not installed (requirements-bench.txt)')          # next to TF
  root = benchmark.write_synthetic_jpegs(str(tmp_path / 'jpegs'), 48, size=(64, 48))
  result = benchmark.bench_input('files', root=root, image_size=32, batch_size=16, replay_batch_size=4,
                                 compare='torch')
  _positive_finite(result, ('img_per_s', 'ratio'))
  _positive_finite(result['torch'], ('img_per_s', 'ms_per_batch'))
  assert result['torch']['batches'] == 48 // 20 - 1     # one epoch of B + R batches minus the warm-up
  assert 'torch DataLoader + PIL' in benchmark.format_result(result)


def test_benchmark_arguments_that_do_not_fit_are_one_line(capsys):
  with pytest.raises(SystemExit, match='--rounds=0 must be >= 1'):
    benchmark.main(['--model', 'small_convnet', '--compare', 'torch', '--rounds', '0'])
  with pytest.raises(SystemExit, match='--cores=99'):
    benchmark.main(['--input', 'memory', '--cores', '99'])


@pytest.mark.parametrize('args,line', [
    (['--num-classes', '10'], '--num-tasks=10 leaves one class per task, where a task-wise softmax has nothing to '
                              'separate; use --num-tasks 2, 5'),
    (['--num-classes', '10', '--num-tasks', '3'], '--num-tasks=3 does not split --num-classes=10 into equal tasks'),
    (['--num-classes', '10', '--num-tasks', '5', '--batch-size', '0'], '--batch-size=0 and --replay-batch-size=32: '
                                                                       'the batch needs one new image at least')])
def test_a_step_that_is_not_a_real_one_is_refused_in_one_line(args, line, capsys):
  with pytest.raises(SystemExit) as info:
    benchmark.main(['--model', 'small_convnet', '--steps', '1', *args])
  assert str(info.value).startswith('error: ' + line), info.value


@pytest.mark.parametrize('args,missing', [([], 'torch, which is'),
                                          (['--input', 'jpeg-synthetic'], 'torch and torchvision, which are')])
def test_compare_torch_without_torch_stops_before_anything_is_built(args, missing, monkeypatch):
  """As when they are not installed (None in sys.modules: find_spec answers None); the JAX step and
  the JPEGs are never made."""
  import sys

  def never(*a, **k):
    raise AssertionError('built before torch was found missing')
  for name in ('torch', 'torchvision'):
    monkeypatch.setitem(sys.modules, name, None)
  monkeypatch.setattr(benchmark, 'JaxStep', never)
  monkeypatch.setattr(benchmark, 'write_synthetic_jpegs', never)
  with pytest.raises(SystemExit) as info:
    benchmark.main(['--model', 'small_convnet', '--compare', 'torch', *args])
  assert str(info.value) == f'error: --compare torch needs {missing} not installed: pip install -r ' \
                            'requirements-bench.txt'
