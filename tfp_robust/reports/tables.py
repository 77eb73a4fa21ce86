"""Reports: tables, figures and text written atomically, and summaries.

The last step of the flow: rows in, files out.
"""

import json
import os
from typing import Dict, List, Optional

from tfp_robust.core import files

def write_json(path: str, value) -> None:
  """Writes JSON atomically (temporary file, then rename)."""
  files.write_text_atomically(
      path, json.dumps(value, indent=2, sort_keys=True, default=float))

def write_table(frame, path_without_suffix: str) -> None:
  """Writes a pandas frame as CSV and Markdown, atomically."""
  files.write_text_atomically(path_without_suffix + '.csv',
                              frame.to_csv(index=False))
  files.write_text_atomically(path_without_suffix + '.md', _markdown(frame))

def _markdown(frame) -> str:
  """A Markdown table without the optional `tabulate` dependency."""
  def cell(value):
    if isinstance(value, float):
      return f'{value:.4g}'
    return str(value)
  header = '| ' + ' | '.join(map(str, frame.columns)) + ' |'
  rule = '|' + '---|' * len(frame.columns)
  body = ['| ' + ' | '.join(cell(v) for v in row) + ' |'
          for row in frame.itertuples(index=False)]
  return '\n'.join([header, rule] + body) + '\n'

def save_figure(figure, path: str) -> None:
  """Saves a matplotlib figure atomically as PNG."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  staging = os.path.join(directory, '.tmp-' + os.path.basename(path))
  figure.savefig(staging, dpi=120, bbox_inches='tight', format='png')
  os.replace(staging, path)
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  plt.close(figure)

def summary_table(rows: List[Dict], fit_info: Optional[Dict[str, Dict]] = None):
  """One row per method: clean accuracy, attacked accuracy per attack/loss.

  Args:
    rows: rows of `attack_rows`, with a `method` column.
    fit_info: optional method -> dict with `grad_mean_abs`.

  Returns:
    A pandas DataFrame.
  """
  import pandas as pd  # Heavy import, needed only for tables.
  frame = pd.DataFrame(rows)
  table = []
  for method, group in frame.groupby('method', sort=False):
    entry = {'method': method,
             'samples': int(group['num_samples'].iloc[0]),
             'clean_acc': float(group['clean_accuracy'].iloc[0])}
    for row in group.itertuples(index=False):
      key = f'{row.attack}_{row.loss}_acc' if row.loss != 'none' else f'{row.attack}_acc'
      if len(frame['eps'].unique()) > 1:
        key += f'@{row.eps:g}'
      entry[key] = float(row.adversarial_accuracy)
    if fit_info and 'grad_mean_abs' in fit_info.get(method, {}):
      entry['mean_abs_expected_grad'] = fit_info[method]['grad_mean_abs']
    if fit_info and 'fn_rhat_max' in fit_info.get(method, {}):
      entry['fn_rhat_max'] = fit_info[method]['fn_rhat_max']
      entry['fn_ess_min'] = fit_info[method].get('fn_ess_min', float('nan'))
    table.append(entry)
  return pd.DataFrame(table)


def curve_band(rows):
  """Per method and eps, the interval the true robust accuracy lies in.

  Below it the certified accuracy, which no attack can go under: the
  tightest of the certified rows (IBP, CROWN), named in `certified_by`;
  above it the strongest attack's accuracy, minimum over every attack row of
  both protocols; the gap between them is what neither side settles. The
  paper's own PGD (expected loss) is beside them.

  Args:
    rows: the robustness curves' rows (`experiments.robustness_curves`):
      `method`, `protocol`, `attack`, `loss`, `eps`, `clean_accuracy`,
      `adversarial_accuracy`.

  Returns:
    A DataFrame, one row per (method, eps) in the rows' order: `clean`,
    `paper_pgd`, `strongest`, `strongest_by` (protocol/attack/loss),
    `certified` (NaN where the backend has no bound), `certified_by` (its
    method: 'ibp', 'crown', ...; '' without a bound) and `gap`.
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top
  frame = pd.DataFrame(rows)
  table = []
  for (method, eps), group in frame.groupby(['method', 'eps'], sort=False):
    attacked = group[~group['attack'].isin(['certified', 'random'])]
    bounds = group[group['attack'] == 'certified']
    certified = bounds['adversarial_accuracy']
    paper_pgd = group[(group['protocol'] == 'paper') &
                      (group['attack'] == 'pgd') &
                      (group['loss'] == 'expected')]['adversarial_accuracy']
    entry = {'method': method, 'eps': float(eps),
             'clean': float(group['clean_accuracy'].iloc[0]),
             'paper_pgd': float(paper_pgd.min()) if len(paper_pgd) else
                          float('nan')}
    if len(attacked):
      best = attacked.loc[attacked['adversarial_accuracy'].idxmin()]
      entry['strongest'] = float(best['adversarial_accuracy'])
      entry['strongest_by'] = f"{best['protocol']}/{best['attack']}/{best['loss']}"
    else:
      entry['strongest'], entry['strongest_by'] = float('nan'), ''
    entry['certified'] = (float(certified.max()) if len(certified) else
                          float('nan'))
    entry['certified_by'] = (str(bounds.loc[certified.idxmax(), 'loss'])
                             if len(certified) else '')
    entry['gap'] = entry['strongest'] - entry['certified']
    table.append(entry)
  return pd.DataFrame(table)


RHAT_THRESHOLD = 1.1


def mixing_warnings(fit_info: Dict[str, Dict],
                    threshold: float = RHAT_THRESHOLD) -> List[str]:
  """A warning per method whose chains have not mixed.

  Judged on the function: the worst R-hat of the predicted class
  probabilities at the test points (`mcmc.diagnostics.function_space_diagnostics`).
  """
  warnings = []
  for method, info in fit_info.items():
    rhat = info.get('fn_rhat_max')
    if rhat is None:
      continue
    if not rhat <= threshold:  # NaN counts as not mixed.
      warnings.append(
          f'WARNING: the {method} chains have not mixed: function-space '
          f'R-hat {rhat:.3f} > {threshold} (ESS min '
          f"{info.get('fn_ess_min', float('nan')):.1f}). Its rows describe "
          'where the sampler is, not the posterior; run longer (more warm-up '
          'and samples) before reading them as Bayesian results.')
  return warnings

write_text = files.write_text_atomically
