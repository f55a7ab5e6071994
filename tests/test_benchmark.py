"""The benchmark module runs end to end on tiny settings and reports sane numbers."""
import json
import math

import pytest

from cil_jax import benchmark


def _positive_finite(result, keys):
  for key in keys:
    assert key in result, key
    assert math.isfinite(result[key]) and result[key] > 0, (key, result[key])


def test_train_step_benchmark(tmp_path):
  path = tmp_path / 'bench.json'
  result = benchmark.main(['--model', 'small_convnet', '--method', 'ssil', '--num-classes', '10',
                           '--batch-size', '4', '--replay-batch-size', '4', '--steps', '2',
                           '--json', str(path)])
  _positive_finite(result, ('img_per_s', 'ms_per_step', 'compile_s'))
  assert (result['batch_size'], result['replay_batch_size'], result['steps']) == (4, 4, 2)
  assert result['image_shape'] == [28, 28, 1] and result['devices'] >= 1
  assert json.loads(path.read_text()) == result
  line = benchmark.format_result(result)
  assert line.startswith('train_step method=ssil model=small_convnet batch=4+4') and 'img/s' in line


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
  with pytest.raises(SystemExit, match='--compare torch compares input pipelines'):
    benchmark.main(['--compare', 'torch'])
  with pytest.raises(SystemExit, match='--cores=99'):
    benchmark.main(['--input', 'memory', '--cores', '99'])
