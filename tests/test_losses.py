"""Attack losses, all read from per-sample log-probabilities."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust.evaluation import gradients
from tfp_robust.attacks import losses
from tfp_robust import networks
from tfp_robust import ArchitectureEnsemble


def _np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.fixture(scope='module')
def random_case():
  rng = np.random.RandomState(21)
  num_samples, batch, num_classes = 6, 10, 4
  log_probs = _np_log_softmax(3.0 * rng.normal(
      size=(num_samples, batch, num_classes)))
  labels = rng.randint(0, num_classes, size=batch).astype(np.int32)
  # Half the examples are classified correctly by the predictive mean.
  labels[:5] = np.exp(log_probs).mean(0).argmax(-1)[:5]
  return log_probs, labels


def _hand(log_probs, labels):
  """Float64 numpy versions of the three losses."""
  picked = log_probs[:, np.arange(len(labels)), labels]           # [S, B]
  expected = -picked.mean(0)
  predictive_probs = np.exp(log_probs).mean(0)                     # [B, C]
  predictive = -np.log(predictive_probs[np.arange(len(labels)), labels])
  wrong = predictive_probs.copy()
  wrong[np.arange(len(labels)), labels] = -1.0
  margin = (np.log(wrong.max(-1)) -
            np.log(predictive_probs[np.arange(len(labels)), labels]))
  return -picked, expected, predictive, margin


def test_losses_match_numpy(random_case):
  log_probs, labels = random_case
  per_sample, expected, predictive, margin = _hand(log_probs, labels)
  lp = tf.constant(log_probs, tf.float32)
  np.testing.assert_allclose(losses.per_sample_cross_entropy(lp, labels),
                             per_sample, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(losses.expected_cross_entropy(lp, labels),
                             expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(losses.predictive_cross_entropy(lp, labels),
                             predictive, rtol=1e-5, atol=1e-5)
  # The case is not degenerate: the two cross-entropies differ clearly.
  assert np.abs(expected - predictive).max() > 0.5


def test_margin_matches_numpy(random_case):
  log_probs, labels = random_case
  margin = _hand(log_probs, labels)[3]
  lp = tf.constant(log_probs, tf.float32)
  np.testing.assert_allclose(losses.predictive_margin(lp, labels), margin,
                             rtol=1e-5, atol=1e-5)


def test_registry_and_unknown_name(random_case):
  log_probs, labels = random_case
  lp = tf.constant(log_probs, tf.float32)
  assert losses.get('margin') is losses.predictive_margin
  for name, fn in (('expected', losses.expected_cross_entropy),
                   ('predictive', losses.predictive_cross_entropy)):
    assert losses.get(name) is fn
    assert losses.get(name)(lp, labels).shape == (10,)
  with pytest.raises(ValueError, match="Unknown loss 'hinge'"):
    losses.get('hinge')


def test_predictive_never_exceeds_expected(random_case):
  log_probs, labels = random_case
  lp = tf.constant(log_probs, tf.float32)
  expected = losses.expected_cross_entropy(lp, labels).numpy()
  predictive = losses.predictive_cross_entropy(lp, labels).numpy()
  # -log is convex: the predictive cross-entropy never exceeds the expected.
  assert np.all(predictive <= expected + 1e-5)
  assert np.any(predictive < expected - 0.1)


def test_margin_is_positive_exactly_when_misclassified(random_case):
  log_probs, labels = random_case
  lp = tf.constant(log_probs, tf.float32)
  margin = losses.predictive_margin(lp, labels).numpy()
  misclassified = np.exp(log_probs).mean(0).argmax(-1) != labels
  assert 0 < misclassified.sum() < len(labels)
  np.testing.assert_array_equal(margin > 0, misclassified)


def test_single_sample_losses_coincide(random_case):
  log_probs, labels = random_case
  lp = tf.constant(log_probs[:1], tf.float32)
  np.testing.assert_allclose(losses.expected_cross_entropy(lp, labels),
                             losses.predictive_cross_entropy(lp, labels),
                             rtol=1e-6)


def _linear_ensemble(kernels, biases):
  """A logit layer only: logits = x @ kernel + bias, per sample."""
  arch = networks.Architecture((2,), 2, ())
  return ArchitectureEnsemble(arch, [np.asarray(kernels, np.float32),
                                  np.asarray(biases, np.float32)])


def test_huge_logits_give_huge_cross_entropy():
  """Losses are taken on log-probabilities: no second softmax.

  Every sample is confidently wrong with logit gaps of hundreds; the
  cross-entropy must be those gaps. A softmax applied to probabilities (or a
  cross-entropy from logits applied to log-probabilities) would cap it at
  about log(1 + e) = 1.3.
  """
  kernels = [[[0.0, 400.0], [0.0, 0.0]], [[0.0, 900.0], [0.0, 0.0]]]
  biases = [[0.0, 0.0], [0.0, 50.0]]
  ens = _linear_ensemble(kernels, biases)
  x = np.array([[0.5, 0.5], [1.0, 0.0], [0.1, 0.9]], np.float32)
  labels = np.array([0, 0, 0], np.int32)
  logits = np.einsum('bd,sdc->sbc', x.astype(np.float64),
                     np.asarray(kernels, np.float64)) + np.asarray(
                         biases, np.float64)[:, None]
  hand_log_probs = _np_log_softmax(logits)
  _, expected, predictive, margin = _hand(hand_log_probs, labels)
  log_probs = ens.log_probs(x)
  assert np.all(np.isfinite(log_probs.numpy()))
  got_expected = losses.expected_cross_entropy(log_probs, labels).numpy()
  np.testing.assert_allclose(got_expected, expected, rtol=1e-5)
  assert np.all(got_expected > 10)
  assert got_expected[1] == pytest.approx((400 + 950) / 2, rel=1e-5)
  # The predictive is dominated by the least wrong sample.
  got_predictive = losses.predictive_cross_entropy(log_probs, labels).numpy()
  np.testing.assert_allclose(got_predictive, predictive, rtol=1e-5)
  assert got_predictive[1] == pytest.approx(400 + np.log(2.0), rel=1e-5)
  got_margin = losses.predictive_margin(log_probs, labels).numpy()
  np.testing.assert_allclose(got_margin, margin, rtol=1e-5)
  assert np.all(got_margin > 10)
  # The attack path reports the same loss values.
  values, _ = gradients.loss_and_input_gradient(ens, x, labels, 'expected')
  np.testing.assert_allclose(values.numpy(), expected, rtol=1e-5)
