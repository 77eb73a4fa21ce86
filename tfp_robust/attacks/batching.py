"""Running compiled attack loops over image batches, and keeping the worst case.

A compiled attack (APGD, Square, compiled PGD) runs its whole iteration loop
inside one `tf.function`. It needs every posterior sample in one chunk, so
the images go in batches small enough for the ensemble's memory budget to
hold all samples at once (`batch_size`). Batches are padded to a power of
two, so that a handful of compiled shapes serve every batch and every later
run on the images an earlier attack left unbroken.

`WorstCase` keeps, per image, the strongest adversarial input found so far
by any attack: one that fools the predictive if any did, else the one with
the highest predictive cross-entropy. Later attacks run only on the images
still classified correctly, as AutoAttack does.
"""

from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tfp_robust import ensemble as ensemble_lib
from tfp_robust.evaluation import gradients
from tfp_robust.attacks import losses


def batch_size(ensemble, num_points: int) -> int:
  """The largest image batch (<= num_points) that fits all samples in a chunk.

  Returns 0 when not even one image does (then a compiled loop cannot hold
  the ensemble and callers fall back to a step-by-step loop).
  """
  size = max(1, int(num_points))
  while size >= 1:
    if ensemble.sample_chunk_size(size) >= ensemble.num_samples:
      return size
    size //= 2
  return 0


def _bucket(count: int, largest: int) -> int:
  """The smallest power of two >= count, capped at `largest`."""
  bucket = 1
  while bucket < count:
    bucket *= 2
  return min(bucket, largest)


def map_batches(ensemble, x, labels, fn: Callable, size: Optional[int] = None):
  """`fn(x_batch, labels_batch, positions)` over padded batches, trimmed.

  `positions` `[b]` are the batch's indices into `x` (padding repeats the
  last one): random draws indexed by them do not depend on how the images
  were batched, so results do not depend on the memory budget.

  Args:
    ensemble: the ensemble the batches are sized for.
    x: inputs `[B, ...]` (tensor).
    labels: labels `[B]` (int32 tensor).
    fn: returns a tuple of tensors, each with a leading batch axis.
    size: the batch size; by default `batch_size(ensemble, B)`.

  Returns:
    The tuple of `fn`'s outputs concatenated over all batches, `[B, ...]`.
  """
  count = int(x.shape[0])
  size = size or batch_size(ensemble, count)
  if size < 1:
    raise ValueError(
        'Not even one image fits every posterior sample in one chunk of the '
        f'memory budget ({ensemble.memory_budget_bytes} bytes); raise '
        'memory_budget_bytes or use fewer samples.')
  outputs = []
  for start in range(0, count, size):
    stop = min(start + size, count)
    padded = _bucket(stop - start, size)
    positions = tf.minimum(tf.range(start, start + padded), stop - 1)
    result = fn(tf.gather(x, positions), tf.gather(labels, positions),
                positions)
    outputs.append([t[:stop - start] for t in result])
  return tuple(tf.concat(parts, 0) for parts in zip(*outputs))


def plan(ensemble, num_points: int):
  """`(batch_size, chunk)` for a loop attack on `num_points` images.

  The compiled plan: batches that hold every sample in one chunk (`chunk`
  is then that chunk's handle). When not even one image fits, the fallback:
  all images at once with `chunk` None, evaluated chunk by chunk over the
  samples, step by step (exact, slower, memory bounded).
  """
  size = batch_size(ensemble, num_points)
  if size:
    return size, ensemble.chunk(0, ensemble.num_samples)
  return max(1, int(num_points)), None


