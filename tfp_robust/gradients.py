"""Input gradients of attack losses on a posterior ensemble.

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
from tfp_robust import losses
from tfp_robust import networks


def _direct_fn(ensemble, loss_name):
  architecture, loss_fn = ensemble.architecture, losses.get(loss_name)

  def loss_and_gradient(params, x, labels):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = loss_fn(networks.log_probs(architecture, params, x), labels)
    return loss, tape.gradient(loss, x)  # Sums over the batch.

  return tf.function(loss_and_gradient, jit_compile=ensemble.jit_compile)


def _linearised_fn(ensemble):
  architecture = ensemble.architecture

  def gradient(params, x, coefficients):
    with tf.GradientTape() as tape:
      tape.watch(x)
      objective = tf.reduce_sum(
          coefficients * networks.log_probs(architecture, params, x))
    return tape.gradient(objective, x)

  return tf.function(gradient, jit_compile=ensemble.jit_compile)


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
    gradient is the expected loss gradient E_w[grad_x L(x, w)].
  """
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  losses.get(loss)
  return _loss_and_gradient_unchecked(ensemble, x, labels, loss)


def _loss_and_gradient_unchecked(ensemble, x, labels, loss):
  chunks = list(ensemble.chunks(x.shape[0]))
  if len(chunks) == 1:
    fn = ensemble.compiled(('loss_grad', loss),
                           lambda: _direct_fn(ensemble, loss))
    return fn(chunks[0][1], x, labels)
  log_probs_fn = ensemble._log_probs_fn()
  log_probs = tf.concat([log_probs_fn(chunk, x) for _, chunk in chunks], 0)
  with tf.GradientTape() as tape:
    tape.watch(log_probs)
    loss_values = losses.get(loss)(log_probs, labels)
  coefficients = tape.gradient(loss_values, log_probs)
  gradient_fn = ensemble.compiled('linearised_grad',
                                  lambda: _linearised_fn(ensemble))
  gradient = tf.zeros_like(x)
  for start, chunk in chunks:
    size = chunk[0].shape[0]
    gradient += gradient_fn(chunk, x, coefficients[start:start + size])
  return loss_values, gradient


def _per_sample_gradient_fn(ensemble):
  architecture = ensemble.architecture

  def per_sample_gradients(params, x, labels):
    num_samples = tf.shape(params[0])[0]
    tiled = tf.tile(x[None], tf.concat([[num_samples], tf.ones_like(tf.shape(x))], 0))
    with tf.GradientTape() as tape:
      tape.watch(tiled)
      cross_entropy = losses.per_sample_cross_entropy(
          networks.log_probs(architecture, params, tiled), labels)
    return tape.gradient(cross_entropy, tiled)

  return tf.function(per_sample_gradients, jit_compile=ensemble.jit_compile)


def expected_gradients_by_num_samples(
    ensemble: ensemble_lib.PosteriorEnsemble, x, labels,
    num_samples: Sequence[int]) -> Dict[int, np.ndarray]:
  """Expected cross-entropy gradients over the first n samples, for each n.

  Each sample's own input gradient is taken in one call (the inputs are tiled
  over the sample axis), and running sums give every prefix mean in a single
  pass over the samples.

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
  fn = ensemble.compiled('per_sample_grad',
                         lambda: _per_sample_gradient_fn(ensemble))
  results = {}
  running = tf.zeros_like(x)
  # Tiling multiplies the input by the chunk size: budget for it.
  for start, chunk in ensemble.chunks(x.shape[0]):
    size = chunk[0].shape[0]
    grads = fn(chunk, x, labels)
    prefix = tf.cumsum(grads, axis=0) + running[None]
    for n in wanted:
      if start < n <= start + size:
        results[n] = (prefix[n - start - 1] / n).numpy()
    running = prefix[-1]
  return results
