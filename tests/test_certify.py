"""Interval bounds: sound for every sample, tight at eps 0, void at eps 1."""

import numpy as np
import pytest

from conftest import SMALL_CONV
from conftest import random_params
from tfp_robust import ArchitectureEnsemble
from tfp_robust import apgd
from tfp_robust import certify
from tfp_robust import ensemble as ensemble_lib
from tfp_robust import networks


@pytest.mark.parametrize('arch', [networks.Architecture.mlp(6, [8, 8], 3),
                                  SMALL_CONV], ids=['mlp', 'conv'])
def test_bounds_contain_random_points_of_the_ball_for_every_sample(arch):
  params = random_params(arch, 5, seed=1)
  ens = ArchitectureEnsemble(arch, params)
  rng = np.random.RandomState(2)
  x = rng.uniform(size=(4,) + arch.input_shape).astype(np.float32)
  eps = 0.1
  low, high = networks.interval_forward(
      arch, ens.params, np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1))
  p_low, p_high = certify.predictive_bounds(ens, x, eps)
  for _ in range(20):
    point = np.clip(x + rng.uniform(-eps, eps, size=x.shape), 0, 1)
    logits = networks.forward(arch, ens.params, point.astype(np.float32))
    assert np.all(logits >= low - 1e-4) and np.all(logits <= high + 1e-4)
    probs = np.exp(ens.predictive_log_probs(point).numpy())
    assert np.all(probs >= p_low - 1e-5) and np.all(probs <= p_high + 1e-5)


def test_certified_accuracy_at_zero_and_one(trained_net, moons):
  x, y = moons.x_test, moons.y_test
  assert certify.certified_accuracy(trained_net, x, y, 0.0) == pytest.approx(
      trained_net.accuracy(x, y))
  assert certify.certified_accuracy(trained_net, x, y, 1.0) == 0.0


def test_certified_never_exceeds_attacked_accuracy(trained_net, moons):
  x, y = moons.x_test, moons.y_test
  ens = ArchitectureEnsemble(trained_net.architecture,
                             [np.repeat(p, 3, 0) for p in trained_net.params])
  for eps in (0.01, 0.03):
    certified = certify.certified(ens, x, y, eps)
    attacked = ens.predict(apgd.apgd(ens, x, y, eps, num_steps=50)).numpy()
    # No certified image can be broken by any attack.
    assert np.all(attacked[certified] == y[certified])
    assert certified.mean() <= np.mean(attacked == y)


def test_other_backends_say_certification_needs_layers():
  fn = ensemble_lib.FunctionEnsemble(lambda p, x: x @ p, np.ones((2, 2, 3),
                                                                 np.float32),
                                     (2,), 3)
  with pytest.raises(NotImplementedError, match='interval bound propagation'):
    certify.certified_accuracy(fn, np.zeros((1, 2), np.float32), [0], 0.1)
