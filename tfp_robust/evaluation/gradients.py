"""Input gradients of attack losses on a posterior ensemble.

Everything here reads an ensemble only through its public interface
(`chunks`, `chunk_log_probs`, `compiled`), so it works for every backend.

`loss_and_input_gradient` is what every gradient attack calls. When all
samples fit one chunk of the memory budget it is a single compiled tape over
all samples. Otherwise it is exact in two passes: a forward pass gives
`log_probs` `[S, B, C]` and the loss's derivative with respect to them; then
each chunk contributes the input gradient of `sum(coefficients * log_probs)`
(the chain rule, split over samples), so peak memory is one chunk's.

`expected_gradients_by_num_samples` gives E_w[grad_x L(x, w)] over the first n
samples for several n at once (Figures 1 to 3 of the paper).
"""

from typing import Dict, Sequence

import numpy as np
import tensorflow as tf

from tfp_robust import ensemble as ensemble_lib
from tfp_robust.attacks import losses


def expected_loss_and_gradient(ensemble, chunk, x, labels):
  """The expected cross-entropy `[B]`, its input gradient and the log-probs.

  Traceable. The expected loss is linear in each sample's log-probabilities,
  so its gradient is the ensemble's weighted gradient with weights
  `-one_hot(labels) / n`: the backend may then take it sample by sample.
  """
  log_probs, gradient = ensemble.chunk_weighted_gradient(
      chunk, x, -tf.one_hot(labels, ensemble.num_classes, dtype=x.dtype))
  num_samples = tf.cast(tf.shape(log_probs)[0], x.dtype)
  return (losses.expected_cross_entropy(log_probs, labels),
          gradient / num_samples, log_probs)


def _direct_fn(ensemble, loss_name):
  loss_fn = losses.get(loss_name)

  def loss_and_gradient(chunk, x, labels):
    if loss_fn is losses.expected_cross_entropy:
      value, gradient, _ = expected_loss_and_gradient(ensemble, chunk, x,
                                                      labels)
      return value, gradient
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = loss_fn(ensemble.chunk_log_probs(chunk, x), labels)
    return loss, tape.gradient(loss, x)  # Sums over the batch.

  return tf.function(loss_and_gradient, jit_compile=ensemble.jit_compile,
                     reduce_retracing=True)


def _linearised_fn(ensemble):
  def gradient(chunk, x, coefficients):
    return ensemble.chunk_weighted_gradient(chunk, x, coefficients)[1]

  return tf.function(gradient, jit_compile=ensemble.jit_compile,
                     reduce_retracing=True)


def _unconnected_as_zero(gradient, x):
  # A model whose output does not depend on its input (e.g. a rounding
  # layer) has no gradient: that is a zero gradient, for the checks to flag.
  return tf.zeros_like(x) if gradient is None else gradient


def loss_and_input_gradient(ensemble: ensemble_lib.PosteriorEnsemble, x,
                            labels, loss: str = 'expected'):
  """Per-example attack loss and its gradient with respect to the inputs.

  Args:
    ensemble: the posterior ensemble under attack.
    x: inputs `[B, *input_shape]` in [0, 1].
    labels: true labels `[B]`.
    loss: a name in `losses.LOSSES`.

  Returns:
    `(loss [B], gradient [B, *input_shape])`. With `loss='expected'` the
    gradient is the expected loss gradient E_w[grad_x L(x, w)]. A gradient
    that is not connected to the input is returned as zeros.
  """
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  losses.get(loss)
  return _loss_and_gradient_unchecked(ensemble, x, labels, loss)


def _loss_and_gradient_unchecked(ensemble, x, labels, loss):
  chunks = list(ensemble.chunks(x.shape[0]))
  if len(chunks) == 1:
    chunk = chunks[0][1]
    fn = ensemble.compiled(('loss_grad', loss, ensemble.chunk_key(chunk)),
                           lambda: _direct_fn(ensemble, loss))
    value, gradient = fn(chunk, x, labels)
    return value, _unconnected_as_zero(gradient, x)
  log_probs = tf.concat([
      ensemble._log_probs_fn(chunk)(chunk, x)  # pylint: disable=protected-access
      for _, chunk in chunks], 0)
  with tf.GradientTape() as tape:
    tape.watch(log_probs)
    loss_values = losses.get(loss)(log_probs, labels)
  coefficients = tape.gradient(loss_values, log_probs)
  gradient = tf.zeros_like(x)
  stops = [start for start, _ in chunks[1:]] + [ensemble.num_samples]
  for (start, chunk), stop in zip(chunks, stops):
    gradient_fn = ensemble.compiled(
        ('linearised_grad', ensemble.chunk_key(chunk)),
        lambda: _linearised_fn(ensemble))
    gradient += _unconnected_as_zero(
        gradient_fn(chunk, x, coefficients[start:stop]), x)
  return loss_values, gradient


def _summed_cross_entropy_fn(ensemble):
  def summed_gradient(chunk, x, labels):
    # The input gradient of the chunk's summed cross-entropy.
    return ensemble.chunk_weighted_gradient(
        chunk, x, -tf.one_hot(labels, ensemble.num_classes, dtype=x.dtype))[1]

  return tf.function(summed_gradient, jit_compile=ensemble.jit_compile,
                     reduce_retracing=True)


def expected_gradients_by_num_samples(
    ensemble: ensemble_lib.PosteriorEnsemble, x, labels,
    num_samples: Sequence[int]) -> Dict[int, np.ndarray]:
  """Expected cross-entropy gradients over the first n samples, for each n.

  The samples are cut into chunks at every wanted n (and wherever the memory
  budget asks); each chunk's summed gradient is one compiled call, and a
  running sum gives every prefix mean in a single pass over the samples.

  Args:
    ensemble: the posterior ensemble.
    x: inputs `[B, *input_shape]` in [0, 1].
    labels: labels `[B]`.
    num_samples: the prefix sizes n, each in [1, S].

  Returns:
    A dict n -> E_{first n samples}[grad_x L(x, w)] as `[B, *input_shape]`.
  """
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  wanted = sorted(set(int(n) for n in num_samples))
  if not wanted or wanted[0] < 1 or wanted[-1] > ensemble.num_samples:
    raise ValueError(f'Each number of samples must lie in [1, '
                     f'{ensemble.num_samples}], got {list(num_samples)}.')
  bounds = ensemble_lib.chunk_bounds(
      ensemble.num_samples, ensemble.sample_chunk_size(x.shape[0]), wanted)
  results = {}
  running = tf.zeros_like(x)
  for start, stop in bounds:
    if start >= wanted[-1]:
      break
    chunk = ensemble.chunk(start, stop)
    fn = ensemble.compiled(
        ('summed_cross_entropy_grad', ensemble.chunk_key(chunk)),
        lambda: _summed_cross_entropy_fn(ensemble))
    running += _unconnected_as_zero(fn(chunk, x, labels), x)
    if stop in wanted:
      results[stop] = (running / stop).numpy()
  return results
