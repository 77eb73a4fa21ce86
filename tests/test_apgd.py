"""APGD: its schedule, strength against PGD, constraints, seeds, batching."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust.attacks import apgd
from tfp_robust.attacks import gradient as attacks
from tfp_robust import ArchitectureEnsemble
from tfp_robust.attacks import losses


def _accuracy(ens, x, labels):
  return float(np.mean(ens.predict(x).numpy() == labels))


def test_checkpoint_schedule_is_autoattacks():
  assert apgd._schedule(100) == (22, 3, 6)  # pylint: disable=protected-access
  assert apgd._schedule(10) == (2, 1, 1)  # pylint: disable=protected-access


@pytest.mark.parametrize('eps, jit_compile', [(0.05, False), (0.1, True)])
def test_apgd_at_least_as_strong_as_pgd(trained_net, moons, eps, jit_compile):
  # At eps 0.1, PGD and APGD compiled with XLA (the suite's one test of the
  # compiled attack loops; the others run without it).
  trained_net = ArchitectureEnsemble(trained_net.architecture,
                                     trained_net.params,
                                     jit_compile=jit_compile)
  assert trained_net.jit_compile == jit_compile
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


def test_targeted_dlr_matches_its_formula_and_ignores_shift_and_scale():
  rng = np.random.RandomState(1)
  logits = rng.normal(size=(1, 6, 5)).astype(np.float32)
  labels = rng.randint(0, 5, size=6)
  targets = (labels + 1 + rng.randint(0, 4, size=6)) % 5
  value = losses.predictive_targeted_dlr(tf.nn.log_softmax(logits), labels,
                                         targets).numpy()
  scaled = losses.predictive_targeted_dlr(
      tf.nn.log_softmax(5.0 * logits - 2.0), labels, targets).numpy()
  np.testing.assert_allclose(value, scaled, rtol=1e-4)
  z = logits[0]
  top = np.sort(z, -1)[:, ::-1]
  rows = np.arange(6)
  np.testing.assert_allclose(
      value, -(z[rows, labels] - z[rows, targets]) /
      (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3])), rtol=1e-4)
  with pytest.raises(ValueError, match='at least 4 classes'):
    losses.predictive_targeted_dlr(tf.zeros([1, 2, 3]), [0, 1], [1, 2])


def _five_classes():
  from tfp_robust import networks  # pylint: disable=g-import-not-at-top
  arch = networks.Architecture.mlp(20, [32], 5)
  rng = np.random.RandomState(0)
  ens = ArchitectureEnsemble(
      arch, [rng.normal(size=(3,) + s).astype(np.float32)
             for _, s in arch.param_shapes()])
  x = rng.uniform(size=(60, 20)).astype(np.float32)
  return ens, x, ens.predict(x).numpy()  # Every image right at the start.


def test_targeted_apgd_heads_for_its_target_class():
  ens, x, y = _five_classes()
  target = apgd.ranked_class(ens, x, 3).numpy()
  assert not np.any(target == y)
  x_adv, _, fooled = apgd.apgd_run(ens, x, y, 0.2, 50, apgd.TARGETED, seed=1,
                                   targets=target)
  untargeted = apgd.apgd_run(ens, x, y, 0.2, 50, 'dlr', seed=1)[0]
  assert fooled.numpy().mean() > 0.8
  # A run returns its last misclassified iterate (as AutoAttack), not always
  # in the target class; but the targeted loss lands there far more often
  # than the untargeted one, which heads for the easiest wrong class.
  hit = np.mean(ens.predict(x_adv).numpy() == target)
  assert hit > 0.3
  assert hit > 2 * np.mean(ens.predict(untargeted).numpy() == target)
  assert np.abs(x_adv.numpy() - x).max() <= 0.2 + 1e-6


def test_targets_only_add_to_the_cascade():
  ens, x, y = _five_classes()
  plain = apgd.apgd_cascade(ens, x, y, 0.05, 30, restarts=1, seed=2)
  targeted = apgd.apgd_cascade(ens, x, y, 0.05, 30, restarts=1, seed=2,
                               targets=4)
  assert _accuracy(ens, targeted, y) <= _accuracy(ens, plain, y)
  assert _accuracy(ens, targeted, y) < _accuracy(ens, plain, y)  # They help.


@pytest.mark.parametrize('targets,classes,message', [
    (1, 3, 'needs at least 4 classes'), (5, 5, 'only 4 classes besides'),
    (-1, 10, 'apgd_targets=-1')])
def test_bad_target_counts_are_refused_by_name(targets, classes, message):
  with pytest.raises(ValueError, match=message):
    apgd.check_targets(targets, classes)
