"""Sanity checks on a robustness evaluation, each stating its evidence.

After fra31/auto-attack's `checks.py`: an evaluation that reports high
robustness should survive these, and each failed check is a reason to
distrust the number (gradient masking, a weak attack, a broken model
interface), not a proof of robustness when it passes.

Two kinds, so that every evaluation can record them without running extra
attacks: `gradient_findings` look at the model's outputs and input gradients
on the clean points; `attack_findings` and `curve_findings` compare the
accuracies the evaluation measured anyway (random noise weaker than every
attack, iterative at least as strong as single-step, white-box at least as
strong as gradient-free and transfer, certified below every attack,
accuracy falling with eps and near zero at eps = 1). `run_checks` runs the
attacks those need, for a quick look at one model.
"""

import dataclasses
import math
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from tfp_robust.attacks import apgd
from tfp_robust.attacks import gradient as attacks
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.evaluation import gradients
from tfp_robust.evaluation import metrics
from tfp_robust.attacks import square


@dataclasses.dataclass
class Finding:
  """One check's outcome: its name, whether it passed, and the evidence."""
  name: str
  passed: bool
  evidence: str
  statistics: Optional[Dict[str, float]] = None


def gradient_findings(ensemble, x, labels) -> List[Finding]:
  """Output and gradient checks on clean points (no attack needed).

  A gradient that is not connected to the input (a rounding layer, a
  stop-gradient) counts as zero: flagged, never a crash.
  """
  findings = []
  log_probs = ensemble.log_probs(x)
  normaliser = float(tf.reduce_max(tf.abs(tf.reduce_logsumexp(log_probs,
                                                              -1))))
  findings.append(Finding(
      'log_probs_normalised', normaliser < 1e-3,
      f'max |logsumexp(log_probs)| = {normaliser:.2e} (per-sample '
      'log-probabilities must sum to one in probability)'))
  num_classes = int(log_probs.shape[-1])
  # A softmax of probabilities (inputs in [0, 1]) can give no class more
  # than e / (e + C - 1): a model that never does looks twice-softmaxed.
  ceiling = math.e / (math.e + num_classes - 1)
  top = float(tf.reduce_max(tf.exp(log_probs)))
  findings.append(Finding(
      'outputs_not_probabilities', top > ceiling + 1e-4,
      f'largest per-sample probability {top:.4f}; a softmax applied to '
      f'probabilities never exceeds {ceiling:.4f} with {num_classes} classes'))
  findings.append(_saturation_finding(log_probs))
  for loss in ('expected', 'predictive'):
    _, grad = gradients.loss_and_input_gradient(ensemble, x, labels, loss)
    flat = tf.reshape(grad, [grad.shape[0], -1])
    finite = tf.reduce_all(tf.math.is_finite(flat), -1)
    zero = tf.reduce_max(tf.abs(tf.where(tf.math.is_finite(flat), flat, 1.0)),
                         -1) == 0.0
    zero_frac = float(tf.reduce_mean(tf.cast(zero, tf.float32)))
    nonfinite_frac = 1.0 - float(tf.reduce_mean(tf.cast(finite, tf.float32)))
    findings.append(Finding(
        f'nonzero_gradients_{loss}', zero_frac < 0.05 and nonfinite_frac == 0,
        f'{zero_frac:.1%} of inputs have an all-zero {loss}-loss gradient and '
        f'{nonfinite_frac:.1%} a non-finite one (saturated softmax, rounding '
        'or masked gradients make gradient attacks blind)',
        {f'grad_zero_frac_{loss}': zero_frac,
         f'grad_nonfinite_frac_{loss}': nonfinite_frac}))
  return findings


# Beyond this gap between a sample's two largest logits, exp(-gap) is below
# float32's smallest normal number: the non-top softmax outputs flush to
# zero and the cross-entropy gradient of that sample vanishes exactly.
SATURATION_GAP = float(-np.log(np.finfo(np.float32).tiny))  # 87.3


