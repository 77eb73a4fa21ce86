"""Figure 4's questions, answered from the grid table with numbers.

The paper reads three claims off Figure 4: the BNN points dominate the
deterministic ones, and an HMC net's robustness grows with its accuracy and
with its width. For every dataset, protocol and measure in the table (the
paper's softmax robustness under FGSM, and adversarial accuracy: PGD under
the paper's protocol, the per-image worst case under the strong one) this
module measures each claim:

- `dominated`: the fraction of one method's points that some point of the
  other method Pareto-dominates in the (clean accuracy, measure) plane (at
  least as good in both, better in one), both ways round;
- `spearman_accuracy`: Spearman's rank correlation of the measure with
  clean accuracy, per method;
- `median_by_width` and `spearman_width`: the measure's median at each
  hidden width, and its rank correlation with width, per method.
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np

BNNS = ('hmc', 'vi')


def measures(protocol: str) -> Tuple[Tuple[str, str], ...]:
  """(column, name) of the measures Figure 4 plots for `protocol`, in the
  columns `grid.runner` writes (<protocol>_<attack>_<loss>_<what>)."""
  accuracy = (f'{protocol}_pgd_expected_acc' if protocol == 'paper' else
              f'{protocol}_worst_case_all_acc')
  return ((f'{protocol}_fgsm_expected_softmax_robustness',
           'softmax robustness (FGSM)'),
          (accuracy, 'adversarial accuracy (PGD)' if protocol == 'paper'
           else 'adversarial accuracy (worst case)'))


def dominated_fraction(points: np.ndarray, others: np.ndarray) -> float:
  """The fraction of `points` (rows of (accuracy, measure)) that some row of
  `others` Pareto-dominates; NaN when either is empty."""
  points, others = np.asarray(points, float), np.asarray(others, float)
  if not len(points) or not len(others):
    return float('nan')
  at_least = (others[None, :, :] >= points[:, None, :]).all(-1)
  better = (others[None, :, :] > points[:, None, :]).any(-1)
  return float((at_least & better).any(1).mean())


def _spearman(a, b) -> float:
  import pandas as pd  # pylint: disable=g-import-not-at-top
  a, b = pd.Series(np.asarray(a, float)), pd.Series(np.asarray(b, float))
  if len(a) < 3 or a.nunique() < 2 or b.nunique() < 2:
    return float('nan')
  return float(a.corr(b, method='spearman'))


def answers(frame, protocols: Sequence[str]) -> List[Dict]:
  """One row per (dataset, protocol, measure, method): the numbers above.

  Args:
    frame: the merged grid table (`grid.merge.table`).
    protocols: the protocols the grid ran.

  Returns:
    Rows with `dataset`, `protocol`, `measure`, `method`, `cells`,
    `median`, `dominated_by_sgd` (BNNs) or `dominated_by_hmc` and
    `dominated_by_vi` (SGD), `spearman_accuracy`, `spearman_width` and
    `median_by_width` ('width: median; ...'). Measures whose column the
    table lacks (a protocol no cell ran, or several radii per cell) are
    left out, and a measure equal cell for cell to one already given (the
    FGSM softmax robustness is the same attack under both protocols) is
    given once, under the first protocol.
  """
  rows = []
  for dataset in dict.fromkeys(frame['dataset']):
    data = frame[frame['dataset'] == dataset]
    given = {}  # measure name -> its values, to give a repeated one once
    for protocol in protocols:
      for column, name in measures(protocol):
        if column not in data.columns:
          continue
        values = data[column].to_numpy(float)
        if name in given and np.array_equal(values, given[name],
                                            equal_nan=True):
          continue
        given[name] = values
        rated = data.dropna(subset=[column, 'clean_accuracy'])
        columns = ['clean_accuracy', column]
        plane = {m: rated[rated['method'] == m][columns].values
                 for m in dict.fromkeys(rated['method'])}
        for method, points in plane.items():
          part = rated[rated['method'] == method]
          row = {'dataset': dataset, 'protocol': protocol, 'measure': name,
                 'method': method, 'cells': len(part),
                 'median': float(part[column].median())}
          if method in BNNS:
            row['dominated_by_sgd'] = dominated_fraction(
                points, plane.get('sgd', np.zeros((0, 2))))
          else:
            for bnn in BNNS:
              row[f'dominated_by_{bnn}'] = dominated_fraction(
                  points, plane.get(bnn, np.zeros((0, 2))))
          row['spearman_accuracy'] = _spearman(part['clean_accuracy'],
                                               part[column])
          if 'hidden' in part.columns:
            row['spearman_width'] = _spearman(part['hidden'], part[column])
            medians = part.groupby('hidden')[column].median()
            row['median_by_width'] = '; '.join(
                f'{int(w)}: {v:.3f}' for w, v in medians.items())
          rows.append(row)
  return rows
