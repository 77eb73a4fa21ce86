"""The paper's numbers: as printed in its text, and set beside ours."""

import os
import re

import pytest

from tfp_robust.experiments import paper_numbers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER = os.path.join(REPO, '..', 'shared', 'paper',
                     'robustness_of_bnns_to_gradient_attacks.txt')


def _printed_rows(first_cell):
  """Tab-separated rows of the paper's text whose first cell matches."""
  if not os.path.exists(PAPER):
    pytest.fail(f'the paper text {PAPER} is missing: the suite runs with '
                'the shared folder beside the repository (../shared), as '
                'README command (b) and CI do')
  with open(PAPER, encoding='utf-8') as f:
    text = re.sub(r'</?b>', '', f.read())
  rows = {}
  for line in text.splitlines():
    cells = line.split('\t')
    if len(cells) == 4 and re.fullmatch(first_cell, cells[0]):
      rows[cells[0]] = tuple(float(c) for c in cells[1:])
  return rows


def test_table1_is_the_papers():
  printed = _printed_rows(r'(MNIST|Fashion)/(HMC|VI)')
  names = {'mnist': 'MNIST', 'fashion_mnist': 'Fashion'}
  assert len(printed) == len(paper_numbers.TABLE1.rows) == 4
  for (dataset, method), values in paper_numbers.TABLE1.rows.items():
    assert printed[f'{names[dataset]}/{method.upper()}'] == values


def test_table2_is_the_papers_in_fractions():
  printed = _printed_rows(r'(Deterministic|Ensemble|Bayesian) NN')
  table = paper_numbers.TABLE2
  assert len(printed) == len(table.rows) == 3
  for (_, method), values in table.rows.items():
    assert tuple(v * 100 for v in values) == pytest.approx(
        printed[table.methods[method]])


def test_beside_puts_the_papers_value_after_each_of_our_columns():
  ours = [{'method': 'hmc', 'random_acc': 0.9, 'fgsm_expected_acc': 0.2,
           'pgd_expected_acc': 0.1, 'clean_acc': 0.97},
          {'method': 'sgd', 'random_acc': 0.5},  # not in Table 1: left out
          {'method': 'vi', 'random_acc': 0.8}]   # columns not measured: None
  rows = paper_numbers.beside(paper_numbers.TABLE1, 'mnist', ours)
  assert [r['method'] for r in rows] == ['hmc (HMC)', 'vi (VI)']
  assert list(rows[0]) == ['method', 'random', 'random (paper)', 'FGSM',
                           'FGSM (paper)', 'PGD', 'PGD (paper)']
  assert rows[0]['PGD'] == 0.1 and rows[0]['PGD (paper)'] == 0.970
  assert rows[1]['FGSM'] is None and rows[1]['FGSM (paper)'] == 0.936
  assert paper_numbers.beside(paper_numbers.TABLE1, 'cifar10', ours) == []


def test_beside_adds_our_bounds_after_the_papers_columns():
  # A strong-protocol summary: the worst case and the certified accuracy
  # follow the paper's columns; a paper-protocol one has no worst case.
  ours = [{'method': 'hmc', 'pgd_expected_acc': 0.1,
           'worst_case_all_acc': 0.002, 'certified_ibp_acc': 0.0},
          {'method': 'vi', 'pgd_expected_acc': 0.2,
           'worst_case_all_acc': None, 'certified_ibp_acc': 0.0}]
  rows = paper_numbers.beside(paper_numbers.TABLE1, 'mnist', ours)
  assert list(rows[0])[-2:] == ['worst case, every attack (ours only)',
                                'certified (ours only)']
  assert rows[0]['worst case, every attack (ours only)'] == 0.002
  assert rows[1]['worst case, every attack (ours only)'] is None
  paper_only = paper_numbers.beside(
      paper_numbers.TABLE1, 'mnist',
      [{'method': 'hmc', 'pgd_expected_acc': 0.1, 'certified_ibp_acc': 0.0}])
  assert list(paper_only[0])[-1] == 'certified (ours only)'
  assert 'worst case, every attack (ours only)' not in paper_only[0]
