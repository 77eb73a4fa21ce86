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
  x, labels, x_adv = _checked_pair(ensemble, x, labels, x_adv)
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


def _checked_pair(ensemble, x, labels, x_adv):
  """The inputs checked, and x_adv refused unless it matches x one to one."""
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  x_adv, _ = ensemble_lib.check_inputs(x_adv, ensemble.input_shape)
  if x_adv.shape[0] != x.shape[0]:
    raise ValueError(f'x_adv has {x_adv.shape[0]} examples and x '
                     f'{x.shape[0]}: pass the adversarial version of each '
                     'clean input, in the same order.')
  return x, labels, x_adv


def _mean(boolean):
  return float(tf.reduce_mean(tf.cast(boolean, tf.float32)))


def per_class(ensemble, x, labels, x_adv):
  """Which images an attack leaves standing, class by class.

  Args:
    ensemble: a `PosteriorEnsemble`.
    x: clean inputs `[B, ...]`; x_adv: their adversarial versions.
    labels: labels `[B]`.

  Returns:
    A pandas DataFrame, one row per class with images: `images`,
    `clean_accuracy`, `adversarial_accuracy`, `sample_agreement_clean` and
    `sample_agreement_adversarial` (mean share of posterior samples whose
    own argmax is the label), `top_adversarial_class` and its share of the
    class's adversarial predictions. A class whose images all move to one
    other class shows a share near 1 there; a robust class keeps its label.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top
  x, labels, x_adv = _checked_pair(ensemble, x, labels, x_adv)
  labels = labels.numpy()
  rows = []
  outputs = {}
  for name, inputs in (('clean', x), ('adversarial', x_adv)):
    log_probs = ensemble.log_probs(inputs)
    predicted = tf.argmax(ensemble_lib.predictive_from_log_probs(log_probs),
                          -1, output_type=tf.int32).numpy()
    agreement = np.mean(tf.argmax(log_probs, -1, output_type=tf.int32).numpy()
                        == labels[None], axis=0)
    outputs[name] = (predicted, agreement)
  for c in range(ensemble.num_classes):
    mask = labels == c
    if not mask.any():
      continue
    adversarial = outputs['adversarial'][0][mask]
    counts = np.bincount(adversarial, minlength=ensemble.num_classes)
    rows.append(dict(
        label=c, images=int(mask.sum()),
        clean_accuracy=float(np.mean(outputs['clean'][0][mask] == c)),
        adversarial_accuracy=float(np.mean(adversarial == c)),
        sample_agreement_clean=float(np.mean(outputs['clean'][1][mask])),
        sample_agreement_adversarial=float(
            np.mean(outputs['adversarial'][1][mask])),
        top_adversarial_class=int(np.argmax(counts)),
        top_adversarial_share=float(counts.max() / mask.sum())))
  return pd.DataFrame(rows)
