"""Figures of the sampler comparison: mixing per variant, robustness against
mixing, and a chain's mixing over its length.
"""

import matplotlib.pyplot as plt
from matplotlib import ticker
import numpy as np


def sampler_comparison(frame):
  """Mixing per variant, and robustness against mixing (issue 11).

  Args:
    frame: rows of `sampler_comparison.run`.

  Returns:
    A figure with one row of three panels per target: the worst
    function-space R-hat per variant (the 1.1 line marked), the worst
    function-space ESS per hour of sampling, and PGD accuracy and the mean
    expected-gradient magnitude against R-hat, one point per variant.
  """
  targets = list(dict.fromkeys(frame['target']))
  figure, axes = plt.subplots(len(targets), 3, figsize=(13, 3.6 * len(targets)),
                              squeeze=False)
  for row, target in zip(axes, targets):
    rows = frame[frame['target'] == target]
    names = list(rows['variant'])
    positions = np.arange(len(names))
    row[0].bar(positions, rows['fn_rhat_max'], color='tab:blue')
    row[0].axhline(1.1, color='k', linestyle='--', linewidth=1)
    row[0].set_ylabel('function-space R-hat (max)')
    row[1].bar(positions, rows['fn_ess_min_per_hour'], color='tab:green')
    row[1].set_ylabel('function-space ESS (min) per hour')
    row[1].set_yscale('log')
    for axis in row[:2]:
      axis.set_xticks(positions)
      axis.set_xticklabels(names, rotation=45, ha='right', fontsize=8)
      axis.set_title(target)
    row[2].scatter(rows['fn_rhat_max'], rows['pgd_predictive_acc'],
                   color='tab:red', label='PGD accuracy')
    for name, x, y in zip(names, rows['fn_rhat_max'],
                          rows['pgd_predictive_acc']):
      row[2].annotate(name, (x, y), fontsize=7)
    row[2].set_xlabel('function-space R-hat (max)')
    row[2].set_ylabel('PGD accuracy (predictive loss)', color='tab:red')
    twin = row[2].twinx()
    twin.scatter(rows['fn_rhat_max'], rows['mean_abs_expected_grad'],
                 color='tab:purple', marker='x')
    twin.set_ylabel('mean |expected gradient|', color='tab:purple')
    row[2].set_title(f'{target}: robustness against mixing')
  figure.tight_layout()
  return figure


def _plain_log_ticks(axis):
  """Log x ticks as plain numbers (1.05, not 1.05 x 10^0); the minor ones
  labelled only when the axis spans less than a decade."""
  plain = ticker.FuncFormatter(lambda value, _: f'{value:g}')
  axis.xaxis.set_major_formatter(plain)
  low, high = axis.get_xlim()
  axis.xaxis.set_minor_formatter(
      plain if high < 10 * low else ticker.NullFormatter())


def robustness_against_mixing(frame):
  """Does robustness follow mixing? Every sampler-comparison row pooled.

  Args:
    frame: rows of `sampler_comparison.run`, from any number of targets.

  Returns:
    A 2 x 2 figure, one point per (target, variant), one colour per target:
    the mean expected-gradient magnitude (top) and PGD accuracy (bottom)
    against the worst function-space R-hat (left; the 1.1 line marked) and
    against the worst function-space ESS, the number of effectively
    independent draws (right). Both x axes are logarithmic.
  """
  targets = list(dict.fromkeys(frame['target']))
  colours = plt.cm.tab10(np.arange(len(targets)) % 10)
  figure, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex='col')
  measures = (('mean_abs_expected_grad', 'mean |expected gradient|'),
              ('pgd_predictive_acc', 'PGD accuracy (predictive loss)'))
  mixing = (('fn_rhat_max', 'function-space R-hat (max)'),
            ('fn_ess_min', 'function-space ESS (min)'))
  for row, (measure, measure_label) in zip(axes, measures):
    for axis, (column, column_label) in zip(row, mixing):
      for target, colour in zip(targets, colours):
        rows = frame[frame['target'] == target]
        axis.scatter(rows[column], rows[measure], color=colour, label=target)
        for name, x, y in zip(rows['variant'], rows[column], rows[measure]):
          axis.annotate(name, (x, y), fontsize=6)
      axis.set_xscale('log')
      _plain_log_ticks(axis)
      axis.set_ylabel(measure_label)
      if measure == 'pgd_predictive_acc':
        axis.set_xlabel(column_label)
      if column == 'fn_rhat_max':
        axis.axvline(1.1, color='k', linestyle='--', linewidth=1)
  axes[0][0].legend(fontsize=7)
  figure.suptitle('Robustness against mixing, one point per sampler and target')
  figure.tight_layout()
  return figure


def mixing_trajectory(frame, criteria):
  """One run's mixing against compute: worst split R-hat of the class
  probabilities and of the log-joint, and the worst bulk ESS, after each
  segment (x: sampler seconds, warm-up included), with the targets."""
  figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
  hours = frame['seconds'] / 3600.0
  left.plot(hours, frame['fn_split_rhat_max'], 'o-',
            label='class probabilities (worst)')
  left.plot(hours, frame['logjoint_split_rhat'], 's-', label='log-joint')
  left.axhline(criteria['split_rhat'], color='k', ls='--', lw=1,
               label=f"target {criteria['split_rhat']}")
  left.set_yscale('log')
  left.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f'{v:g}'))
  left.set_xlabel('sampler hours (warm-up included)')
  left.set_ylabel('rank-normalised split R-hat')
  left.legend()
  right.plot(hours, frame['fn_bulk_ess_min'], 'o-',
             label='class probabilities (worst)')
  right.axhline(criteria['bulk_ess'], color='k', ls='--', lw=1,
                label=f"target {criteria['bulk_ess']:g}")
  right.set_xlabel('sampler hours (warm-up included)')
  right.set_ylabel('bulk ESS')
  right.legend()
  figure.suptitle('Mixing against compute (ArviZ diagnostics)')
  figure.tight_layout()
  return figure
