"""Runs on device-resident data need no TensorFlow (the accelerator machines have none): the default
experiment, with TensorFlow, tensorflow_datasets and matplotlib made unimportable, gives the results
of a run with them; a run that does need tf.data says so in one line."""
import json
import os
import subprocess
import sys

from cil_jax import train
from helpers import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main_without_tf(tmp_path, *args):
  block = tmp_path / 'block'
  block.mkdir(exist_ok=True)
  # None in sys.modules: `import tensorflow` fails and importlib.util.find_spec answers None, as when
  # it is not installed
  (block / 'sitecustomize.py').write_text(
      "import sys\nfor name in ('tensorflow', 'tensorflow_datasets', 'matplotlib'):\n  sys.modules[name] = None\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(block), ROOT]))
  return subprocess.run([sys.executable, 'main.py', *args], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=600)


def test_default_experiment_runs_without_tensorflow_and_gives_the_same_results(idx_dir, tmp_path):
  r = _main_without_tf(tmp_path, '--config', 'configs/default.py:smoke', f'--config.dataset.root={idx_dir}',
                       '--workdir', str(tmp_path / 'no_tf'))
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'TensorBoard summaries are off: TensorFlow is not installed' in r.stdout + r.stderr
  assert 'accuracy.png is not written: matplotlib is not installed' in r.stdout + r.stderr
  assert not os.path.exists(tmp_path / 'no_tf' / 'tensorboard')
  without = json.load(open(tmp_path / 'no_tf' / 'results.json'))

  with_tf = train.train_and_evaluate(load_config('default.py', **{'dataset.root': idx_dir}), str(tmp_path / 'tf'))
  assert json.load(open(tmp_path / 'tf' / 'results.json')) == without
  assert with_tf['top1'] == without['top1']


def test_a_run_that_needs_tf_data_says_so_in_one_line(idx_dir, tmp_path):
  r = _main_without_tf(tmp_path, '--config', 'configs/default.py:smoke', f'--config.dataset.root={idx_dir}',
                       '--config.dataset.on_device=off', '--workdir', str(tmp_path / 'w'))
  assert r.returncode != 0
  assert r.stderr.strip().splitlines()[-1].startswith('error: this dataset or augmentation is loaded with tf.data, '
                                                      'and TensorFlow is not installed: pip install'), r.stderr[-2000:]
  assert 'Traceback' not in r.stderr
  assert not os.path.exists(tmp_path / 'w' / 'checkpoints')
