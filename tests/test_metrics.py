"""Robustness metrics read from the predictive mean."""

import numpy as np
import pytest

from tfp_robust.attacks import gradient as attacks
from tfp_robust.evaluation import metrics
from tfp_robust import networks
from tfp_robust import ArchitectureEnsemble

ONE_D = networks.Architecture((1,), 2, ())


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def _logit(p):
  return np.log(p / (1.0 - p))


def _threshold_ensemble(slopes, offsets):
  """Samples with logit(p(class 0)) = slope * x + offset."""
  kernels = np.array([[[s, 0.0]] for s in slopes], np.float32)
  biases = np.array([[o, 0.0] for o in offsets], np.float32)
  return ArchitectureEnsemble(ONE_D, [kernels, biases])


def test_unchanged_inputs_are_fully_robust(trained_net, moons):
  x, labels = moons.x_test, moons.y_test
  result = metrics.robustness(trained_net, x, labels, x)
  assert result['adversarial_accuracy'] == result['clean_accuracy']
  assert result['clean_accuracy'] == pytest.approx(
      np.mean(trained_net.predict(x).numpy() == labels))
  assert result['clean_accuracy'] > 0.9
  assert result['softmax_difference'] == 0.0
  assert result['softmax_robustness'] == 1.0
  assert result['attack_success'] == 0.0
  assert result['max_perturbation'] == 0.0


def test_label_flip_with_small_softmax_change_is_not_robust():
  ens = _threshold_ensemble([1.0], [-0.5])
  shift = _logit(0.51)
  x = np.array([[0.5 + shift], [0.9], [0.2]], np.float32)
  x_adv = np.array([[0.5 - shift], [0.85], [0.25]], np.float32)
  labels = np.array([0, 0, 0], np.int32)
  p_clean = _sigmoid(x[:, 0].astype(np.float64) - 0.5)
  p_adv = _sigmoid(x_adv[:, 0].astype(np.float64) - 0.5)
  np.testing.assert_allclose(p_clean[0], 0.51, atol=1e-6)
  np.testing.assert_allclose(p_adv[0], 0.49, atol=1e-6)
  result = metrics.robustness(ens, x, labels, x_adv)
  # Example 0 flips (0.51 -> 0.49), example 1 stays right, example 2 was
  # wrong from the start (p = 0.43) and stays wrong.
  assert result['clean_accuracy'] == pytest.approx(2 / 3)
  assert result['adversarial_accuracy'] == pytest.approx(1 / 3)
  assert result['attack_success'] == pytest.approx(1 / 2)
  want_difference = np.mean(np.abs(p_clean - p_adv))
  assert result['softmax_difference'] == pytest.approx(want_difference,
                                                       abs=1e-6)
  assert result['softmax_difference'] < 0.02
  assert result['softmax_robustness'] == pytest.approx(1 - want_difference,
                                                       abs=1e-6)
  # A high softmax robustness does not mean robust predictions.
  assert result['softmax_robustness'] > 0.98
  assert result['max_perturbation'] == pytest.approx(2 * shift, abs=1e-6)


def test_metrics_use_the_predictive_mean_of_all_samples():
  x = np.array([[0.3]], np.float32)
  # Mean softmax p0 = 0.4 -> class 1; the mean logit (+1.84) would say 0.
  skewed = _threshold_ensemble([0.0] * 4, [_logit(0.2)] * 3 + [_logit(0.99999)])
  np.testing.assert_allclose(np.exp(skewed.predictive_log_probs(x).numpy()),
                             [[0.4, 0.6]], atol=1e-5)
  assert metrics.robustness(skewed, x, [1], x)['clean_accuracy'] == 1.0
  assert metrics.robustness(skewed, x, [0], x)['clean_accuracy'] == 0.0
  # Mean softmax p0 = 0.63 -> class 0; a majority vote would say 1.
  voters = _threshold_ensemble([0.0] * 3, [_logit(0.45)] * 2 + [_logit(0.99)])
  assert metrics.robustness(voters, x, [0], x)['clean_accuracy'] == 1.0


