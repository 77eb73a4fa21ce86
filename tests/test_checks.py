"""Evaluation sanity checks: they pass on a sound model and flag broken ones."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust.evaluation import checks
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.fit import models
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
  assert findings['random_weaker_than_every_attack'].passed
  assert findings['eps_one_breaks_everything'].passed
  assert findings['outputs_not_probabilities'].passed
  assert findings['softmax_not_saturated'].passed
  assert all(f.passed for f in findings.values()), checks.format_findings(
      list(findings.values()))
  text = checks.format_findings(list(findings.values()))
  assert 'log_probs_normalised' in text and 'random noise leaves' in text


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
  assert not findings['softmax_not_saturated'].passed
  assert findings['softmax_not_saturated'].statistics['saturated_frac'] > 0.9
  assert np.isclose(saturated.accuracy(x[correct], y[correct]), 1.0)


def _mlp(params, x):
  w0, b0, w1, b1, w2, b2 = params
  h = tf.nn.relu(x @ w0 + b0)
  return tf.nn.relu(h @ w1 + b1) @ w2 + b2


@tf.custom_gradient
def _reversed(x):
  return tf.identity(x), lambda upstream: -upstream


MASKED = {
    # Logits x 1000 saturate the softmax: cross-entropy gradients vanish.
    'scaled_logits': lambda p, x: 1000.0 * _mlp(p, x),
    # Rounding the input to {0, 1}: the gradient is not connected at all.
    'rounded_input': lambda p, x: _mlp(p, tf.round(x)),
    # A layer that reverses the gradient: attacks walk the wrong way.
    'reversed_gradient': lambda p, x: _mlp(p, _reversed(x)),
}


@pytest.mark.parametrize('kind,fires', [
    ('scaled_logits', {'nonzero_gradients_expected',
                       'nonzero_gradients_predictive',
                       'softmax_not_saturated'}),
    ('rounded_input', {'nonzero_gradients_expected',
                       'nonzero_gradients_predictive',
                       'white_box_beats_square'}),
    ('reversed_gradient', {'white_box_beats_square',
                           'random_weaker_than_every_attack'}),
])
def test_checks_fire_on_deliberately_masked_models(net_and_data, kind, fires):
  net, x, y = net_and_data
  masked = ensemble_lib.FunctionEnsemble(MASKED[kind], net.params, (2,), 2)
  correct = masked.predict(x).numpy() == y
  findings = _by_name(checks.run_checks(masked, x[correct], y[correct],
                                        eps=0.1, pgd_steps=10))
  failed = {name for name, f in findings.items() if not f.passed}
  assert fires <= failed, checks.format_findings(list(findings.values()))


def test_double_softmax_outputs_are_flagged(net_and_data):
  net, x, y = net_and_data
  twice = ensemble_lib.FunctionEnsemble(
      lambda p, x: tf.nn.softmax(_mlp(p, x)), net.params, (2,), 2)
  finding = _by_name(checks.gradient_findings(twice, x, y))[
      'outputs_not_probabilities']
  assert not finding.passed and 'never exceeds 0.7311' in finding.evidence


def test_attack_and_curve_findings_from_numbers():
  ok = checks.attack_findings({'random': 0.9, 'fgsm_expected': 0.5,
                               'pgd_expected': 0.3, 'apgd': 0.2,
                               'square': 0.35, 'certified': 0.1}, 0.1, 500)
  assert all(f.passed for f in ok) and len(ok) == 4
  bad = _by_name(checks.attack_findings(
      {'random': 0.4, 'fgsm_expected': 0.5, 'pgd_expected': 0.6,
       'square': 0.2, 'certified': 0.3}, 0.1, 500))
  assert not bad['random_weaker_than_every_attack'].passed
  assert not bad['iterative_beats_single_step_expected'].passed
  assert not bad['white_box_beats_square'].passed
  assert not bad['certified_below_attacks'].passed
  curve = _by_name(checks.curve_findings({0.0: 0.98, 0.1: 0.5, 0.2: 0.7,
                                          1.0: 0.3}, 500))
  assert not curve['accuracy_falls_with_eps'].passed
  assert not curve['eps_one_breaks_everything'].passed


def test_saturation_statistics_tell_a_saturated_posterior():
  from conftest import random_params  # pylint: disable=g-import-not-at-top
  from tfp_robust.ensemble import ArchitectureEnsemble  # pylint: disable=g-import-not-at-top
  architecture = networks.Architecture.mlp(20, [64], 3)
  x = np.random.RandomState(0).uniform(0, 1, size=(40, 20)).astype(np.float32)
  stats = {}
  for scale in (0.1, 40.0):
    ensemble = ArchitectureEnsemble(architecture, random_params(
        architecture, 1, seed=1, scale=scale))
    # Labels the net predicts: where its softmax is one-hot in float32 the
    # cross-entropy of the label has an exactly zero gradient.
    labels = ensemble.predict(x).numpy()
    stats[scale] = checks.saturation_statistics(ensemble, x, labels)
  calm, saturated = stats[0.1], stats[40.0]
  assert calm['saturated_frac'] == 0.0
  assert calm['grad_zero_frac_expected'] == 0.0
  assert saturated['logit_gap_median'] > checks.SATURATION_GAP
  assert saturated['saturated_frac'] > 0.5
  assert saturated['grad_zero_frac_expected'] >= saturated['saturated_frac']
  assert saturated['grad_zero_frac_predictive'] > 0.5
  assert calm['weight_std'] == pytest.approx(0.1, rel=0.1)
  assert saturated['weight_std_across_samples'] == 0.0  # One sample.
