"""Certified robustness of the predictive (mean of softmaxes) over an eps-ball.

`method='ibp'`: interval bound propagation. For every posterior sample,
interval bounds on its logits over the eps-ball (intersected with [0, 1])
give bounds on its softmax: for class j,

  p_j >= exp(l_j) / (exp(l_j) + sum_{k != j} exp(u_k)),
  p_j <= exp(u_j) / (exp(u_j) + sum_{k != j} exp(l_k)),

computed in log space. Averaging over samples bounds the predictive mean. An
image is certified when its label's lower bound beats every other class's
upper bound: no input of the ball, found by any attack, can change the
prediction.

`method='crown'` (and `'alpha_crown'`, with optimised ReLU slopes; see
`crown`): linear relaxation bounds on each sample's logit *margins*
`m_j <= z_y - z_j` over the ball, combined per sample with the interval
ones (each sample keeps the larger margin, so the result is never looser
than IBP). The same criterion, mean_s p_y > mean_s p_j for every j, is
proven from a lower bound on each sample's difference `p_y - p_j`, the
larger of

  p_y^low - p_j^up, with p_y^low = 1 / (1 + sum_{k != y} exp(-m_k)) and
      p_j^up = min(1 / (1 + exp(m_j)), the interval bound above);
  p_y^low (1 - exp(-m_j)) when m_j >= 0 (as p_y - p_j = p_y (1 - e^{-(z_y
      - z_j)})),

averaged over samples: certified when the average is > 0 for every j. With
the interval margins `l_y - u_j` alone the first is exactly the IBP test.

So at every eps, certified accuracy <= true robust accuracy <= the accuracy
the strongest attack leaves. Bounds are computed for all samples of a chunk
at once; the chunks (and, when one sample's linear bounds on the whole batch
would not fit, the image batches) respect the ensemble's memory budget.
Architecture-backed ensembles and `KerasEnsemble`s of standard layers are
bounded (`keras_bounds`); other backends raise `NotImplementedError`.
"""

import math

import numpy as np
import tensorflow as tf

from tfp_robust.evaluation.bounds import ops as bound_ops
from tfp_robust.evaluation.bounds import crown
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.evaluation.bounds import keras as keras_bounds

METHODS = ('ibp', 'crown', 'alpha_crown')
ALPHA_STEPS = 20
# Bytes per float32 element of the largest linear-bound tensor, counting the
# few copies alive at once (positive and negative parts, the transposes).
_BYTES_PER_ELEMENT = 4 * 6


def check_method(method, name='method'):
  if method not in METHODS:
    raise ValueError(f'{name}={method!r} is not a certification method; '
                     f"choose one of {METHODS} ('crown' is the tightest "
                     "affordable default, 'ibp' the fastest).")
  return method


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


def _probability_sums(low, high):
  """Sums over samples of the per-sample softmax bounds, `([B, C], [B, C])`."""
  log_lower, log_upper = _softmax_bounds(low, high)
  return (tf.reduce_sum(tf.exp(log_lower), 0),
          tf.reduce_sum(tf.exp(log_upper), 0))


def difference_bounds(margins, low, high, labels):
  """Per-sample lower bounds `[S, B, C]` on `p_y - p_j` (see the docstring).

  Args:
    margins: lower bounds `[S, B, C]` on `z_y - z_j` (0 at j = y).
    low: interval lower bounds on the logits `[S, B, C]`.
    high: their upper bounds.
    labels: `[B]`.
  """
  is_label = tf.one_hot(labels, low.shape[-1]) > 0
  label_low = tf.reduce_sum(tf.where(is_label, low, 0.0), -1, keepdims=True)
  interval = label_low - high
  margins = tf.where(is_label, 0.0, tf.maximum(margins, interval))
  label_low = tf.exp(-tf.reduce_logsumexp(-margins, -1))[..., None]
  other_up = tf.minimum(tf.math.sigmoid(-margins),
                        tf.exp(_softmax_bounds(low, high)[1]))
  product = tf.where(margins >= 0.0, label_low * -tf.math.expm1(-margins),
                     -np.inf)
  return tf.maximum(label_low - other_up, product)