def test_flip_of_the_predictive_mean_counts_as_not_robust():
  # Sample 0 always says p0 = 0.9; sample 1 says p0 = 0.2 at x = 0.3 and
  # sigmoid(logit(0.2) - 2) = 0.033 at x = 0.5: the mean drops below 1/2.
  ens = _threshold_ensemble([0.0, -10.0], [_logit(0.9), _logit(0.2) + 3.0])
  x = np.array([[0.3]], np.float32)
  x_adv = np.array([[0.5]], np.float32)
  labels = np.array([0], np.int32)
  clean_mean = 0.5 * (0.9 + 0.2)
  adv_mean = 0.5 * (0.9 + _sigmoid(_logit(0.2) - 2.0))
  assert clean_mean > 0.5 > adv_mean
  result = metrics.robustness(ens, x, labels, x_adv)
  assert result['clean_accuracy'] == 1.0
  assert result['adversarial_accuracy'] == 0.0
  assert result['attack_success'] == 1.0
  assert result['softmax_difference'] == pytest.approx(clean_mean - adv_mean,
                                                       abs=1e-6)


def test_precomputed_clean_log_probs_give_the_same_figures(trained_net, moons):
  x, labels = moons.x_test[:200], moons.y_test[:200]
  x_adv = attacks.pgd(trained_net, x, labels, 0.05, num_steps=5, seed=0)
  plain = metrics.robustness(trained_net, x, labels, x_adv)
  cached = metrics.robustness(trained_net, x, labels, x_adv,
                              clean_log_probs=trained_net.log_probs(x))
  assert plain == cached
  assert plain['adversarial_accuracy'] == pytest.approx(
      np.mean(trained_net.predict(x_adv).numpy() == labels))
  assert plain['adversarial_accuracy'] < plain['clean_accuracy']
  assert plain['max_perturbation'] == pytest.approx(0.05, abs=1e-6)
  correct = trained_net.predict(x).numpy() == labels
  flipped = correct & (trained_net.predict(x_adv).numpy() != labels)
  assert plain['attack_success'] == pytest.approx(flipped.sum() /
                                                  correct.sum())


def test_robustness_checks_its_inputs(trained_net, moons):
  x, labels = moons.x_test[:10], moons.y_test[:10]
  with pytest.raises(ValueError, match=r'Inputs must have shape \[B, 2\]'):
    metrics.robustness(trained_net, x, labels, x[:, :1])
  with pytest.raises(ValueError, match=r'must lie in \[0, 1\]'):
    metrics.robustness(trained_net, x, labels, x + 2.0)
  with pytest.raises(ValueError, match=r'Labels must have shape \[10\]'):
    metrics.robustness(trained_net, x, labels[:, None], x)


def test_per_class_says_which_images_survive_and_where_the_rest_go():
  # p(class 0) > 1/2 for x < 0.5 in two samples; the third always says 1.
  ensemble = _threshold_ensemble([-10.0, -10.0, -10.0], [5.0, 5.0, -5.0])
  x = np.array([[0.1], [0.2], [0.8], [0.9]], np.float32)
  labels = np.array([0, 0, 1, 1])
  x_adv = np.array([[0.9], [0.9], [0.8], [0.9]], np.float32)
  table = metrics.per_class(ensemble, x, labels, x_adv).set_index('label')
  assert list(table['images']) == [2, 2]
  assert list(table['clean_accuracy']) == [1.0, 1.0]
  assert list(table['adversarial_accuracy']) == [0.0, 1.0]
  assert table.loc[0, 'top_adversarial_class'] == 1
  assert table.loc[0, 'top_adversarial_share'] == 1.0
  np.testing.assert_allclose(table['sample_agreement_clean'], [2 / 3, 1.0])
  np.testing.assert_allclose(table['sample_agreement_adversarial'], [0, 1.0])
  with pytest.raises(ValueError, match='x_adv has 3 examples'):
    metrics.per_class(ensemble, x, labels, x_adv[:3])
