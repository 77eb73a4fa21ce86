"""Known evaluation mistakes, reproduced on purpose to measure their effect.

The paper's released code is known to contain each of these. They live here,
named as mistakes, so that our tables can show how much each one inflates the
robustness of a posterior; only the ablation experiment
(`pipelines.ablation_saved`, `binaries/ablation.py`) calls them.

- `double_softmax`: the loss takes probabilities where it expects logits
  (softmax applied twice). The gradient direction of the resulting loss is
  not that of the model's cross-entropy.
- `mismatched_samples`: the attack is crafted on one set of posterior samples
  and evaluated on another, so it only succeeds if it transfers.
- `unprojected_pgd`: PGD with a step as large as the pixel range and no
  projection onto the eps-ball between steps (only the final point is
  projected), which turns the iterations into a walk on the corners of
  [0, 1]^d.
"""

from typing import Dict, List

import tensorflow as tf

from tfp_robust import attacks
from tfp_robust import metrics


def _double_softmax_gradient(ensemble, x, labels):
  """Input gradient of the expected cross-entropy computed on probabilities."""
  one_hot = tf.one_hot(labels, ensemble.num_classes)
  with tf.GradientTape() as tape:
    tape.watch(x)
    probabilities = tf.exp(ensemble.log_probs(x))
    # The mistake: probabilities are fed where logits belong.
    wrong_log_probs = tf.nn.log_softmax(probabilities)
    loss = -tf.reduce_sum(wrong_log_probs * one_hot, axis=-1)
  return tape.gradient(loss, x)


def double_softmax_fgsm(ensemble, x, labels, eps):
  """FGSM along the gradient of a loss that applies softmax twice."""
  x = tf.convert_to_tensor(x, tf.float32)
  labels = tf.convert_to_tensor(labels, tf.int32)
  gradient = _double_softmax_gradient(ensemble, x, labels)
  return attacks.project(x + eps * tf.sign(gradient), x, eps)


def unprojected_pgd(ensemble, x, labels, eps, num_steps=15, step_size=1.0):
  """PGD with a pixel-range step and projection only at the end."""
  x = tf.convert_to_tensor(x, tf.float32)
  x_adv = x
  for _ in range(num_steps):
    _, gradient = attacks.gradients.loss_and_input_gradient(
        ensemble, x_adv, labels, 'expected')
    x_adv = tf.clip_by_value(x_adv + step_size * tf.sign(gradient), 0.0, 1.0)
  return attacks.project(x_adv, x, eps)


def split_ensemble(ensemble):
  """Two disjoint halves of the samples: (first half, second half)."""
  half = ensemble.num_samples // 2
  if half < 1:
    raise ValueError('Mismatched samples need an ensemble of at least two.')
  return ensemble.samples(0, half), ensemble.samples(half, 2 * half)


def ablation_rows(ensemble, x, labels, eps: float,
                  pgd_steps: int = 15) -> List[Dict]:
  """Adversarial accuracy of the correct protocol and of each mistake.

  All rows are evaluated on the second half of the samples; the attacks use
  the same half except in the mismatched-samples rows, which attack the
  first half.
  """
  attacked, evaluated = split_ensemble(ensemble)
  x = tf.convert_to_tensor(x, tf.float32)
  labels = tf.convert_to_tensor(labels, tf.int32)
  variants = {
      'fgsm (correct)': lambda e: attacks.fgsm(e, x, labels, eps),
      'fgsm, double softmax': lambda e: double_softmax_fgsm(e, x, labels, eps),
      'pgd (correct)': lambda e: attacks.pgd(e, x, labels, eps,
                                             num_steps=pgd_steps, seed=0),
      'pgd, step 1 and no projection': lambda e: unprojected_pgd(
          e, x, labels, eps, num_steps=pgd_steps),
  }
  rows = []
  for name, attack in variants.items():
    for mismatched in (False, True):
      x_adv = attack(attacked if mismatched else evaluated)
      result = metrics.robustness(evaluated, x, labels, x_adv)
      rows.append({
          'protocol': name + (', attack other samples' if mismatched else ''),
          'eps': eps, 'samples_evaluated': evaluated.num_samples,
          'clean_accuracy': result['clean_accuracy'],
          'adversarial_accuracy': result['adversarial_accuracy'],
          'softmax_robustness': result['softmax_robustness']})
  return rows
