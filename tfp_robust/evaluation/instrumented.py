"""A posterior ensemble seen through an evaluation: units mapped, calls counted.

`Instrumented(model)` is the model as the evaluation card attacks it:

- its inputs are the data's, mapped into [0, 1] (the box attacks clip to),
  and mapped back into what the model expects before every call: the data's
  own range `input_range` (pixels in [0, 255]) and then a normalisation
  `(x - mean) / std` per channel. eps is therefore in the data's units
  (divided by the range's width inside);
- every per-sample forward pass on one input is counted (inside compiled
  loops too, by a variable), so each attack's cost is known: `evaluations`
  counts (sample, input) passes, an input gradient counting as one.

It reads the wrapped model only through the ensemble interface, and shares
its counter with its sub-ensembles (`subset`, `samples`).
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfp_robust.core import validate
from tfp_robust.ensemble import base


def _per_channel(name, value, channels):
  array = np.asarray(value, np.float32).reshape(-1)
  if array.size not in (1, channels) or not np.isfinite(array).all():
    validate.fail(name, value, f'it must be one finite number or one per '
                  f'channel ({channels})', 'e.g. mean=(0.49, 0.48, 0.45).')
  return array


def affine(input_shape, input_range=(0.0, 1.0), normalization=None):
  """`(scale, shift)` such that the model's input is `scale * x + shift`.

  Args:
    input_shape: the model's input shape (channels last).
    input_range: `(low, high)` of the data as given.
    normalization: None, or `(mean, std)` (scalars or one per channel) the
      model expects its inputs normalised by, in the data's units.

  Returns:
    `(scale, shift)` arrays broadcastable to `[B, *input_shape]`, or None
    when the map is the identity.
  """
  from tfp_robust import data  # pylint: disable=g-import-not-at-top
  low, high = data.check_range(input_range)
  channels = int(input_shape[-1]) if len(input_shape) == 3 else 1
  mean, std = np.zeros(1, np.float32), np.ones(1, np.float32)
  if normalization is not None:
    try:
      mean, std = normalization
    except (TypeError, ValueError):
      validate.fail('normalization', normalization, 'it must be a pair '
                    '(mean, std)', 'e.g. normalization=((0.5,), (0.25,)).')
    mean = _per_channel('normalization mean', mean, channels)
    std = _per_channel('normalization std', std, channels)
    if (std <= 0).any():
      validate.fail('normalization std', normalization[1],
                    'every std must be > 0', 'e.g. std=(0.25, 0.25, 0.25).')
  scale = (high - low) / std
  shift = (low - mean) / std
  if np.all(scale == 1.0) and np.all(shift == 0.0):
    return None
  return scale.astype(np.float32), shift.astype(np.float32)


class Instrumented(base.PosteriorEnsemble):
  """A posterior ensemble with its inputs mapped and its evaluations counted.

  Args:
    model: the `PosteriorEnsemble` to wrap.
    transform: `(scale, shift)` from `affine`, or None.
    counter: an int64 `tf.Variable` to share (a new one by default).
  """

  def __init__(self, model: base.PosteriorEnsemble, transform=None,
               counter: Optional[tf.Variable] = None):
    super().__init__(model.method, model.memory_budget_bytes,
                     model.jit_compile)
    self.model = model
    self.resamples = model.resamples
    self._input_shape = tuple(model.input_shape)
    self._num_classes = int(model.num_classes)
    self.transform = transform
    self.counter = counter if counter is not None else tf.Variable(
        0, dtype=tf.int64, trainable=False)

  @property
  def evaluations(self) -> int:
    """(sample, input) forward passes so far."""
    return int(self.counter.numpy())

  @property
  def num_samples(self) -> int:
    return self.model.num_samples

  def chunks(self, batch_size: int, boundaries: Sequence[int] = ()):
    return self.model.chunks(batch_size, boundaries)

  def sample_chunk_size(self, batch_size: int) -> int:
    return self.model.sample_chunk_size(batch_size)

  def chunk(self, start: int, stop: int):
    return self.model.chunk(start, stop)

  def _to_model(self, x):
    if self.transform is None:
      return x
    scale, shift = self.transform
    return x * scale + shift

  def _count(self, log_probs):
    shape = tf.shape(log_probs, out_type=tf.int64)
    self.counter.assign_add(shape[0] * shape[1])

  def chunk_log_probs(self, chunk, x):
    log_probs = self.model.chunk_log_probs(chunk, self._to_model(x))
    self._count(log_probs)
    return log_probs

  def chunk_weighted_gradient(self, chunk, x, weights):
    log_probs, gradient = self.model.chunk_weighted_gradient(
        chunk, self._to_model(x), weights)
    self._count(log_probs)
    if self.transform is not None:
      gradient = gradient * self.transform[0]  # d(model input)/dx = scale.
    return log_probs, gradient

  def chunk_logit_bounds(self, chunk, lower, upper):
    # The map is increasing in every coordinate (scale > 0): it maps the
    # box's corners to the model's box.
    return self.model.chunk_logit_bounds(chunk, self._to_model(lower),
                                         self._to_model(upper))

  def bounded_model(self, lower, upper):
    """`(model, lower, upper)`: the wrapped model and the box in its units,
    for `tfp_robust.evaluation.certify` (the map is increasing: scale > 0)."""
    return self.model, self._to_model(lower), self._to_model(upper)

  def subset(self, indices: Sequence[int]) -> 'Instrumented':
    return Instrumented(self.model.subset(indices), self.transform,
                        self.counter)

  def __repr__(self):
    return f'Instrumented({self.model!r})'
