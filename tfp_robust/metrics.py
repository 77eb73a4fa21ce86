"""Robustness metrics read from the predictive mean of a posterior ensemble.

Adversarial accuracy is the primary figure: an example counts as robust only
if the predictive still returns its true label. The paper's softmax
difference (Section 5.3) is reported beside it, never instead of it, because
a small change of the softmax can still flip the label.
"""

import tensorflow as tf

from tfp_robust import ensemble as ensemble_lib


def robustness(ensemble, x, labels, x_adv, clean_log_probs=None):
  """Clean and adversarial figures for one attack.

  Args:
    ensemble: a `PosteriorEnsemble`.
    x: clean inputs `[B, ...]` in [0, 1].
    labels: labels `[B]`.
    x_adv: adversarial inputs `[B, ...]`, evaluated with the same samples.
    clean_log_probs: optional precomputed `ensemble.log_probs(x)`.

  Returns:
    A dict with `clean_accuracy`, `adversarial_accuracy`, `attack_success`
    (fraction of correctly classified examples that the attack flips),
    `softmax_difference` (mean over examples of the L-inf distance between
    the clean and adversarial predictive softmax, the paper's measure, whose
    complement is `softmax_robustness`) and `max_perturbation`.
  """
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  x_adv, _ = ensemble_lib.check_inputs(x_adv, ensemble.input_shape)
  if x_adv.shape[0] != x.shape[0]:
    raise ValueError(f'x_adv has {x_adv.shape[0]} examples and x '
                     f'{x.shape[0]}: pass the adversarial version of each '
                     'clean input, in the same order.')
  if clean_log_probs is None:
    clean_log_probs = ensemble.log_probs(x)
  clean = tf.exp(ensemble_lib.predictive_from_log_probs(clean_log_probs))
  adversarial = tf.exp(ensemble.predictive_log_probs(x_adv))
  clean_correct = tf.argmax(clean, -1, output_type=tf.int32) == labels
  adv_correct = tf.argmax(adversarial, -1, output_type=tf.int32) == labels
  flipped = clean_correct & ~adv_correct
  num_correct = tf.reduce_sum(tf.cast(clean_correct, tf.float32))
  difference = tf.reduce_mean(tf.reduce_max(tf.abs(clean - adversarial), -1))
  return {
      'clean_accuracy': _mean(clean_correct),
      'adversarial_accuracy': _mean(adv_correct),
      'attack_success': float(tf.reduce_sum(tf.cast(flipped, tf.float32)) /
                              tf.maximum(num_correct, 1.0)),
      'softmax_difference': float(difference),
      'softmax_robustness': 1.0 - float(difference),
      'max_perturbation': float(tf.reduce_max(tf.abs(x_adv - x))),
  }


def _mean(boolean):
  return float(tf.reduce_mean(tf.cast(boolean, tf.float32)))
