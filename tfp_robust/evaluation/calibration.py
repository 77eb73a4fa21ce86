"""Calibration of a predictive: accuracy, NLL, ECE, Brier, reliability diagram.

All computed from the predictive's probabilities `[B, C]` (or its
log-probabilities, for an NLL that does not underflow) and integer labels:

- accuracy: argmax of the predictive equals the label;
- NLL: mean over images of -log p(label);
- ECE: over `NUM_BINS` equal-width bins (lo, hi] of the top-class
  probability (the first bin also holds 0), the sum over bins of
  (images in bin / B) * |accuracy in bin - mean top probability in bin|;
- Brier: mean over images of sum over classes of (p_c - onehot_c)^2
  (the multi-class Brier score, between 0 and 2).
"""

from typing import Dict, Optional

import numpy as np

from tfp_robust.core import validate

NUM_BINS = 15


def summary(log_probs, labels, num_bins: int = NUM_BINS) -> Dict:
  """Accuracy, NLL, ECE, Brier and the reliability bins of one predictive.

  Args:
    log_probs: log predictive probabilities `[B, C]` (each row sums to one
      in probability).
    labels: integer labels `[B]`.
    num_bins: equal-width bins of the top-class probability for ECE.

  Returns:
    A dict with `accuracy`, `nll`, `ece`, `brier` and `bins`: a list of
    `{low, high, count, confidence, accuracy}` (confidence and accuracy
    None for an empty bin).
  """
  num_bins = validate.integer('num_bins', num_bins, 1)
  log_probs = np.asarray(log_probs, np.float64)
  if log_probs.ndim != 2 or not len(log_probs):
    validate.fail('log_probs', f'array of shape {log_probs.shape}',
                  'it must be [B, C] with B >= 1', 'Pass the log predictive.')
  labels = validate.labels('labels', labels, log_probs.shape[1])
  if len(labels) != len(log_probs):
    validate.fail('labels', f'array of {len(labels)} labels',
                  f'log_probs has {len(log_probs)} rows',
                  'Pass one label per image.')
  probs = np.exp(log_probs)
  rows = np.arange(len(labels))
  top = probs.max(-1)
  correct = (probs.argmax(-1) == labels).astype(np.float64)
  onehot = np.zeros_like(probs)
  onehot[rows, labels] = 1.0
  index = np.clip(np.ceil(top * num_bins).astype(np.int64) - 1, 0,
                  num_bins - 1)
  bins, ece = [], 0.0
  for b in range(num_bins):
    mask = index == b
    count = int(mask.sum())
    entry = {'low': b / num_bins, 'high': (b + 1) / num_bins, 'count': count,
             'confidence': None, 'accuracy': None}
    if count:
      entry['confidence'] = float(top[mask].mean())
      entry['accuracy'] = float(correct[mask].mean())
      ece += count / len(labels) * abs(entry['accuracy'] - entry['confidence'])
    bins.append(entry)
  return {
      'accuracy': float(correct.mean()),
      'nll': float(-log_probs[rows, labels].mean()),
      'ece': float(ece),
      'brier': float(((probs - onehot) ** 2).sum(-1).mean()),
      'bins': bins,
  }


def reliability_diagram(result: Dict, path: str,
                        title: Optional[str] = None) -> None:
  """Accuracy against confidence per bin, with the diagonal; a PNG."""
  from tfp_robust.reports import plots  # pylint: disable=g-import-not-at-top,unused-import  # Agg backend.
  from tfp_robust.reports import tables as reports  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  figure, axis = plt.subplots(figsize=(4.2, 4.2))
  bins = result['bins']
  width = bins[0]['high'] - bins[0]['low']
  filled = [b for b in bins if b['count']]
  axis.bar([b['low'] for b in filled], [b['accuracy'] for b in filled],
           width=width, align='edge', edgecolor='black', color='tab:blue',
           label='accuracy in bin')
  axis.bar([b['low'] for b in filled],
           [abs(b['confidence'] - b['accuracy']) for b in filled],
           bottom=[min(b['accuracy'], b['confidence']) for b in filled],
           width=width, align='edge', fill=False, hatch='//',
           edgecolor='tab:red', label='gap to mean confidence')
  axis.plot([0, 1], [0, 1], 'k--', linewidth=1, label='perfect calibration')
  axis.set_xlim(0, 1)
  axis.set_ylim(0, 1)
  axis.set_xlabel('top-class probability (confidence)')
  axis.set_ylabel('accuracy')
  axis.set_title(title or f"Reliability: ECE {result['ece']:.3f} "
                 f'({len(bins)} bins)')
  axis.legend(loc='upper left', fontsize=8)
  reports.save_figure(figure, path)
