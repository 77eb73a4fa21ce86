"""The replay switches: each changes exactly what it claims to."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust.experiments import ablations
from tfp_robust import ArchitectureEnsemble
from tfp_robust.evaluation import gradients


@pytest.fixture(scope='module')
def small_bnn(trained_net):
  """Four nearby weight samples around the trained half-moons net."""
  rng = np.random.RandomState(3)
  params = [p.numpy() + 0.05 * rng.normal(size=(4,) + tuple(p.shape[1:]))
            for p in trained_net.params]
  return ArchitectureEnsemble(trained_net.architecture, params)


def test_double_softmax_loss_is_cross_entropy_of_softmaxed_probabilities(
    small_bnn, moons):
  x, y = moons.x_test[:50], moons.y_test[:50]
  probs = np.exp(small_bnn.log_probs(x).numpy().astype(np.float64)).mean(0)
  twice = np.exp(probs) / np.exp(probs).sum(-1, keepdims=True)
  want = -np.log(twice[np.arange(50), y])
  got = ablations.double_softmax_loss(small_bnn.log_probs(x), y).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # Softmax of probabilities is never confident: the loss stays near log 2.
  assert np.all(got > -np.log(np.e / (np.e + 1)) - 1e-6)


def test_clipped_loss_has_exactly_zero_gradient_on_confident_points(
    trained_net, moons):
  x, y = moons.x_test, moons.y_test
  params = [p.numpy() * (20.0 if i >= 4 else 1.0)
            for i, p in enumerate(trained_net.params)]
  confident = ArchitectureEnsemble(trained_net.architecture, params)
  predictive = np.exp(confident.predictive_log_probs(x).numpy())
  saturated = predictive[np.arange(len(y)), y] > 1 - 1e-7
  assert 0.2 < saturated.mean() < 1.0
  _, grad = gradients.loss_and_input_gradient(
      confident, x, y, ablations.clipped_probability_loss)
  is_zero = np.abs(grad.numpy()).max(-1) == 0
  # Every saturated point is blind to the attack; a few more sit on the
  # float32 edge of the clip.
  assert is_zero[saturated].all()
  assert np.mean(is_zero & ~saturated) <= 0.01
  assert ablations.zero_gradient_fraction(confident, x, y, 'clipped') == (
      pytest.approx(is_zero.mean()))
  assert ablations.zero_gradient_fraction(confident, x, y, 'expected') < (
      saturated.mean())


def test_original_pgd_lands_on_corners_of_the_ball(small_bnn, moons):
  x, y = moons.x_test[:100], moons.y_test[:100]
  eps = 0.1
  x_adv = ablations.run_attack('pgd_original', small_bnn, x, y, eps,
                               'expected').numpy()
  corners = [np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1), x]
  on_corner = np.any([np.isclose(x_adv, c, atol=1e-6) for c in corners], 0)
  assert on_corner.all()
  correct = ablations.run_attack('pgd', small_bnn, x, y, eps,
                                 'expected').numpy()
  assert not np.all(np.any([np.isclose(correct, c, atol=1e-6)
                            for c in corners], 0))


def test_unprojected_pgd_ends_in_the_ball_but_walks_outside(small_bnn, moons):
  x, y = moons.x_test[:100], moons.y_test[:100]
  x_adv = ablations.run_attack('pgd_unprojected', small_bnn, x, y, 0.1,
                               'expected').numpy()
  assert np.abs(x_adv - x).max() <= 0.1 + 1e-6
  correct = ablations.run_attack('pgd', small_bnn, x, y, 0.1,
                                 'expected').numpy()
  assert np.abs(x_adv - correct).max() > 1e-3


def test_replay_table_crosses_every_switch(small_bnn, moons):
  x, y = moons.x_test[:40], moons.y_test[:40]
  rows = ablations.replay_rows(small_bnn, x, y, 0.1, pgd_steps=3)
  assert len(rows) == len(ablations.ATTACKS) * len(ablations.LOSSES) * 2
  same = {(r['attack'], r['loss']): r for r in rows if not r['other_samples']}
  other = {(r['attack'], r['loss']): r for r in rows if r['other_samples']}
  assert same.keys() == other.keys()
  # Only the samples the attack saw differ: clean accuracy is shared.
  assert len({r['clean_accuracy'] for r in rows}) == 1
  assert {r['mistakes'] for r in rows} == {0, 1, 2, 3}
  first, second = ablations.split_ensemble(small_bnn)
  assert first.num_samples == second.num_samples == 2
  np.testing.assert_array_equal(second.log_probs(x).numpy(),
                                small_bnn.log_probs(x).numpy()[2:])
  with pytest.raises(ValueError, match='Unknown replay attack'):
    ablations.run_attack('pgd_fast', small_bnn, x, y, 0.1, 'expected')


def test_clipped_loss_is_keras_cross_entropy_and_flat_when_confident():
  # Two samples, two images: the mean softmax of the first is 0.7 / 0.3,
  # of the second one-hot beyond Keras' clip (1 - 1e-7).
  probs = tf.constant([[[0.6, 0.4], [1.0, 1e-12]],
                       [[0.8, 0.2], [1.0, 1e-12]]])
  log_probs = tf.math.log(probs)
  loss = ablations.LOSSES['clipped'](log_probs, [0, 0]).numpy()
  np.testing.assert_allclose(loss[0], -np.log(0.7), rtol=1e-5)
  # At the clip: -log(1 - 1e-7), about 1e-7 (float32 rounds the 1 - 1e-7).
  assert 0 < loss[1] < 2e-7
  with tf.GradientTape() as tape:
    tape.watch(log_probs)
    total = tf.reduce_sum(ablations.LOSSES['clipped'](log_probs, [0, 0]))
  gradient = tape.gradient(total, log_probs).numpy()
  # The clip cuts the confident image off: exactly zero gradient there,
  # the trap the replay measures; not on the other.
  np.testing.assert_array_equal(gradient[:, 1], 0.0)
  assert np.abs(gradient[:, 0]).max() > 0.1
