"""Attack objectives, all functions of per-sample log-probabilities.

Every loss here reads `log_probs` `[S, B, C]` (per-sample log-softmax, as
`PosteriorEnsemble.log_probs` returns it), so a softmax is never applied
twice. Each returns one value per example, `[B]`, that an attacker maximises.

- `expected`: the mean over samples of each sample's cross-entropy,
  E_w[L(x, w)]. Its input gradient is the paper's expected loss gradient
  E_w[grad_x L(x, w)] (Eq. 2), the direction the paper's FGSM and PGD follow.
- `predictive`: the cross-entropy of the predictive mean,
  -log (1/S) sum_s p_s(y | x), the objective of an attacker of the averaged
  model. Samples that still classify correctly dominate its gradient, where
  the expected loss lets confidently wrong samples dominate.
- `margin`: max_{j != y} log p(j | x) - log p(y | x) on the predictive mean;
  positive exactly when the predictive misclassifies (a Carlini-Wagner-style
  objective that does not saturate the way cross-entropy does).
- `dlr`: Croce and Hein's difference of logits ratio on the predictive
  log-probabilities, -(z_y - max_{j != y} z_j) / (z_(1) - z_(3)), with z
  sorted descending; invariant to shifts and scales of z, so a model that
  scales its logits cannot hide behind it. Needs at least 3 classes.
- `predictive_targeted_dlr` (APGD-T, not in `LOSSES`: it also takes a
  target class per example).
"""

import tensorflow as tf


def _log_prob_of_label(log_probs, labels):
  """Picks `log_probs[..., labels]` for `log_probs` `[..., B, C]`."""
  return tf.reduce_sum(
      log_probs * tf.one_hot(labels, log_probs.shape[-1], dtype=log_probs.dtype),
      axis=-1)


def per_sample_cross_entropy(log_probs, labels):
  """`[S, B]` cross-entropy of each sample on each example."""
  return -_log_prob_of_label(log_probs, labels)


def expected_cross_entropy(log_probs, labels):
  """Mean over samples of each sample's cross-entropy, `[B]`."""
  return tf.reduce_mean(per_sample_cross_entropy(log_probs, labels), axis=0)


def _predictive(log_probs):
  num_samples = tf.cast(tf.shape(log_probs)[0], log_probs.dtype)
  return tf.reduce_logsumexp(log_probs, axis=0) - tf.math.log(num_samples)


def predictive_cross_entropy(log_probs, labels):
  """Cross-entropy of the predictive mean (log-mean-exp over samples), `[B]`."""
  return -_log_prob_of_label(_predictive(log_probs), labels)


def predictive_margin(log_probs, labels):
  """Best wrong class minus true class, in predictive log-probability, `[B]`."""
  predictive = _predictive(log_probs)
  num_classes = predictive.shape[-1]
  true = _log_prob_of_label(predictive, labels)
  wrong = tf.where(tf.one_hot(labels, num_classes) > 0,
                   tf.constant(-float('inf'), predictive.dtype), predictive)
  return tf.reduce_max(wrong, axis=-1) - true


def predictive_dlr(log_probs, labels):
  """Difference of logits ratio on the predictive log-probabilities, `[B]`."""
  predictive = _predictive(log_probs)
  if predictive.shape[-1] is not None and predictive.shape[-1] < 3:
    raise ValueError('The DLR loss needs at least 3 classes; use margin.')
  top = tf.math.top_k(predictive, k=3).values
  true = _log_prob_of_label(predictive, labels)
  wrong = tf.where(tf.one_hot(labels, predictive.shape[-1]) > 0,
                   tf.constant(-float('inf'), predictive.dtype), predictive)
  return -(true - tf.reduce_max(wrong, -1)) / (top[:, 0] - top[:, 2] + 1e-12)


def predictive_targeted_dlr(log_probs, labels, targets):
  """Targeted DLR (APGD-T) on the predictive log-probabilities, `[B]`.

  -(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2), z sorted descending: rises
  as the target class `targets` `[B]` overtakes the label. Needs at least 4
  classes.
  """
  predictive = _predictive(log_probs)
  if predictive.shape[-1] is not None and predictive.shape[-1] < 4:
    raise ValueError('The targeted DLR loss needs at least 4 classes.')
  top = tf.math.top_k(predictive, k=4).values
  true = _log_prob_of_label(predictive, labels)
  target = _log_prob_of_label(predictive, targets)
  return -(true - target) / (
      top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


LOSSES = {
    'expected': expected_cross_entropy,
    'predictive': predictive_cross_entropy,
    'margin': predictive_margin,
    'dlr': predictive_dlr,
}


def get(name):
  """The loss function called `name`, or `name` itself if it is callable.

  A callable `f(log_probs [S, B, C], labels [B]) -> [B]` is accepted so that
  the replay of known evaluation mistakes (`ablations`) runs through the same
  gradient and attack code as the correct losses.
  """
  if callable(name):
    return name
  if name not in LOSSES:
    raise ValueError(f'Unknown loss {name!r}; choose one of {sorted(LOSSES)}.')
  return LOSSES[name]
