"""The paper's published numbers, as printed, and the columns of ours they face.

Carbone et al., "Robustness of Bayesian Neural Networks to Gradient-Based
Attacks" (NeurIPS 2020; text in `../shared/paper/`): Table 1 of the main text
(adversarial accuracy at eps 0.1 on 500 test images, 250 posterior samples,
PGD with 15 steps and 1 restart) and Table 2 of the supplementary material
(Section 11: 1000 MNIST test images; printed in percent, stored here as
fractions). The paper attacks with "the categorical cross-entropy", its
expected loss of Eq. 2, so its FGSM and PGD face our `*_expected_acc`
columns (the summaries of `reports.summary_table`). This module is the one
place these numbers live; `beside` sets them next to a summary of ours.
"""

import dataclasses
from typing import Dict, List, Mapping, Sequence, Tuple


@dataclasses.dataclass(frozen=True)
class PaperTable:
  """One of the paper's tables.

  Attributes:
    title: what the table reports.
    columns: (the paper's column name, the summary column of ours it faces).
    rows: (dataset, our method name) -> the paper's values, one per column.
    methods: our method name -> the paper's row name.
  """
  title: str
  columns: Tuple[Tuple[str, str], ...]
  rows: Mapping[Tuple[str, str], Tuple[float, ...]]
  methods: Mapping[str, str]


TABLE1 = PaperTable(
    title='Table 1: adversarial accuracy of HMC and VI BNNs at eps 0.1',
    columns=(('random', 'random_acc'), ('FGSM', 'fgsm_expected_acc'),
             ('PGD', 'pgd_expected_acc')),
    rows={('mnist', 'hmc'): (0.850, 0.960, 0.970),
          ('mnist', 'vi'): (0.956, 0.936, 0.938),
          ('fashion_mnist', 'hmc'): (0.812, 0.848, 0.826),
          ('fashion_mnist', 'vi'): (0.744, 0.834, 0.916)},
    methods={'hmc': 'HMC', 'vi': 'VI'})

TABLE2 = PaperTable(
    title='Table 2 (supplementary): deterministic net, deep ensemble and VI '
    'BNN under FGSM and PGD',
    columns=(('test accuracy', 'clean_acc'), ('FGSM', 'fgsm_expected_acc'),
             ('PGD', 'pgd_expected_acc')),
    rows={('mnist', 'sgd'): (0.9769, 0.2119, 0.0145),
          ('mnist', 'ensemble'): (0.994, 0.206, 0.003),
          ('mnist', 'vi'): (0.961, 0.900, 0.898)},
    methods={'sgd': 'Deterministic NN', 'ensemble': 'Ensemble NN',
             'vi': 'Bayesian NN'})

TABLES: Dict[str, PaperTable] = {'table1': TABLE1, 'table2': TABLE2}

# Columns the paper has no counterpart for, set after its columns when a
# summary of ours has them: the strong protocol's worst case per image (an
# upper bound on the true robust accuracy) and the certified lower bound,
# so that the paper's PGD figure faces the interval the truth lies in.
OURS_ONLY: Tuple[Tuple[str, str], ...] = (
    ('worst case, every attack (ours only)', 'worst_case_all_acc'),
    ('certified (ours only)', 'certified_ibp_acc'),
    ('certified, CROWN (ours only)', 'certified_crown_acc'),
    ('certified, alpha-CROWN (ours only)', 'certified_alpha_crown_acc'))


def beside(table: PaperTable, dataset: str,
           ours: Sequence[Mapping]) -> List[Dict]:
  """Rows of ours (one per method) with the paper's value after each column.

  Args:
    table: the paper's table.
    dataset: the dataset our rows are on.
    ours: summary rows (dicts with `method` and the columns of `table`);
      methods the paper does not report are left out, columns we did not
      measure are None.

  Returns:
    One dict per method: `method`, then `<column>` and `<column> (paper)`
    for each of the table's columns, then each `OURS_ONLY` column that a
    row of ours has a value in.
  """
  ours = [row for row in ours
          if (dataset, row.get('method')) in table.rows]
  extra = [(name, column) for name, column in OURS_ONLY
           if any(row.get(column) is not None for row in ours)]
  rows = []
  for row in ours:
    method = row['method']
    paper = table.rows[(dataset, method)]
    entry = {'method': f'{method} ({table.methods[method]})'}
    for (name, column), value in zip(table.columns, paper):
      entry[name] = row.get(column)
      entry[f'{name} (paper)'] = value
    for name, column in extra:
      entry[name] = row.get(column)
    rows.append(entry)
  return rows
