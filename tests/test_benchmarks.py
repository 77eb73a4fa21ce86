"""The benchmark's loop baselines compute what the vectorised code computes."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust.experiments import benchmarks
from tfp_robust.evaluation import gradients
from tfp_robust import networks


def test_loop_baselines_equal_vectorised_expected_gradient():
  architecture = networks.Architecture.mlp(6, [5], 3)
  ensemble = benchmarks.random_ensemble(architecture, 4, seed=1)
  x = tf.random.stateless_uniform([3, 6], [0, 1])
  labels = tf.constant([0, 2, 1])
  _, vectorised = gradients.loss_and_input_gradient(ensemble, x, labels,
                                                    'expected')
  per_image = benchmarks.looped_expected_gradient(ensemble, x, labels)
  per_sample = benchmarks.looped_over_samples_gradient(ensemble, x, labels)
  np.testing.assert_allclose(per_image, vectorised, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(per_sample, vectorised, rtol=1e-5, atol=1e-7)
  assert float(tf.reduce_max(tf.abs(vectorised))) > 0


def test_flop_count_of_dense_forward():
  architecture = networks.Architecture.mlp(4, [3], 2)
  # 2 * batch * samples * (4*3 + 3*2) multiply-adds.
  assert benchmarks.dense_forward_flops(architecture, 5, 7) == 2 * 5 * 7 * 18


def test_pgd_step_overhead_compares_identical_attacks():
  result = benchmarks.pgd_step_overhead(hidden=(4,), num_samples=3, batch=5,
                                        num_steps=4)
  # Both forms produce the same adversarial examples, bit for bit.
  assert result['max_abs_difference'] == 0.0
  assert result['num_steps'] == 4
  assert result['python_steps_seconds'] > 0 and result[
      'compiled_loop_seconds'] > 0
  assert result['overhead_ms_per_step_removed'] == pytest.approx(
      result['python_steps_ms_per_step'] - result['compiled_loop_ms_per_step'])


def test_expected_gradient_forms_compute_the_same_gradient():
  results = benchmarks.expected_gradient_forms(hidden=(16, 8), num_samples=3,
                                               batch=4, repeats=1)
  assert sorted(results) == ['batched', 'einsum', 'loop', 'package']
  for name, result in results.items():
    assert result['max_abs_difference_vs_einsum'] < 1e-5, name
    assert result['seconds'] > 0 and result['fraction_of_matmul_peak'] > 0


def test_hmc_step_size_batching_times_the_same_chains():
  result = benchmarks.hmc_step_size_batching(
      num_cells=2, num_train=30, hidden=(3,), num_leapfrog_steps=2,
      num_results=2, num_segments=2, repeats=1)
  # Each batched cell's chains are its lone run's (to float rounding).
  assert result['max_abs_difference'] < 1e-6
  assert result['max_abs_difference_stacked'] < 1e-5
  assert result['num_cells'] == 2 and result['iterations_per_cell'] == 4
  for name in ('one_after_another', 'one_compiled_chain', 'batched',
               'batched_stacked'):
    assert result[f'{name}_seconds'] > 0
    assert result[f'{name}_first_seconds'] >= result[f'{name}_seconds']
  assert result['ratio'] == pytest.approx(
      result['one_after_another_seconds'] / result['batched_seconds'])
  with pytest.raises(ValueError, match='num_cells=7 is invalid'):
    benchmarks.hmc_step_size_batching(num_cells=7)
