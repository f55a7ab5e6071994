"""The benchmark's profile: the traced operations joined with the compiled HLO, classified."""
import glob
import math

import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.tools import benchmark, xla_profile


def test_a_convolution_window_wider_than_its_output_is_a_weight_gradient():
  wgrad = ('%convolution.6 = f32[16,3,3,32]{3,2,1,0} convolution(%p0, %p1), window={size=14x14 pad=1_1x1_1}, '
           'dim_labels=b01f_01io->b01f')
  fwd = ('%convolution.1 = f32[160,14,14,32]{3,2,1,0} convolution(%p0, %p1), window={size=3x3 pad=1_1x1_1}, '
         'dim_labels=b01f_01io->b01f')
  assert xla_profile._conv_category(wgrad, 'f32[16,3,3,32]{3,2,1,0}') == 'convolution: weight gradient'
  assert xla_profile._conv_category(fwd, 'f32[160,14,14,32]{3,2,1,0}') == 'convolution: forward or input gradient'


def test_the_gradient_of_a_convolution_has_both_kinds():
  def loss(x, w):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return jnp.sum(jnp.maximum(y, 0.0) ** 2)
  x, w = jnp.ones((8, 16, 16, 4)), jnp.ones((3, 3, 4, 8))
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, w).compile()
  kinds = {ins.category for ins in xla_profile.instructions(compiled.as_text()).values()}
  assert {'convolution: weight gradient', 'convolution: forward or input gradient'} <= kinds, kinds


def test_benchmark_profile_accounts_for_the_traced_time(tmp_path):
  result = benchmark.bench_train_step('ssil', 'small_convnet', num_classes=10, batch_size=8, replay_batch_size=8,
                                      steps=2, num_tasks=5, profile_dir=str(tmp_path))
  p = result['profile']
  assert p['step_ms'] > 0 and p['traced_ms'] > 0 and p['top']
  np.testing.assert_allclose(sum(ms for _, ms in p['kinds']), p['traced_ms'], rtol=1e-6)
  assert any(kind.startswith('convolution') for kind, _ in p['kinds'])
  assert all(math.isfinite(row[0]) and row[0] >= 0 for row in p['top'])
  assert glob.glob(str(tmp_path / '**' / '*.xplane.pb'), recursive=True)   # the trace for TensorBoard stays
  text = benchmark.format_result(result)
  assert 'where the time goes' in text and 'the ' in text


def test_a_failed_profile_keeps_the_timing(tmp_path, monkeypatch):
  def no_trace(*args, **kwargs):
    raise FileNotFoundError('no Perfetto trace under DIR')
  monkeypatch.setattr(xla_profile, 'profile', no_trace)
  result = benchmark.bench_train_step('ssil', 'small_convnet', num_classes=10, batch_size=4, replay_batch_size=4,
                                      steps=1, num_tasks=5, profile_dir=str(tmp_path))
  assert result['img_per_s'] > 0 and 'profile' not in result
  assert result['profile_error'] == 'FileNotFoundError: no Perfetto trace under DIR'
  assert 'no profile: FileNotFoundError' in benchmark.format_result(result)
