"""Evaluation sanity checks: they pass on a sound model and flag broken ones."""

import numpy as np
import pytest

from tfp_robust import checks
from tfp_robust import ensemble as ensemble_lib
from tfp_robust import models
from tfp_robust import networks


@pytest.fixture(scope='module')
def net_and_data(moons):
  architecture = networks.Architecture.mlp(2, [16, 16], 2)
  net = models.train_deterministic(
      architecture, moons.x_train, moons.y_train,
      models.TrainConfig(epochs=40, batch_size=64, learning_rate=1e-2, seed=0))
  return net, moons.x_test[:100], moons.y_test[:100]


def _by_name(findings):
  return {f.name: f for f in findings}


def test_sound_model_passes_interface_checks(net_and_data):
  net, x, y = net_and_data
  findings = _by_name(checks.run_checks(net, x, y, eps=0.1, pgd_steps=10))
  assert findings['log_probs_normalised'].passed
  assert findings['nonzero_gradients_expected'].passed
  assert findings['gradient_attack_beats_random'].passed
  assert findings['unbounded_attack_succeeds'].passed
  text = checks.format_findings(list(findings.values()))
  assert 'log_probs_normalised' in text and 'accuracy under random signs' in text


def test_saturated_model_is_flagged_for_zero_gradients(net_and_data):
  net, x, y = net_and_data
  # Scaling the logit layer by 1e4 saturates the softmax in float32: the
  # loss gradients underflow to exactly zero, a classic masking symptom.
  params = [p.numpy() for p in net.params]
  params[-2] = params[-2] * 1e4
  params[-1] = params[-1] * 1e4
  saturated = ensemble_lib.ArchitectureEnsemble(net.architecture, params)
  correct = saturated.predict(x).numpy() == y
  findings = _by_name(checks.run_checks(saturated, x[correct], y[correct],
                                        eps=0.1, pgd_steps=5))
  assert not findings['nonzero_gradients_expected'].passed
  assert np.isclose(saturated.accuracy(x[correct], y[correct]), 1.0)