def _saturation_finding(log_probs) -> Finding:
  """How many per-sample softmaxes are saturated in float32.

  The cause behind zero gradients in a model that is merely very confident:
  its logits differ by more than `SATURATION_GAP`, so any loss on its
  probabilities is flat in float32, whatever the decision boundary's
  distance. Margin losses on logits (APGD-DLR) still see it.
  """
  top2 = tf.math.top_k(log_probs, k=2).values
  gap = (top2[..., 0] - top2[..., 1]).numpy()
  saturated = float(np.mean(gap > SATURATION_GAP))
  median = float(np.median(gap))
  return Finding(
      'softmax_not_saturated', saturated < 0.05,
      f'{saturated:.1%} of (sample, image) pairs have a top-2 logit gap '
      f'above {SATURATION_GAP:.1f} (median gap {median:.1f}): there the '
      'softmax is one-hot in float32 and probability losses have no gradient',
      {'saturated_frac': saturated, 'logit_gap_median': median})


def gradient_statistics(findings: List[Finding]) -> Dict[str, float]:
  """The numbers behind `gradient_findings`, as table columns."""
  out = {}
  for finding in findings:
    out.update(finding.statistics or {})
  return out


def _tolerance(num_points: Optional[int]) -> float:
  return max(0.02, 1.0 / num_points) if num_points else 0.02


def attack_findings(accuracy: Dict[str, float], eps: float,
                    num_points: Optional[int] = None) -> List[Finding]:
  """Consistency checks between the accuracies of one evaluation.

  Args:
    accuracy: adversarial accuracy by attack key: 'random', 'fgsm_<loss>',
      'pgd_<loss>', 'apgd_ce+dlr' or 'apgd', 'square', 'transfer_half',
      'transfer_surrogate', 'worst_case', 'certified' (any subset).
    eps: the radius, for the evidence.
    num_points: images evaluated; one image is the smallest tolerance.

  Returns:
    The findings whose inputs are present.
  """
  tol = _tolerance(num_points)
  findings = []
  attacks_only = {k: v for k, v in accuracy.items()
                  if k not in ('random', 'certified')}
  if 'random' in accuracy and attacks_only:
    weakest = max(attacks_only, key=attacks_only.get)
    findings.append(Finding(
        'random_weaker_than_every_attack',
        accuracy['random'] >= attacks_only[weakest] - tol,
        f"eps {eps:g}: random noise leaves {accuracy['random']:.3f}, the "
        f'weakest attack ({weakest}) {attacks_only[weakest]:.3f}: an attack '
        'weaker than noise has masked or uninformative gradients'))
  for key in [k for k in accuracy if k.startswith('pgd_')]:
    single = 'fgsm_' + key[len('pgd_'):]
    if single in accuracy:
      findings.append(Finding(
          f'iterative_beats_single_step_{key[len("pgd_"):]}',
          accuracy[key] <= accuracy[single] + tol,
          f'eps {eps:g}: PGD leaves {accuracy[key]:.3f}, FGSM '
          f'{accuracy[single]:.3f} on the same loss: more steps of the same '
          'attack should not do worse'))
  white = {k: v for k, v in accuracy.items()
           if k.startswith(('fgsm', 'pgd', 'apgd'))}
  for other in ('square', 'transfer_half', 'transfer_surrogate'):
    if white and other in accuracy:
      best = min(white, key=white.get)
      findings.append(Finding(
          f'white_box_beats_{other}', white[best] <= accuracy[other] + tol,
          f'eps {eps:g}: the best white-box attack ({best}) leaves '
          f'{white[best]:.3f}, {other} {accuracy[other]:.3f}: gradients that '
          'lose to a black-box or transfer attack are masked'))
  if 'certified' in accuracy and attacks_only:
    strongest = min(attacks_only, key=attacks_only.get)
    findings.append(Finding(
        'certified_below_attacks',
        accuracy['certified'] <= attacks_only[strongest] + 1e-9,
        f"eps {eps:g}: certified {accuracy['certified']:.3f} <= strongest "
        f'attack ({strongest}) {attacks_only[strongest]:.3f}; the true robust '
        'accuracy lies between'))
  return findings


def curve_findings(accuracy_by_eps: Dict[float, float],
                   num_points: Optional[int] = None,
                   name: str = '') -> List[Finding]:
  """Accuracy falls as eps grows, and is about 0 at eps = 1."""
  tol = _tolerance(num_points)
  eps = sorted(accuracy_by_eps)
  values = [accuracy_by_eps[e] for e in eps]
  rises = [(a, b) for a, b, va, vb in zip(eps, eps[1:], values, values[1:])
           if vb > va + tol]
  findings = [Finding(
      f'accuracy_falls_with_eps{"_" + name if name else ""}', not rises,
      'accuracy ' + ', '.join(f'{v:.3f}@{e:g}' for e, v in zip(eps, values)) +
      (f'; rises between eps {rises}' if rises else ''))]
  if 1.0 in accuracy_by_eps:
    findings.append(Finding(
        f'eps_one_breaks_everything{"_" + name if name else ""}',
        accuracy_by_eps[1.0] <= 0.05,
        f'accuracy {accuracy_by_eps[1.0]:.3f} at eps = 1, where the ball is '
        'the whole input box'))
  return findings


