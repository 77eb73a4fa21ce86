"""Reports: summary tables."""

import os


from tfp_robust import reports

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
