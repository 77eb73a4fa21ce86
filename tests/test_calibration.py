"""`calibration`: accuracy, NLL, ECE and Brier against a plain computation."""

import numpy as np
import pytest

from tfp_robust.evaluation import calibration
from tfp_robust.core import validate


def _independent(probs, labels, num_bins=15):
  """The textbook definitions, written differently from the module."""
  n = len(labels)
  confidence = probs.max(1)
  correct = probs.argmax(1) == labels
  ece = 0.0
  edges = np.linspace(0.0, 1.0, num_bins + 1)
  for low, high in zip(edges[:-1], edges[1:]):
    inside = (confidence > low) & (confidence <= high)
    if low == 0.0:
      inside |= confidence == 0.0
    if inside.any():
      ece += inside.sum() / n * abs(correct[inside].mean() -
                                    confidence[inside].mean())
  brier = np.mean([np.sum((probs[i] - np.eye(probs.shape[1])[labels[i]]) ** 2)
                   for i in range(n)])
  nll = -np.mean([np.log(probs[i, labels[i]]) for i in range(n)])
  return correct.mean(), nll, ece, brier


def test_summary_matches_the_definitions():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(300, 5)) * 3
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  labels = rng.integers(0, 5, 300)
  result = calibration.summary(np.log(probs), labels)
  accuracy, nll, ece, brier = _independent(probs, labels)
  assert result['accuracy'] == pytest.approx(accuracy, abs=1e-9)
  assert result['nll'] == pytest.approx(nll, abs=1e-9)
  assert result['ece'] == pytest.approx(ece, abs=1e-9)
  assert result['brier'] == pytest.approx(brier, abs=1e-9)
  assert len(result['bins']) == 15
  assert sum(b['count'] for b in result['bins']) == 300
  assert 0.1 < result['ece'] < 1.0  # Random labels: badly calibrated.


def test_confident_and_right_is_perfect_and_uniform_is_calibrated():
  labels = np.array([0, 1, 2, 1])
  sure = calibration.summary(np.log(np.eye(3)[labels] * (1 - 1e-12) + 1e-13),
                             labels)
  assert sure['accuracy'] == 1.0 and sure['ece'] < 1e-6
  assert sure['brier'] < 1e-6 and sure['nll'] < 1e-6
  # Uniform predictive on two classes with half the labels right: the top
  # probability 0.5 matches the accuracy, so ECE is 0 and Brier 0.5.
  half = calibration.summary(np.log(np.full((4, 2), 0.5)),
                             np.array([0, 0, 1, 1]))
  assert half['ece'] == pytest.approx(0.0, abs=1e-12)
  assert half['brier'] == pytest.approx(0.5)
  assert half['nll'] == pytest.approx(np.log(2))


def test_bad_inputs_are_named():
  with pytest.raises(validate.InvalidArgument, match='labels=.*3 labels'):
    calibration.summary(np.log(np.full((4, 2), 0.5)), np.array([0, 1, 1]))
  with pytest.raises(validate.InvalidArgument, match=r'labels=.*\[0, 1\]'):
    calibration.summary(np.log(np.full((2, 2), 0.5)), np.array([0, 2]))


def test_reliability_diagram_is_written(tmp_path):
  labels = np.array([0, 1, 1, 0])
  result = calibration.summary(np.log(np.array(
      [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.55, 0.45]])), labels)
  path = tmp_path / 'reliability.png'
  calibration.reliability_diagram(result, str(path))
  assert path.read_bytes()[:4] == b'\x89PNG'