def loss_gradient_prediction(ensemble, chunk, x, labels, loss_fn,
                             eot_iter: int = 1):
  """Loss `[B]`, its input gradient and the predicted classes `[B]`.

  Traceable when `chunk` is a handle holding every sample; with `chunk`
  None it runs eagerly over the sample chunks of the memory budget. With
  `eot_iter` > 1 (for ensembles that resample on every call) the gradient
  and loss average that many evaluations: expectation over transformation.
  """
  if chunk is None:
    total_loss, total_grad, total_log_probs = 0.0, 0.0, []
    for _ in range(eot_iter):
      value, grad = gradients._loss_and_gradient_unchecked(  # pylint: disable=protected-access
          ensemble, x, labels, loss_fn)
      total_loss += value
      total_grad += grad
      total_log_probs.append(ensemble.log_probs(x))
    predictive = ensemble_lib.predictive_from_log_probs(
        tf.concat(total_log_probs, 0))
    return (total_loss / eot_iter, total_grad / eot_iter,
            tf.argmax(predictive, -1, output_type=tf.int32))
  total_loss, total_grad, total_log_probs = 0.0, 0.0, []
  for _ in range(eot_iter):
    if loss_fn is losses.expected_cross_entropy:
      # Linear in the log-probs: the backend's weighted gradient.
      value, gradient, log_probs = gradients.expected_loss_and_gradient(
          ensemble, chunk, x, labels)
    else:
      with tf.GradientTape() as tape:
        tape.watch(x)
        log_probs = ensemble.chunk_log_probs(chunk, x)
        value = loss_fn(log_probs, labels)
      gradient = tape.gradient(value, x)
    total_grad += tf.zeros_like(x) if gradient is None else gradient
    total_loss += value
    total_log_probs.append(log_probs)
  predictive = ensemble_lib.predictive_from_log_probs(
      tf.concat(total_log_probs, 0))
  predicted = tf.argmax(predictive, -1, output_type=tf.int32)
  return total_loss / eot_iter, total_grad / eot_iter, predicted


class WorstCase:
  """Per image, the strongest adversarial input found so far.

  Args:
    ensemble: the ensemble under attack.
    x: clean inputs `[B, ...]`.
    labels: labels `[B]`.
  """

  def __init__(self, ensemble, x, labels):
    self.ensemble = ensemble
    self.x, self.labels = ensemble_lib.check_inputs(
        x, ensemble.input_shape, labels, ensemble.num_classes)
    self.x_adv = self.x
    self.loss, self.fooled = self._score(self.x, self.labels)

  def _score(self, x_adv, labels):
    log_probs = self.ensemble.log_probs(x_adv)
    loss = losses.predictive_cross_entropy(log_probs, labels)
    predicted = tf.argmax(ensemble_lib.predictive_from_log_probs(log_probs),
                          -1, output_type=tf.int32)
    return loss, predicted != labels

  def remaining(self) -> np.ndarray:
    """Indices of the images no attack has fooled yet."""
    return np.flatnonzero(~self.fooled.numpy())

  def update(self, indices, x_candidate) -> int:
    """Offers candidates for the images at `indices`; returns how many fell."""
    indices = np.asarray(indices, np.int64)
    if not indices.size:
      return 0
    candidate = tf.convert_to_tensor(x_candidate, tf.float32)
    loss, fooled = self._score(candidate, tf.gather(self.labels, indices))
    old_loss = tf.gather(self.loss, indices)
    old_fooled = tf.gather(self.fooled, indices)
    better = (fooled & ~old_fooled) | ((fooled == old_fooled) &
                                       (loss > old_loss))
    where = indices[better.numpy()]
    if where.size:
      chosen = tf.boolean_mask(candidate, better)
      self.x_adv = tf.tensor_scatter_nd_update(self.x_adv, where[:, None],
                                               chosen)
      self.loss = tf.tensor_scatter_nd_update(
          self.loss, where[:, None], tf.boolean_mask(loss, better))
    newly = fooled & ~old_fooled
    self.fooled = tf.tensor_scatter_nd_update(
        self.fooled, indices[:, None], old_fooled | fooled)
    return int(tf.reduce_sum(tf.cast(newly, tf.int32)))

  def run(self, attack: Callable) -> int:
    """`attack(x, labels) -> x_adv` on the remaining images; returns fallen."""
    indices = self.remaining()
    if not indices.size:
      return 0
    x_adv = attack(tf.gather(self.x, indices), tf.gather(self.labels, indices))
    return self.update(indices, x_adv)

  def accuracy(self) -> float:
    return 1.0 - float(tf.reduce_mean(tf.cast(self.fooled, tf.float32)))

  def restarts(self, attack: Callable, count: int, seed, offset: int = 0,
               name: str = '') -> None:
    """`count` runs of `attack(x, labels, run_seed)`, each on the survivors.

    Run r gets the seed `fold_in(seed, offset + r)`; with a `name`, each run
    logs how many images it fooled.
    """
    for restart in range(int(count)):
      run_seed = tf.random.experimental.stateless_fold_in(seed, offset + restart)
      fallen = self.run(lambda xs, ys, s=run_seed: attack(xs, ys, s))
      if name:
        logging.info('%s restart %d/%d: %d more fooled, accuracy %.3f', name,
                     restart + 1, count, fallen, self.accuracy())
