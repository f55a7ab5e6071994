"""The same steps on 1 and on 4 (host CPU) devices give the same losses and parameters: the batch
is sharded, BatchNorm sees the global batch."""
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
