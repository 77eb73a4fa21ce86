"""Sanity checks on a robustness evaluation, each stating its evidence.

After fra31/auto-attack's `checks.py`: an evaluation that reports high
robustness should survive these, and each failed check is a reason to
distrust the number (gradient masking, a weak attack, a broken model
interface), not a proof of robustness when it passes.
"""

import dataclasses
from typing import List

import tensorflow as tf

from tfp_robust import attacks
from tfp_robust import gradients
from tfp_robust import metrics


@dataclasses.dataclass
class Finding:
  """One check's outcome: its name, whether it passed, and the evidence."""
  name: str
  passed: bool
  evidence: str


def run_checks(ensemble, x, labels, eps: float, seed: int = 0,
               pgd_steps: int = 15, strong_steps: int = 30,
               strong_restarts: int = 2) -> List[Finding]:
  """Runs every check on one ensemble and one batch.

  Args:
    ensemble: a `PosteriorEnsemble`.
    x: inputs `[B, ...]` in [0, 1].
    labels: labels `[B]`.
    eps: the L-infinity radius of the evaluation.
    seed: seed of the random attack and PGD starts.
    pgd_steps: steps of the paper-style PGD that the checks compare against.
    strong_steps: PGD steps per restart of the strong protocol.
    strong_restarts: restarts per objective of the strong protocol.

  Returns:
    A list of `Finding`s.
  """
  findings = []
  log_probs = ensemble.log_probs(x)
  normaliser = tf.reduce_max(tf.abs(tf.reduce_logsumexp(log_probs, -1)))
  findings.append(Finding(
      'log_probs_normalised', float(normaliser) < 1e-3,
      f'max |logsumexp(log_probs)| = {float(normaliser):.2e} (log-softmax '
      'outputs must sum to one in probability; anything else means a softmax '
      'was applied to probabilities; a guard for ensembles built outside '
      'this package, as PosteriorEnsemble itself always normalises)'))

  for loss in ('expected', 'predictive'):
    _, grad = gradients.loss_and_input_gradient(ensemble, x, labels, loss)
    flat = tf.reshape(grad, [grad.shape[0], -1])
    zero_rows = float(tf.reduce_mean(tf.cast(
        tf.reduce_max(tf.abs(flat), -1) == 0.0, tf.float32)))
    findings.append(Finding(
        f'nonzero_gradients_{loss}', zero_rows < 0.05,
        f'{zero_rows:.1%} of inputs have an all-zero {loss}-loss gradient '
        '(saturated softmax or masked gradients make gradient attacks blind)'))

  scores = {}
  scores['random'] = metrics.robustness(
      ensemble, x, labels, attacks.random_sign(x, eps, seed))[
          'adversarial_accuracy']
  for loss in ('expected', 'predictive'):
    scores[f'pgd_{loss}'] = metrics.robustness(
        ensemble, x, labels, attacks.pgd(ensemble, x, labels, eps,
                                         num_steps=pgd_steps, loss=loss,
                                         seed=seed))['adversarial_accuracy']
  best_gradient = min(scores['pgd_expected'], scores['pgd_predictive'])
  findings.append(Finding(
      'gradient_attack_beats_random', best_gradient <= scores['random'],
      f"accuracy under random signs {scores['random']:.3f}, under PGD "
      f"(expected) {scores['pgd_expected']:.3f}, PGD (predictive) "
      f"{scores['pgd_predictive']:.3f}: a gradient attack weaker than noise "
      'suggests masked or uninformative gradients'))

  strong = metrics.robustness(ensemble, x, labels, attacks.strong_attack(
      ensemble, x, labels, eps, num_steps=strong_steps,
      restarts=strong_restarts, seed=seed))['adversarial_accuracy']
  findings.append(Finding(
      'paper_attack_near_strongest', scores['pgd_expected'] - strong <= 0.05,
      f'PGD on the expected loss ({pgd_steps} steps, 1 restart) leaves '
      f"{scores['pgd_expected']:.3f} accuracy, the strong protocol {strong:.3f}"
      ': a gap over 0.05 means the paper-style attack overstates robustness'))

  big = metrics.robustness(ensemble, x, labels, attacks.pgd(
      ensemble, x, labels, 1.0, num_steps=pgd_steps, loss='margin',
      seed=seed))['adversarial_accuracy']
  findings.append(Finding(
      'unbounded_attack_succeeds', big < 0.05,
      f'PGD with eps = 1 (the whole input box) leaves {big:.3f} accuracy; '
      'an attack that cannot break the model without a bound is not working'))
  return findings


def format_findings(findings: List[Finding]) -> str:
  lines = []
  for finding in findings:
    status = 'ok  ' if finding.passed else 'WARN'
    lines.append(f'[{status}] {finding.name}: {finding.evidence}')
  return '\n'.join(lines)


