"""Reports: summary tables."""

import os


from tfp_robust.reports import tables as reports

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_summary_table_has_one_row_per_method():
  rows = [dict(method=m, num_samples=s, clean_accuracy=0.9, attack=a, loss=l,
               eps=0.1, adversarial_accuracy=acc)
          for m, s in (('sgd', 1), ('hmc', 10))
          for a, l, acc in (('random', 'none', 0.8), ('fgsm', 'expected', 0.2))]
  table = reports.summary_table(rows)
  assert list(table['method']) == ['sgd', 'hmc']
  assert list(table.columns) == ['method', 'samples', 'clean_acc',
                                 'random_acc', 'fgsm_expected_acc']


def test_curve_band_brackets_the_true_robust_accuracy():
  def row(method, protocol, attack, loss, eps, acc):
    return dict(method=method, protocol=protocol, attack=attack, loss=loss,
                eps=eps, clean_accuracy=0.95, adversarial_accuracy=acc)
  rows = [row('hmc', 'paper', 'random', 'none', 0.1, 0.9),
          row('hmc', 'paper', 'pgd', 'expected', 0.1, 0.4),
          row('hmc', 'paper', 'certified', 'ibp', 0.1, 0.05),
          row('hmc', 'strong', 'apgd', 'ce+dlr', 0.1, 0.2),
          row('hmc', 'strong', 'worst_case', 'all', 0.1, 0.15),
          row('hmc', 'strong', 'certified', 'ibp', 0.1, 0.05),
          row('hmc', 'paper', 'pgd', 'expected', 0.0, 0.95),
          row('vi', 'paper', 'pgd', 'expected', 0.1, 0.3)]
  band = reports.curve_band(rows).set_index(['method', 'eps'])
  hmc = band.loc[('hmc', 0.1)]
  assert hmc['paper_pgd'] == 0.4 and hmc['certified'] == 0.05
  # Random noise is not an attack: its 0.9 never counts, nor the bound.
  assert hmc['strongest'] == 0.15
  assert hmc['strongest_by'] == 'strong/worst_case/all'
  assert abs(hmc['gap'] - 0.10) < 1e-12
  assert list(band.index) == [('hmc', 0.1), ('hmc', 0.0), ('vi', 0.1)]
  # No bound (a backend without IBP): no gap, not a zero.
  vi = band.loc[('vi', 0.1)]
  assert vi['strongest'] == 0.3 and vi['certified'] != vi['certified']
  assert vi['gap'] != vi['gap']
