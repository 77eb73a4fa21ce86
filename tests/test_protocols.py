"""`protocols.evaluate`: which attacks each protocol runs, and at eps = 0."""

import numpy as np
import pytest

from tfp_robust.attacks import apgd
from tfp_robust.attacks import gradient as attacks
from tfp_robust.evaluation import checks
from tfp_robust.core import config_lib
from tfp_robust import networks
from tfp_robust.evaluation import protocols
from tfp_robust.attacks import square
from tfp_robust.ensemble import ArchitectureEnsemble

from conftest import random_params

TINY = networks.Architecture.mlp(2, [8], 2)


def _ensemble(num_samples, architecture=TINY):
  return ArchitectureEnsemble(
      architecture, random_params(architecture, num_samples, scale=1.0))


def _never(*args, **kwargs):
  raise AssertionError('an attack ran at eps = 0')


@pytest.fixture(name='no_attacks')
def _no_attacks(monkeypatch):
  for module, name in ((attacks, 'random_sign'), (attacks, 'fgsm'),
                       (attacks, 'pgd'), (apgd, 'apgd'),
                       (apgd, 'apgd_cascade'), (square, 'square')):
    monkeypatch.setattr(module, name, _never)


@pytest.mark.parametrize('protocol', protocols.PROTOCOLS)
def test_at_eps_zero_every_row_is_the_clean_accuracy_without_attacking(
    protocol, no_attacks, moons, trained_net):
  del no_attacks
  x, y = moons.x_test[:40], moons.y_test[:40]
  config = config_lib.attack_section(protocol=protocol, eps=(0.0,))
  rows = protocols.evaluate(_ensemble(3), x, y, config, surrogate=trained_net)
  clean = rows[0]['clean_accuracy']
  assert 0.0 < clean < 1.0  # A random net: neither all right nor all wrong.
  for row in rows:  # The certified bound is computed in float32.
    assert row['adversarial_accuracy'] == pytest.approx(clean), row['attack']
    assert row['eps'] == 0.0


@pytest.mark.parametrize('num_samples,surrogate,transfers', [
    (3, True, {'transfer_half', 'transfer_surrogate'}),
    (3, False, {'transfer_half'}),
    (1, True, {'transfer_surrogate'}),
    (1, False, set())])
def test_strong_protocol_leaves_out_transfers_without_a_source(
    num_samples, surrogate, transfers, no_attacks, moons, trained_net):
  del no_attacks
  config = config_lib.attack_section(protocol='strong', eps=(0.0,))
  rows = protocols.evaluate(_ensemble(num_samples), moons.x_test[:10],
                            moons.y_test[:10], config,
                            surrogate=trained_net if surrogate else None)
  names = {row['attack'] for row in rows}
  assert names - transfers == {'random', 'fgsm', 'pgd', 'apgd', 'square',
                               'worst_case', 'certified'}
  assert names & {'transfer_half', 'transfer_surrogate'} == transfers


def test_targeted_apgd_is_named_in_its_row_and_refused_without_classes(
    no_attacks, moons):
  del no_attacks
  five = _ensemble(2, networks.Architecture.mlp(2, [8], 5))
  x = moons.x_test[:10]
  config = config_lib.attack_section(protocol='strong', eps=(0.0,),
                                     apgd_targets=4)
  rows = protocols.evaluate(five, x, five.predict(x).numpy(), config)
  assert [r['loss'] for r in rows if r['attack'] == 'apgd'] == [
      'ce+dlr+targeted']
  # Two classes: refused before any attack runs (they would fail the test).
  with pytest.raises(ValueError, match='apgd_targets=4'):
    protocols.evaluate(_ensemble(3), x, moons.y_test[:10], config)


def test_rows_reach_the_checks_under_the_keys_they_read():
  # Square runs on a margin and the transfer attacks on the predictive
  # loss, but the checks know them by name: a white-box attack that loses
  # to either must be flagged (it never was: the keys were square_margin
  # and transfer_half_predictive).
  rows = [dict(attack='pgd', loss='predictive', adversarial_accuracy=0.5),
          dict(attack='square', loss='margin', adversarial_accuracy=0.1),
          dict(attack='transfer_half', loss='predictive',
               adversarial_accuracy=0.2),
          dict(attack='certified', loss='crown', adversarial_accuracy=0.0)]
  findings = checks.attack_findings(
      {protocols._key(r): r['adversarial_accuracy'] for r in rows}, 0.1)  # pylint: disable=protected-access
  failed = {f.name for f in findings if not f.passed}
  assert failed == {'white_box_beats_square', 'white_box_beats_transfer_half'}
  assert 'certified_below_attacks' in {f.name for f in findings}
