"""The benchmarks measure what they say: baselines that compute what the
vectorised code computes, results in their units, repeated calls untraced."""

import time

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


def _timed(fn):
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def test_pgd_step_overhead_compares_identical_attacks():
  result, wall = _timed(lambda: benchmarks.pgd_step_overhead(
      hidden=(4,), num_samples=3, batch=5, num_steps=4))
  # Both forms produce the same adversarial examples, bit for bit.
  assert result['max_abs_difference'] == 0.0
  assert result['num_steps'] == 4
  # Units, against the test's own clock: each form's best time is one of
  # three timed runs inside the call, so three of each fit in its wall time
  # (a time in milliseconds, or of the whole loop per step, would not).
  looped, stepwise = (result['compiled_loop_seconds'],
                      result['python_steps_seconds'])
  assert 0 < 3 * (looped + stepwise) <= wall
  assert 0 < 3 * 4 * (result['compiled_loop_ms_per_step'] +
                      result['python_steps_ms_per_step']) <= 1e3 * wall


def test_expected_gradient_forms_compute_the_same_gradient():
  results, wall = _timed(lambda: benchmarks.expected_gradient_forms(
      hidden=(16, 8), num_samples=3, batch=4, repeats=1))
  assert sorted(results) == ['batched', 'einsum', 'loop', 'package']
  for name, result in results.items():
    assert result['max_abs_difference_vs_einsum'] < 1e-5, name
  # Every form's timed run (and the matmul peak beside it) is inside the call.
  assert 0 < sum(r['seconds'] for r in results.values()) <= wall


def test_hmc_step_size_batching_times_the_same_chains():
  result, wall = _timed(lambda: benchmarks.hmc_step_size_batching(
      num_cells=2, num_train=30, hidden=(3,), num_leapfrog_steps=2,
      num_results=2, num_segments=2, repeats=1))
  # Each batched cell's chains are its lone run's (to float rounding).
  assert result['max_abs_difference'] < 1e-6
  assert result['max_abs_difference_stacked'] < 1e-5
  assert result['num_cells'] == 2 and result['iterations_per_cell'] == 4
  ways = ('one_after_another', 'one_compiled_chain', 'batched',
          'batched_stacked')
  # One first pass and one steady pass of each way ran inside the call.
  timed = [result[f'{w}_{kind}seconds'] for w in ways
           for kind in ('first_', '')]
  assert min(timed) > 0 and sum(timed) <= wall
  with pytest.raises(ValueError, match='num_cells=7 is invalid'):
    benchmarks.hmc_step_size_batching(num_cells=7)


def test_keras_predictive_model_is_the_ensembles_predictive():
  architecture = networks.Architecture.mlp(2, [5, 4], 2, 'leaky_relu')
  ensemble = benchmarks.random_ensemble(architecture, 3, seed=2)
  x = tf.random.stateless_uniform([7, 2], [0, 3])
  model = benchmarks.keras_predictive_model(ensemble)
  np.testing.assert_allclose(model(x), ensemble.predictive_log_probs(x),
                             rtol=1e-5, atol=1e-6)
  conv = networks.Architecture((4, 4, 1), 2, ({'kind': 'conv2d', 'filters': 2,
                                               'kernel_size': 3},
                                              {'kind': 'flatten'}))
  with pytest.raises(ValueError, match='takes an MLP'):
    benchmarks.keras_predictive_model(benchmarks.random_ensemble(conv, 1))


def test_repeated_pgd_call_reuses_its_loop_and_matches_an_eager_pgd():
  result, wall = _timed(lambda: benchmarks.pgd_repeated_call(
      num_points=16, hidden=(4,), num_samples=2, num_steps=3, repeats=1,
      use_cleverhans=False))
  assert result['reference'] == 'eager_tape'
  # The loop is traced by the first call only.
  assert result['traces_first_call'] == 1 and result['traces_on_repeat'] == 0
  # An eager tape per step on the Keras twin finds the same points.
  assert result['max_abs_difference'] < 1e-6 and result['share_equal'] == 1.0
  timed = [result[k] for k in ('first_seconds', 'repeat_seconds',
                               'new_ensemble_seconds',
                               'reference_first_seconds', 'reference_seconds')]
  assert min(timed) > 0 and sum(timed) <= wall


def test_eager_pgd_is_cleverhans_pgd():
  """The fallback reference attacks as cleverhans does (when installed)."""
  pytest.importorskip('cleverhans', reason='cleverhans is the benchmark '
                      'extra (pip install -e ".[benchmark]")')
  architecture = networks.Architecture.mlp(2, [6], 2, 'tanh')
  model = benchmarks.keras_predictive_model(
      benchmarks.random_ensemble(architecture, 2, seed=4))
  x = tf.random.stateless_uniform([20, 2], [1, 5])
  labels = tf.random.stateless_uniform([20], [1, 6], 0, 2, tf.int32)
  name, cleverhans_pgd = benchmarks.reference_pgd()
  assert name == 'cleverhans'
  ours = benchmarks.eager_pgd(model, x, labels, 0.2, 0.05, 6)
  theirs = cleverhans_pgd(model, x, labels, 0.2, 0.05, 6)
  np.testing.assert_allclose(ours, theirs, atol=1e-6)
  assert float(tf.reduce_max(tf.abs(ours - x))) > 0.1
