"""The same steps on 1 and on 4 (host CPU) devices give the same losses and parameters: the batch
is sharded, BatchNorm sees the global batch."""
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(devices, out):
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}', JAX_PLATFORMS='cpu',
             PYTHONPATH=ROOT)
  r = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'device_count_worker.py'), str(out)],
                     env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  return np.load(out)


def test_one_and_four_devices_agree(tmp_path):
  one = _run(1, tmp_path / 'one.npz')
  four = _run(4, tmp_path / 'four.npz')
  assert int(one['devices']) == 1 and int(four['devices']) == 4
  np.testing.assert_allclose(one['losses'], four['losses'], rtol=1e-5, atol=1e-5)
  keys = [k for k in one.files if k.startswith('arr_')]
  assert len(keys) > 10
  for k in keys:
    np.testing.assert_allclose(one[k], four[k], rtol=1e-5, atol=1e-5)
  assert not np.allclose(one['losses'][0], one['losses'][-1])  # the steps really trained


def test_smoke_run_on_four_devices_finishes_like_one(tmp_path, idx_dir):
  """The whole loop on 4 host devices: training, host-side passes and evaluation (which once deadlocked
  gathering every batch to the host) end with the one-device run's accuracies."""
  results = []
  for devices in (1, 4):
    env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}', JAX_PLATFORMS='cpu')
    w = tmp_path / f'd{devices}'
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), '--config', 'configs/default.py:smoke',
                        f'--config.dataset.root={idx_dir}', '--config.memory.selection=herding', '--workdir', str(w)],
                       env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    results.append(json.load(open(w / 'results.json')))
  assert results[1]['tasks_done'] == 5
  np.testing.assert_allclose(results[1]['top1_all'], results[0]['top1_all'], atol=1.0)