def run_checks(ensemble, x, labels, eps: float, seed: int = 0,
               pgd_steps: int = 15, strong_steps: int = 30,
               strong_restarts: int = 2,
               square_queries: int = 300) -> List[Finding]:
  """Runs the attacks the checks need on one ensemble and batch, and checks.

  Args:
    ensemble: a posterior ensemble.
    x: inputs `[B, ...]` in [0, 1].
    labels: labels `[B]`.
    eps: the L-infinity radius of the evaluation.
    seed: seed of the random attack and the starts.
    pgd_steps: steps of the paper-style FGSM/PGD comparison.
    strong_steps: APGD iterations per run.
    strong_restarts: APGD restarts per objective.
    square_queries: the Square attack's query budget.

  Returns:
    A list of `Finding`s.
  """
  def accuracy_of(x_adv):
    return metrics.robustness(ensemble, x, labels, x_adv)[
        'adversarial_accuracy']

  findings = gradient_findings(ensemble, x, labels)
  accuracy = {'random': accuracy_of(attacks.random_sign(x, eps, seed))}
  for loss in ('expected', 'predictive'):
    accuracy[f'fgsm_{loss}'] = accuracy_of(attacks.fgsm(ensemble, x, labels,
                                                        eps, loss=loss))
    accuracy[f'pgd_{loss}'] = accuracy_of(attacks.pgd(
        ensemble, x, labels, eps, num_steps=pgd_steps, loss=loss, seed=seed))
  accuracy['apgd'] = accuracy_of(apgd.apgd_cascade(
      ensemble, x, labels, eps, strong_steps, strong_restarts, seed))
  accuracy['square'] = accuracy_of(square.square(
      ensemble, x, labels, eps, square_queries, seed=seed))
  findings += attack_findings(accuracy, eps, int(np.shape(x)[0]))
  strongest = min(accuracy['apgd'], accuracy['square'])
  findings.append(Finding(
      'paper_attack_near_strongest',
      accuracy['pgd_expected'] - strongest <= 0.05,
      f'PGD on the expected loss ({pgd_steps} steps, 1 restart) leaves '
      f"{accuracy['pgd_expected']:.3f} accuracy, APGD / Square "
      f"{accuracy['apgd']:.3f} / {accuracy['square']:.3f}: a gap over 0.05 "
      'means the paper-style attack overstates robustness'))
  unbounded = accuracy_of(apgd.apgd(ensemble, x, labels, 1.0, strong_steps,
                                    loss='margin', seed=seed))
  findings += curve_findings({eps: strongest, 1.0: unbounded},
                             int(np.shape(x)[0]))
  return findings


def format_findings(findings: List[Finding]) -> str:
  lines = []
  for finding in findings:
    status = 'ok  ' if finding.passed else 'WARN'
    lines.append(f'[{status}] {finding.name}: {finding.evidence}')
  return '\n'.join(lines)


def saturation_statistics(ensemble, x, labels) -> Dict[str, float]:
  """How saturated a posterior's softmax is, and what that does to its
  gradients: the median top-2 logit gap of the (sample, image) pairs, the
  share above `SATURATION_GAP`, the share of images whose expected- and
  predictive-loss input gradients are exactly zero, and, for a model with
  stacked weights (`ensemble.params`), the spread of its first layer's
  weights (`weight_std`, over every weight of every sample) and across
  samples (`weight_std_across_samples`, the mean over weights of the
  standard deviation over samples)."""
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  # The figures behind the gradient checks, computed once, where they are.
  stats = gradient_statistics(gradient_findings(ensemble, x, labels))
  params = getattr(ensemble, 'params', None)
  if params:
    first = np.asarray(params[0], np.float64)
    stats['weight_std'] = float(first.std())
    stats['weight_std_across_samples'] = float(first.std(axis=0).mean())
  return stats
