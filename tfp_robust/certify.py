"""Certified robustness of the predictive by interval bound propagation.

For every posterior sample, interval bounds on its logits over the eps-ball
(intersected with [0, 1]) give bounds on its softmax: for class j,

  p_j >= exp(l_j) / (exp(l_j) + sum_{k != j} exp(u_k)),
  p_j <= exp(u_j) / (exp(u_j) + sum_{k != j} exp(l_k)),

computed in log space. Averaging over samples bounds the predictive mean. An
image is certified when its label's lower bound beats every other class's
upper bound: no input of the ball, found by any attack, can change the
prediction. So at every eps, certified accuracy <= true robust accuracy <=
the accuracy the strongest attack leaves; the gap says how much is unknown.
Bounds are computed for all samples of a chunk at once.
"""

import math

import numpy as np
import tensorflow as tf

from tfp_robust import ensemble as ensemble_lib


def _softmax_bounds(low, high):
  """Per-sample log-softmax bounds from logit bounds `[S, B, C]`."""
  num_classes = low.shape[-1]
  eye = tf.eye(num_classes, dtype=tf.bool)  # [j, k]: k == j
  # For class j: the denominator takes l_j (resp. u_j) and the others' u (l).
  worst = tf.where(eye, low[..., None, :], high[..., None, :])  # [S,B,j,k]
  best = tf.where(eye, high[..., None, :], low[..., None, :])
  log_lower = low - tf.reduce_logsumexp(worst, -1)
  log_upper = high - tf.reduce_logsumexp(best, -1)
  return log_lower, log_upper


def _build(ensemble):
  def bounds(chunk, lower, upper):
    low, high = ensemble.chunk_logit_bounds(chunk, lower, upper)
    log_lower, log_upper = _softmax_bounds(low, high)
    # Sums of per-sample probabilities; divided by S once all chunks are in.
    return (tf.reduce_sum(tf.exp(log_lower), 0),
            tf.reduce_sum(tf.exp(log_upper), 0))
  return tf.function(bounds, jit_compile=ensemble.jit_compile)


def predictive_bounds(ensemble, x, eps):
  """Bounds `([B, C], [B, C])` on the predictive probabilities over the ball.

  Args:
    ensemble: a posterior ensemble whose backend bounds its logits (the
      architecture-backed one).
    x: inputs `[B, *input_shape]` in [0, 1].
    eps: the L-infinity radius.
  """
  eps = float(eps)
  if not (math.isfinite(eps) and eps >= 0.0):
    raise ValueError(f'eps must be a finite number >= 0, got {eps}.')
  x, _ = ensemble_lib.check_inputs(x, ensemble.input_shape)
  lower = tf.clip_by_value(x - eps, 0.0, 1.0)
  upper = tf.clip_by_value(x + eps, 0.0, 1.0)
  total_low, total_high = 0.0, 0.0
  # Bounds carry two tensors per activation: budget for a batch twice as big.
  for _, chunk in ensemble.chunks(2 * int(x.shape[0])):
    fn = ensemble.compiled(('predictive_bounds', ensemble.chunk_key(chunk)),
                           lambda: _build(ensemble))
    low, high = fn(chunk, lower, upper)
    total_low += low
    total_high += high
  return total_low / ensemble.num_samples, total_high / ensemble.num_samples


def certified(ensemble, x, labels, eps) -> np.ndarray:
  """Whether each image's prediction is certified over the eps-ball, `[B]`."""
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  low, high = predictive_bounds(ensemble, x, eps)
  true_low = tf.gather(low, labels, batch_dims=1)
  others = tf.where(tf.one_hot(labels, ensemble.num_classes) > 0, -1.0, high)
  return (true_low > tf.reduce_max(others, -1)).numpy()


def certified_accuracy(ensemble, x, labels, eps) -> float:
  """The fraction of images whose correct prediction is certified."""
  return float(np.mean(certified(ensemble, x, labels, eps)))
