"""Figure 4's claims measured on a grid table (`grid.answers`)."""

import math

import numpy as np
import pandas as pd
import pytest

from tfp_robust.experiments.grid import answers


def test_pareto_domination_needs_both_axes_and_one_strictly():
  point = [[0.8, 0.3]]
  assert answers.dominated_fraction(point, [[0.9, 0.4]]) == 1.0
  assert answers.dominated_fraction(point, [[0.8, 0.4]]) == 1.0
  assert answers.dominated_fraction(point, [[0.8, 0.3]]) == 0.0  # equal
  assert answers.dominated_fraction(point, [[0.9, 0.2]]) == 0.0  # a trade
  assert answers.dominated_fraction([[0.5, 0.5], [0.95, 0.1]],
                                    [[0.9, 0.6]]) == 0.5
  assert math.isnan(answers.dominated_fraction(point, np.zeros((0, 2))))


def _frame():
  # HMC: robustness rises with accuracy and width and sits above SGD; VI:
  # robustness falls with accuracy; SGD: three points on a trade-off.
  rows = []
  for i, (acc, width) in enumerate([(0.80, 32), (0.85, 32), (0.90, 64),
                                    (0.95, 64)]):
    rows.append(dict(method='hmc', dataset='mnist', hidden=width,
                     clean_accuracy=acc, paper_pgd_expected_acc=0.2 + 0.1 * i,
                     paper_fgsm_expected_softmax_robustness=0.9 - 0.1 * i))
    rows.append(dict(method='vi', dataset='mnist', hidden=width,
                     clean_accuracy=acc, paper_pgd_expected_acc=0.3 - 0.1 * i,
                     paper_fgsm_expected_softmax_robustness=0.5))
  for acc, pgd in [(0.8, 0.15), (0.9, 0.1), (0.97, 0.05)]:
    rows.append(dict(method='sgd', dataset='mnist', hidden=64,
                     clean_accuracy=acc, paper_pgd_expected_acc=pgd,
                     paper_fgsm_expected_softmax_robustness=0.5))
  return pd.DataFrame(rows)


def test_answers_measure_each_claim():
  table = pd.DataFrame(answers.answers(_frame(), ('paper',)))
  pgd = table[table['measure'] == 'adversarial accuracy (PGD)'].set_index(
      'method')
  assert pgd.loc['hmc', 'spearman_accuracy'] == pytest.approx(1.0)
  assert pgd.loc['vi', 'spearman_accuracy'] == pytest.approx(-1.0)
  assert pgd.loc['hmc', 'spearman_width'] > 0.8
  assert pgd.loc['hmc', 'median_by_width'] == '32: 0.250; 64: 0.450'
  # HMC's points are never below SGD's trade-off; SGD's first two points are
  # beaten by HMC's (0.8, 0.2) and (0.9, 0.4), its most accurate is not.
  assert pgd.loc['hmc', 'dominated_by_sgd'] == 0.0
  assert pgd.loc['sgd', 'dominated_by_hmc'] == pytest.approx(2 / 3)
  assert pgd.loc['hmc', 'cells'] == 4 and pgd.loc['sgd', 'cells'] == 3
  # A constant measure has no rank correlation.
  soft = table[table['measure'] == 'softmax robustness (FGSM)'].set_index(
      'method')
  assert math.isnan(soft.loc['vi', 'spearman_accuracy'])
  assert soft.loc['hmc', 'spearman_accuracy'] == pytest.approx(-1.0)


def test_a_protocol_no_cell_ran_has_no_rows():
  assert answers.answers(_frame(), ('strong',)) == []
  rows = answers.answers(_frame(), ('paper', 'strong'))
  assert {r['protocol'] for r in rows} == {'paper'}


def test_a_measure_the_protocols_share_is_given_once():
  frame = _frame()
  frame['strong_fgsm_expected_softmax_robustness'] = frame[
      'paper_fgsm_expected_softmax_robustness']
  frame['strong_worst_case_all_acc'] = frame['paper_pgd_expected_acc'] / 2
  rows = pd.DataFrame(answers.answers(frame, ('paper', 'strong')))
  per = rows.groupby(['protocol', 'measure']).size()
  assert set(per.index) == {
      ('paper', 'softmax robustness (FGSM)'),
      ('paper', 'adversarial accuracy (PGD)'),
      ('strong', 'adversarial accuracy (worst case)')}
  # Not equal cell for cell: given under each protocol.
  frame.loc[0, 'strong_fgsm_expected_softmax_robustness'] = 0.0
  rows = pd.DataFrame(answers.answers(frame, ('paper', 'strong')))
  assert len(rows[rows['measure'] == 'softmax robustness (FGSM)']) == 6
