"""Runs on device-resident data need no TensorFlow (the accelerator machines have none): the default
experiment, with TensorFlow, tensorflow_datasets, tensorboard and matplotlib made unimportable, gives
the results of a run with them; a run that does need tf.data says so in one line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(tmp_path, *args, block=('tensorflow', 'tensorflow_datasets', 'matplotlib', 'tensorboard')):
  """main.py with the `block` modules unimportable; it prints at exit whether TensorFlow was imported."""
  site = tmp_path / ('block_' + '_'.join(block))
  site.mkdir(exist_ok=True)
  # None in sys.modules: `import tensorflow` fails and importlib.util.find_spec answers None, as when
  # it is not installed
  (site / 'sitecustomize.py').write_text(
      f"import atexit, sys\nfor name in {tuple(block)!r}:\n  sys.modules[name] = None\n"
      "atexit.register(lambda: print('tensorflow imported:', sys.modules.get('tensorflow') is not None, "
      "file=sys.stderr))\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), ROOT]))
  return subprocess.run([sys.executable, 'main.py', *args], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=600)


def test_default_experiment_runs_without_tensorflow_and_gives_the_same_results(idx_dir, tmp_path):
  args = ('--config', 'configs/default.py:smoke', f'--config.dataset.root={idx_dir}', '--workdir')
  r = _main(tmp_path, *args, str(tmp_path / 'no_tf'))
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'TensorBoard summaries are off: the tensorboard package is not installed' in r.stdout + r.stderr
  assert 'accuracy.png is not written: matplotlib is not installed' in r.stdout + r.stderr
  assert not os.path.exists(tmp_path / 'no_tf' / 'tensorboard')
  without = json.load(open(tmp_path / 'no_tf' / 'results.json'))
  without.pop('wall_time')

  # everything installed: the run still needs no TensorFlow (its import costs seconds), and its
  # TensorBoard scalars are written without it
  r = _main(tmp_path, *args, str(tmp_path / 'all'), block=())
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'tensorflow imported: False' in r.stderr
  with_all = json.load(open(tmp_path / 'all' / 'results.json'))
  assert with_all.pop('wall_time')['sessions'] == 1
  assert with_all == without
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  events = EventAccumulator(str(tmp_path / 'all' / 'tensorboard'))
  events.Reload()
  top1 = [e.value for e in events.Scalars('eval/top1_all_seen')]
  assert [e.step for e in events.Scalars('eval/top1_all_seen')] == [1, 2, 3, 4, 5]
  np.testing.assert_allclose(top1, without['top1_all'], rtol=1e-6)
  lrs = events.Scalars('train/lr')   # the default run's lr: 0.1 / t in task t
  assert lrs[0].value == pytest.approx(0.1) and lrs[-1].value == pytest.approx(0.02)
  from tensorboard.backend.event_processing import event_file_loader
  from tensorboard.plugins.hparams import plugin_data_pb2
  [events_file] = os.listdir(tmp_path / 'all' / 'tensorboard')
  hparams = [v for e in event_file_loader.EventFileLoader(str(tmp_path / 'all' / 'tensorboard' / events_file)).Load()
             for v in e.summary.value if v.metadata.plugin_data.plugin_name == 'hparams']
  assert len(hparams) == 1   # the session's settings: the run's result-relevant config fields
  session = plugin_data_pb2.HParamsPluginData.FromString(hparams[0].metadata.plugin_data.content).session_start_info
  assert session.hparams['method.name'].string_value == 'ssil'
  assert session.hparams['train.lr'].number_value == pytest.approx(0.1)


def test_a_run_that_needs_tf_data_says_so_in_one_line(idx_dir, tmp_path):
  r = _main(tmp_path, '--config', 'configs/default.py:smoke', f'--config.dataset.root={idx_dir}',
                       '--config.dataset.on_device=off', '--workdir', str(tmp_path / 'w'))
  assert r.returncode != 0
  lines = [line for line in r.stderr.strip().splitlines() if not line.startswith('tensorflow imported:')]
  assert lines[-1].startswith('error: this dataset or augmentation is loaded with tf.data, '
                                                      'and TensorFlow is not installed: pip install'), r.stderr[-2000:]
  assert 'Traceback' not in r.stderr
  assert not os.path.exists(tmp_path / 'w' / 'checkpoints')
