"""L-infinity attacks: strength, constraints, seeds and argument checks."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust.attacks import apgd
from tfp_robust.attacks import batching as attack_batches
from tfp_robust.attacks import gradient as attacks
from tfp_robust.attacks import losses
from tfp_robust.evaluation import gradients
from tfp_robust import ArchitectureEnsemble

EPS = 0.5


def _check_constraints(x_adv, x, eps):
  x_adv = np.asarray(x_adv)
  assert x_adv.shape == x.shape and x_adv.dtype == np.float32
  assert np.all(np.abs(x_adv - x) <= eps + 1e-6)
  assert np.all(x_adv >= 0.0) and np.all(x_adv <= 1.0)


def _accuracy(ens, x, labels):
  return float(np.mean(ens.predict(x).numpy() == labels))


@pytest.fixture(scope='module')
def test_set(moons):
  return moons.x_test, moons.y_test


@pytest.fixture(scope='module')
def clean_accuracy(trained_net, test_set):
  accuracy = _accuracy(trained_net, *test_set)
  assert accuracy > 0.97  # The trained net must be worth attacking.
  return accuracy


@pytest.fixture(scope='module')
def perturbed_ensemble(trained_net):
  """Four nearby weight samples around the trained net, as a small BNN."""
  rng = np.random.RandomState(41)
  params = [p.numpy() + 0.05 * rng.normal(size=(4,) + tuple(p.shape[1:]))
            for p in trained_net.params]
  return ArchitectureEnsemble(trained_net.architecture, params, method='test')


def test_pgd_with_large_eps_fools_a_deterministic_net(trained_net, test_set,
                                                      clean_accuracy):
  x, labels = test_set
  x_adv = attacks.pgd(trained_net, x, labels, EPS, num_steps=20, seed=0)
  _check_constraints(x_adv, x, EPS)
  assert _accuracy(trained_net, x_adv, labels) < 0.05 < clean_accuracy


def test_fgsm_with_large_eps_stays_in_the_ball_and_hurts(trained_net,
                                                        test_set,
                                                        clean_accuracy):
  x, labels = test_set
  x_adv = attacks.fgsm(trained_net, x, labels, EPS)
  _check_constraints(x_adv, x, EPS)
  # A single full-size step overshoots a curved boundary, so FGSM is weaker
  # than PGD here, but it must still destroy most of the accuracy.
  assert _accuracy(trained_net, x_adv, labels) < 0.5 < clean_accuracy
  # One full step along the gradient's sign: each coordinate moves by eps
  # unless the box [0, 1] stops it.
  moved = np.abs(x_adv.numpy() - x)
  clipped = (x_adv.numpy() == 0.0) | (x_adv.numpy() == 1.0)
  assert np.all(np.isclose(moved, EPS, atol=1e-6) | clipped)


def test_random_sign_moves_every_coordinate_by_eps(trained_net, test_set,
                                                   clean_accuracy):
  x, labels = test_set
  x_adv = attacks.random_sign(x, EPS, seed=3).numpy()
  _check_constraints(x_adv, x, EPS)
  clipped = (x_adv == 0.0) | (x_adv == 1.0)
  assert np.all(np.isclose(np.abs(x_adv - x), EPS, atol=1e-6) | clipped)
  up = np.isclose(x_adv - x, EPS, atol=1e-6)
  down = np.isclose(x - x_adv, EPS, atol=1e-6)
  # Roughly half the unclipped moves go each way.
  assert 0.35 < up.sum() / (up.sum() + down.sum()) < 0.65
  assert _accuracy(trained_net, x_adv, labels) < clean_accuracy - 0.1


def test_pgd_and_fgsm_beat_random_noise_at_small_eps(trained_net, test_set):
  x, labels = test_set
  eps = 0.05
  pgd_accuracy = _accuracy(
      trained_net, attacks.pgd(trained_net, x, labels, eps, seed=1), labels)
  fgsm_accuracy = _accuracy(
      trained_net, attacks.fgsm(trained_net, x, labels, eps), labels)
  random_accuracy = _accuracy(
      trained_net, attacks.random_sign(x, eps, seed=1), labels)
  assert pgd_accuracy <= fgsm_accuracy + 0.02
  assert fgsm_accuracy < random_accuracy - 0.02


def test_zero_eps_returns_the_inputs(trained_net, test_set):
  x, labels = test_set
  np.testing.assert_array_equal(
      attacks.pgd(trained_net, x[:50], labels[:50], 0.0, num_steps=3), x[:50])
  np.testing.assert_array_equal(
      attacks.fgsm(trained_net, x[:50], labels[:50], 0.0), x[:50])
  np.testing.assert_array_equal(attacks.random_sign(x[:50], 0.0), x[:50])


def test_pgd_on_predictive_loss_fools_an_ensemble(perturbed_ensemble,
                                                  test_set):
  x, labels = test_set
  assert _accuracy(perturbed_ensemble, x, labels) > 0.95
  x_adv = attacks.pgd(perturbed_ensemble, x, labels, EPS, num_steps=20,
                      loss='predictive', seed=2)
  _check_constraints(x_adv, x, EPS)
  assert _accuracy(perturbed_ensemble, x_adv, labels) < 0.05


def test_pgd_details_and_restarts(perturbed_ensemble, test_set):
  x, labels = test_set[0][:200], test_set[1][:200]
  eps = 0.04
  one = attacks.pgd(perturbed_ensemble, x, labels, eps, num_steps=5,
                    restarts=1, seed=4, return_details=True)
  three = attacks.pgd(perturbed_ensemble, x, labels, eps, num_steps=5,
                      restarts=3, seed=4, return_details=True)
  for result in (one, three):
    _check_constraints(result.x_adv, x, eps)
    log_probs = perturbed_ensemble.log_probs(result.x_adv)
    np.testing.assert_allclose(
        result.loss.numpy(),
        losses.expected_cross_entropy(log_probs, labels).numpy(), rtol=1e-5)
    np.testing.assert_array_equal(
        result.misclassified.numpy(),
        perturbed_ensemble.predict(result.x_adv).numpy() != labels)
  # Restart 0 is the single run; more restarts never lose an example.
  wrong_1, wrong_3 = one.misclassified.numpy(), three.misclassified.numpy()
  assert np.all(wrong_3[wrong_1])
  kept = ~wrong_3
  assert np.all(three.loss.numpy()[kept] >= one.loss.numpy()[kept] - 1e-6)
  assert 0 < wrong_1.sum() < len(labels)


def test_same_seed_same_attack_other_seed_other_attack(trained_net, test_set):
  x, labels = test_set[0][:100], test_set[1][:100]
  first = attacks.pgd(trained_net, x, labels, 0.05, num_steps=3, seed=7)
  again = attacks.pgd(trained_net, x, labels, 0.05, num_steps=3, seed=7)
  other = attacks.pgd(trained_net, x, labels, 0.05, num_steps=3, seed=8)
  np.testing.assert_array_equal(first.numpy(), again.numpy())
  assert np.mean(first.numpy() != other.numpy()) > 0.1
  a = attacks.random_sign(x, 0.1, seed=7).numpy()
  np.testing.assert_array_equal(a, attacks.random_sign(x, 0.1, seed=7).numpy())
  np.testing.assert_array_equal(
      a, attacks.random_sign(x, 0.1, seed=[7, 0]).numpy())
  b = attacks.random_sign(x, 0.1, seed=9).numpy()
  assert np.mean(a != b) > 0.3


def test_numpy_integer_seed_acts_like_int(test_set):
  x = test_set[0][:20]
  for seed in np.arange(7, 9):  # np.int64 seeds, e.g. from a sweep.
    np.testing.assert_array_equal(
        attacks.random_sign(x, 0.1, seed=seed).numpy(),
        attacks.random_sign(x, 0.1, seed=int(seed)).numpy())


def test_strongest_keeps_any_candidate_that_fools(perturbed_ensemble,
                                                  test_set):
  x, labels = test_set[0][:200], test_set[1][:200]
  eps = 0.05
  adv = attacks.pgd(perturbed_ensemble, x, labels, eps, num_steps=5,
                    loss='predictive', seed=6).numpy()
  first_half = np.arange(200)[:, None] < 100
  # Each candidate attacks only half of the examples; together they cover all.
  candidates = [attacks.random_sign(x, eps, seed=5),
                np.where(first_half, adv, x), np.where(first_half, x, adv)]
  best = attacks.strongest(perturbed_ensemble, x, labels, candidates)
  _check_constraints(best, x, eps)
  wrong = [perturbed_ensemble.predict(c).numpy() != labels
           for c in candidates]
  union = np.any(wrong, axis=0)
  np.testing.assert_array_equal(
      perturbed_ensemble.predict(best).numpy() != labels, union)
  assert union.sum() > max(w.sum() for w in wrong) + 5


def test_pgd_on_margin_loss(trained_net, test_set):
  x, labels = test_set
  x_adv = attacks.pgd(trained_net, x, labels, EPS, num_steps=20,
                      loss='margin', seed=0)
  _check_constraints(x_adv, x, EPS)
  assert _accuracy(trained_net, x_adv, labels) < 0.05


def test_apgd_cascade_is_at_least_as_strong_as_pgd(perturbed_ensemble,
                                                   test_set):
  x, labels = test_set[0][:200], test_set[1][:200]
  eps = 0.05
  pgd_adv = attacks.pgd(perturbed_ensemble, x, labels, eps, num_steps=10,
                        restarts=2, seed=[0, 1])
  strong = apgd.apgd_cascade(perturbed_ensemble, x, labels, eps,
                             num_steps=50, restarts=2, seed=0)
  _check_constraints(strong, x, eps)
  assert (_accuracy(perturbed_ensemble, strong, labels) <=
          _accuracy(perturbed_ensemble, pgd_adv, labels))


@pytest.mark.parametrize('attack', [
    lambda ens, x, y, eps: attacks.fgsm(ens, x, y, eps),
    lambda ens, x, y, eps: attacks.pgd(ens, x, y, eps),
    lambda ens, x, y, eps: attacks.random_sign(x, eps),
], ids=['fgsm', 'pgd', 'random_sign'])
def test_attacks_refuse_bad_arguments(attack, trained_net, test_set):
  x, labels = test_set[0][:10], test_set[1][:10]
  with pytest.raises(ValueError, match=r'eps=-0\.1 is invalid: it must be a finite number >= 0\.0'):
    attack(trained_net, x, labels, -0.1)
  with pytest.raises(ValueError, match=r'must lie in \[0, 1\]'):
    attack(trained_net, x * 255.0 + 1.0, labels, 0.1)


def test_gradient_attacks_refuse_bad_shapes_and_settings(trained_net,
                                                         test_set):
  x, labels = test_set[0][:10], test_set[1][:10]
  for attack in (attacks.fgsm, attacks.pgd):
    with pytest.raises(ValueError, match=r'Inputs must have shape \[B, 2\]'):
      attack(trained_net, np.concatenate([x, x], 1), labels, 0.1)
    with pytest.raises(ValueError, match=r'Labels must have shape \[10\]'):
      attack(trained_net, x, labels[:5], 0.1)
    with pytest.raises(ValueError, match="Unknown loss 'l2'"):
      attack(trained_net, x, labels, 0.1, loss='l2')
  with pytest.raises(ValueError, match='num_steps=0 is invalid'):
    attacks.pgd(trained_net, x, labels, 0.1, num_steps=0)
  with pytest.raises(ValueError, match='restarts=0 is invalid'):
    attacks.pgd(trained_net, x, labels, 0.1, restarts=0)
  with pytest.raises(ValueError, match='step_size must be >= 0'):
    attacks.pgd(trained_net, x, labels, 0.1, step_size=-1.0)


def test_project_clips_to_ball_and_box():
  x = tf.constant([[0.0, 0.5, 1.0]])
  far = tf.constant([[-1.0, 0.9, 2.0]])
  np.testing.assert_allclose(attacks.project(far, x, 0.2).numpy(),
                             [[0.0, 0.7, 1.0]], atol=1e-7)


def test_pgd_keeping_the_best_iterate_is_at_least_as_strong(trained_net, moons):
  x, y = moons.x_test[:200], moons.y_test[:200]
  last = attacks.pgd(trained_net, x, y, 0.05, num_steps=10, seed=3)
  best = attacks.pgd(trained_net, x, y, 0.05, num_steps=10, seed=3,
                     keep_best_iterate=True)
  last_acc = float(np.mean(trained_net.predict(last).numpy() == y))
  best_acc = float(np.mean(trained_net.predict(best).numpy() == y))
  assert best_acc <= last_acc
  assert float(np.max(np.abs(best - x))) <= 0.05 + 1e-6


@pytest.mark.parametrize('keep_best', [False, True])
def test_compiled_pgd_loop_equals_the_step_by_step_loop(perturbed_ensemble,
                                                       test_set, keep_best):
  x, labels = test_set[0][:200], test_set[1][:200]
  kwargs = dict(num_steps=10, restarts=2, loss='predictive', seed=[5, 6],
                keep_best_iterate=keep_best)
  compiled = attacks.pgd(perturbed_ensemble, x, labels, 0.1, **kwargs)
  stepwise = attacks.pgd(perturbed_ensemble, x, labels, 0.1, compiled=False,
                         **kwargs)
  np.testing.assert_allclose(compiled.numpy(), stepwise.numpy(), atol=1e-6)
  assert np.abs(compiled.numpy() - x).max() > 0.05  # It did move.


def test_a_repeated_attack_of_the_same_shapes_is_not_traced_again(
    trained_net, test_set, monkeypatch):
  """The compiled loops are cached on the ensemble: a second PGD, APGD or
  FGSM call with the same shapes and settings (other images, eps and seed)
  runs the loop traced by the first. Traces are counted on the Python side:
  the loss-and-gradient step runs in Python only while a loop is traced."""
  traced = []
  step = attack_batches.loss_gradient_prediction
  monkeypatch.setattr(attack_batches, 'loss_gradient_prediction',
                      lambda *args, **kwargs: traced.append('loop') or step(
                          *args, **kwargs))
  gradient = gradients.expected_loss_and_gradient
  monkeypatch.setattr(gradients, 'expected_loss_and_gradient',
                      lambda *args: traced.append('fgsm') or gradient(*args))
  # A new ensemble object: nothing traced for it yet.
  fresh = ArchitectureEnsemble(trained_net.architecture, trained_net.params,
                               jit_compile=False)
  x, labels = test_set
  first, second = slice(0, 64), slice(64, 128)
  calls = {
      'pgd': lambda part, eps, seed: attacks.pgd(
          fresh, x[part], labels[part], eps, num_steps=3, seed=seed),
      'apgd': lambda part, eps, seed: apgd.apgd(
          fresh, x[part], labels[part], eps, num_steps=3, seed=seed),
      'fgsm': lambda part, eps, seed: attacks.fgsm(
          fresh, x[part], labels[part], eps),
  }
  for name, call in calls.items():
    before = len(traced)
    call(first, 0.1, 0)
    assert len(traced) > before, name  # The first call traces its loop.
    before = len(traced)
    moved = call(second, 0.2, 1).numpy()
    assert len(traced) == before, (name, traced[before:])
    assert np.abs(moved - x[second]).max() > 0.1  # It ran, with eps 0.2.
  loop = attacks.pgd_loop(fresh, 'expected', 3)
  assert loop.experimental_get_tracing_count() == 1
  # Another setting is another loop.
  attacks.pgd(fresh, x[first], labels[first], 0.1, num_steps=4)
  assert attacks.pgd_loop(fresh, 'expected', 4) is not loop
