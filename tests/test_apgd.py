"""APGD: its schedule, strength against PGD, constraints, seeds, batching."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust import apgd
from tfp_robust import attacks
from tfp_robust import ArchitectureEnsemble
from tfp_robust import losses


def _accuracy(ens, x, labels):
  return float(np.mean(ens.predict(x).numpy() == labels))


def test_checkpoint_schedule_is_autoattacks():
  assert apgd._schedule(100) == (22, 3, 6)  # pylint: disable=protected-access
  assert apgd._schedule(10) == (2, 1, 1)  # pylint: disable=protected-access


@pytest.mark.parametrize('eps', [0.05, 0.1])
def test_apgd_at_least_as_strong_as_pgd(trained_net, moons, eps):
  x, y = moons.x_test, moons.y_test
  pgd = _accuracy(trained_net, attacks.pgd(trained_net, x, y, eps,
                                           num_steps=15, loss='predictive',
                                           seed=0), y)
  x_adv = apgd.apgd(trained_net, x, y, eps, num_steps=100, restarts=3,
                    loss='predictive', seed=0).numpy()
  assert np.abs(x_adv - x).max() <= eps + 1e-6
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
  assert _accuracy(trained_net, x_adv, y) <= pgd + 0.01
  assert _accuracy(trained_net, x_adv, y) < trained_net.accuracy(x, y) - 0.1


def test_apgd_same_seed_same_bits_at_any_memory_budget(trained_net, moons):
  x, y = moons.x_test[:100], moons.y_test[:100]
  small = ArchitectureEnsemble(trained_net.architecture, trained_net.params,
                               memory_budget_bytes=16 * 32 * 24)
  first = apgd.apgd_run(trained_net, x, y, 0.1, 20, seed=3)
  again = apgd.apgd_run(trained_net, x, y, 0.1, 20, seed=3)
  batched = apgd.apgd_run(small, x, y, 0.1, 20, seed=3)
  other = apgd.apgd_run(trained_net, x, y, 0.1, 20, seed=4)
  np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
  np.testing.assert_allclose(first[0].numpy(), batched[0].numpy(), atol=1e-6)
  assert np.abs(first[0].numpy() - other[0].numpy()).max() > 1e-3


def test_apgd_dlr_needs_three_classes_and_refuses_bad_eps(trained_net, moons):
  x, y = moons.x_test[:10], moons.y_test[:10]
  with pytest.raises(ValueError, match="'dlr' needs at least 3 classes"):
    apgd.apgd_run(trained_net, x, y, 0.1, loss='dlr')
  with pytest.raises(ValueError, match='eps=inf is invalid: it must be a finite number'):
    apgd.apgd_run(trained_net, x, y, float('inf'))
  assert apgd.dlr_or_margin(2) == 'margin' and apgd.dlr_or_margin(10) == 'dlr'


def test_dlr_loss_is_shift_and_scale_invariant():
  rng = np.random.RandomState(0)
  logits = rng.normal(size=(1, 6, 5)).astype(np.float32)
  labels = rng.randint(0, 5, size=6)
  log_probs = tf.nn.log_softmax(logits)
  scaled = tf.nn.log_softmax(7.0 * logits + 3.0)
  value = losses.get('dlr')(log_probs, labels).numpy()
  # One sample: DLR of the log-softmax is DLR of the logits, and scaling the
  # logits leaves it unchanged.
  np.testing.assert_allclose(value, losses.get('dlr')(scaled, labels).numpy(),
                             rtol=1e-4)
  top = np.sort(logits[0], -1)[:, ::-1]
  true = logits[0][np.arange(6), labels]
  other = np.where(np.eye(5)[labels] > 0, -np.inf, logits[0]).max(-1)
  np.testing.assert_allclose(value, -(true - other) / (top[:, 0] - top[:, 2]),
                             rtol=1e-4)