def _networks(ensemble, num_images, elements_fn):
  """`(structure, input_shape, weights)` chunks of the ensemble's samples.

  `elements_fn(ops)` gives the bound tensors' float32 elements per (sample,
  image); the chunks keep them within the memory budget. Raises
  NotImplementedError for backends without layers to read.
  """
  if isinstance(ensemble, ensemble_lib.ArchitectureEnsemble):
    groups = [(bound_ops.from_architecture(ensemble.architecture), None, 0,
               ensemble.num_samples)]
    weight_bytes = ensemble.weight_bytes_per_sample()
  elif isinstance(ensemble, ensemble_lib.KerasEnsemble):
    groups = keras_bounds.read_ensemble(ensemble)
    weight_bytes = 0
  else:
    raise NotImplementedError(
        f'{type(ensemble).__name__} cannot bound its logits over an input box '
        '(interval bound propagation and CROWN need its layers); certify an '
        'architecture-backed ensemble (ArchitectureEnsemble) or a '
        'KerasEnsemble instead.')
  for structure, weights, start, stop in groups:
    sample = weights if weights is not None else [
        p[:1] for p in ensemble.params]
    ops = bound_ops.build(structure, [tf.convert_to_tensor(w[:1])
                                      for w in sample],
                          ensemble.input_shape)
    per_image = _BYTES_PER_ELEMENT * elements_fn(ops)
    per_sample = per_image * num_images + weight_bytes
    size = max(1, min(stop - start,
                      ensemble.memory_budget_bytes // max(per_sample, 1)))
    for begin in range(start, stop, size):
      end = min(begin + size, stop)
      if weights is None:
        chunk = ensemble.chunk(begin, end)
      else:
        chunk = [tf.convert_to_tensor(w[begin - start:end - start])
                 for w in weights]
      yield structure, chunk, elements_fn(ops)


def _image_batch(ensemble, num_images, elements):
  """Images per batch so that one sample's linear bounds fit the budget."""
  per_image = _BYTES_PER_ELEMENT * max(elements, 1)
  return int(max(1, min(num_images,
                        ensemble.memory_budget_bytes // per_image)))


def _build(structure, input_shape, method, jit_compile):
  def sums(weights, lower, upper, labels):
    ops = bound_ops.build(structure, weights, input_shape)
    num_samples = tf.shape(weights[0])[0]
    if method == 'ibp':
      bounds = crown.node_bounds(ops, lower, upper, num_samples, False)
      return _probability_sums(*bounds[-1])
    bounds = crown.node_bounds(ops, lower, upper, num_samples)
    margins = crown.margin_bounds(
        ops, bounds, labels, lower, upper,
        alpha_steps=ALPHA_STEPS if method == 'alpha_crown' else 0)
    differences = difference_bounds(margins, *bounds[-1], labels)
    return tf.reduce_sum(differences, 0), tf.zeros_like(differences[0])
  return tf.function(sums, jit_compile=jit_compile, reduce_retracing=True)


def _box(ensemble, x, eps, labels=None):
  eps = float(eps)
  if not (math.isfinite(eps) and eps >= 0.0):
    raise ValueError(f'eps must be a finite number >= 0, got {eps}.')
  x, labels = ensemble_lib.check_inputs(
      x, ensemble.input_shape, labels,
      ensemble.num_classes if labels is not None else None)
  return (x, labels, tf.clip_by_value(x - eps, 0.0, 1.0),
          tf.clip_by_value(x + eps, 0.0, 1.0))


def _sums(ensemble, lower, upper, labels, method):
  """Sums over all samples of the method's per-sample bounds, per image."""
  # A model seen through an increasing input map (the evaluation card's
  # units, `instrumented.Instrumented`) is bounded as the model it wraps, on
  # the mapped box: the map sends the box's corners to the model's box.
  while hasattr(ensemble, 'bounded_model'):
    ensemble, lower, upper = ensemble.bounded_model(lower, upper)
  num_images = int(lower.shape[0])
  if method == 'ibp' and isinstance(ensemble,
                                    ensemble_lib.ArchitectureEnsemble):
    fn = ensemble.compiled(('predictive_bounds', None), lambda: tf.function(
        lambda chunk, lo, up: _probability_sums(
            *ensemble.chunk_logit_bounds(chunk, lo, up)),
        jit_compile=ensemble.jit_compile))
    # Bounds carry two tensors per activation: budget for a batch twice as big.
    parts = [fn(chunk, lower, upper)
             for _, chunk in ensemble.chunks(2 * num_images)]
    return tf.add_n([p[0] for p in parts]), tf.add_n([p[1] for p in parts])
  if method == 'ibp':
    elements_fn = lambda ops: 2 * max(bound_ops._prod(op.out_shape)  # pylint: disable=protected-access
                                      for op in ops)
  else:
    elements_fn = lambda ops: crown.linear_elements(
        ops, ensemble.input_shape, ensemble.num_classes)
  totals = []
  for structure, chunk, elements in _networks(ensemble, num_images,
                                             elements_fn):
    fn = ensemble.compiled(('certify', method, structure), lambda s=structure: (
        _build(s, ensemble.input_shape, method, ensemble.jit_compile)))
    batch = _image_batch(ensemble, num_images, elements)
    parts = [fn(chunk, lower[i:i + batch], upper[i:i + batch],
                labels[i:i + batch] if labels is not None else
                tf.zeros([min(batch, num_images - i)], tf.int32))
             for i in range(0, num_images, batch)]
    totals.append((tf.concat([p[0] for p in parts], 0),
                   tf.concat([p[1] for p in parts], 0)))
  return (tf.add_n([t[0] for t in totals]), tf.add_n([t[1] for t in totals]))


def predictive_bounds(ensemble, x, eps):
  """IBP bounds `([B, C], [B, C])` on the predictive probabilities.

  Args:
    ensemble: an architecture-backed ensemble or a `KerasEnsemble`.
    x: inputs `[B, *input_shape]` in [0, 1].
    eps: the L-infinity radius.
  """
  _, _, lower, upper = _box(ensemble, x, eps)
  low, high = _sums(ensemble, lower, upper, None, 'ibp')
  return low / ensemble.num_samples, high / ensemble.num_samples


def certificate(ensemble, x, labels, eps, method='crown') -> np.ndarray:
  """Lower bounds `[B, C]` on `mean_s p_y - mean_s p_j` over the eps-ball.

  Positive for every j != y exactly when the image is certified; the
  label's own column is +inf.
  """
  check_method(method)
  _, labels, lower, upper = _box(ensemble, x, eps, labels)
  is_label = tf.one_hot(labels, ensemble.num_classes) > 0
  first, second = _sums(ensemble, lower, upper, labels, method)
  if method == 'ibp':  # Sums of p^low and p^up: their difference.
    label_low = tf.gather(first, labels, batch_dims=1)[:, None]
    differences = label_low - second
  else:
    differences = first
  differences = differences / ensemble.num_samples
  return tf.where(is_label, np.inf, differences).numpy()


def certified(ensemble, x, labels, eps, method='crown') -> np.ndarray:
  """Whether each image's prediction is certified over the eps-ball, `[B]`.

  Args:
    ensemble: an architecture-backed ensemble or a `KerasEnsemble`.
    x: inputs `[B, *input_shape]` in [0, 1].
    labels: int labels `[B]`.
    eps: the L-infinity radius.
    method: 'ibp', 'crown' or 'alpha_crown' (see the module docstring).
  """
  check_method(method)
  if method == 'ibp':  # The comparison exactly as it always was.
    x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                          ensemble.num_classes)
    low, high = predictive_bounds(ensemble, x, eps)
    true_low = tf.gather(low, labels, batch_dims=1)
    others = tf.where(tf.one_hot(labels, ensemble.num_classes) > 0, -1.0, high)
    return (true_low > tf.reduce_max(others, -1)).numpy()
  return np.min(certificate(ensemble, x, labels, eps, method), -1) > 0.0


def certified_accuracy(ensemble, x, labels, eps, method='crown') -> float:
  """The fraction of images whose correct prediction is certified."""
  return float(np.mean(certified(ensemble, x, labels, eps, method)))
