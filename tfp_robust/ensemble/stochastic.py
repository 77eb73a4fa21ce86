"""The stochastic posterior ensemble: a model that resamples on every call.

A `tf_keras` model whose every call draws new weights or masks (`tfp.layers`
Flipout or reparameterisation layers, MC dropout) is evaluated on S calls.
Its samples are not fixed: two evaluations see different draws, so a gradient
attack on it is expectation over transformation (each gradient averages the
S fresh draws of its call) and every evaluation is a resampled one. For a
fixed-draw evaluation of a `tfp.layers` model, draw its weights once with
`tfp_robust.fit.vi.posterior_ensemble` instead; reports say which it was through
`resamples`.
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from tfp_robust.ensemble import base
from tfp_robust.ensemble import keras as keras_backend


class StochasticEnsemble(base.PosteriorEnsemble):
  """S calls of one stochastic `tf_keras` model, averaged.

  Args:
    model: a built `tf_keras.Model` returning logits `[B, C]` and drawing
      new randomness on every call.
    num_samples: S, the calls per evaluation.
    seed: if not None, seeds TensorFlow's global generators once, here
      (`tf_keras.utils.set_random_seed`), so that a process making the same
      calls draws the same bits; the model's random ops are stateful, so no
      per-call seed exists.
    call_kwargs: keyword arguments of every call; `{'training': True}` for
      MC dropout. Default `{}`.
    method: a name for reports.
    memory_budget_bytes: see `PosteriorEnsemble`.
    jit_compile: compile with XLA; off by default, because XLA does not
      advance stateful random ops between calls.

  Raises:
    ValueError: when the model gives the same output twice on one input
      (it does not resample with these `call_kwargs`), or it is not a
      built `tf_keras` model mapping inputs to `[B, C]` logits.
  """

  resamples = True

  def __init__(self, model, num_samples: int, seed: Optional[int] = 0,
               call_kwargs: Optional[dict] = None, method: str = 'stochastic',
               memory_budget_bytes: int = base.DEFAULT_MEMORY_BUDGET_BYTES,
               jit_compile: bool = False, _checked: bool = False):
    super().__init__(method, memory_budget_bytes, jit_compile)
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
      raise ValueError(f'num_samples must be an int >= 1, got {num_samples!r}.')
    self._keras = keras_backend.KerasEnsemble(
        [model], method, 'logits', call_kwargs if call_kwargs is not None
        else {}, memory_budget_bytes, jit_compile)
    self.model = model
    self._input_shape = self._keras.input_shape
    self._num_classes = self._keras.num_classes
    self.seed = seed
    self._num_samples = int(num_samples)
    if _checked:
      return
    if seed is not None:
      tf_keras.utils.set_random_seed(int(seed))
    probe = tf.fill((1,) + self.input_shape, 0.5)
    first, second = (self._keras.chunk_log_probs((0, 1), probe)
                     for _ in range(2))
    if bool(tf.reduce_all(first == second)):
      raise ValueError(
          'The model returned the same output on two calls with call_kwargs='
          f'{self._keras.call_kwargs}: it does not resample. For MC dropout '
          "pass call_kwargs={'training': True}; for a deterministic model "
          'use KerasEnsemble.')

  @property
  def num_samples(self) -> int:
    return self._num_samples

  def activation_elements_per_example(self) -> int:
    return self._keras.activation_elements_per_example()

  def weight_bytes_per_sample(self) -> int:
    """Every call draws its weights: a draw and its noise per variable.

    Without this the budget saw activations alone, and PGD on a 784-1024-10
    Flipout net (250 calls x 500 images, 1 GiB budget) grew to 17.5 GiB.
    """
    return 2 * 4 * sum(int(np.prod(v.shape)) for v in self.model.variables)

  def chunk_log_probs(self, chunk, x):
    start, stop = chunk
    return tf.concat([self._keras.chunk_log_probs((0, 1), x)
                      for _ in range(stop - start)], axis=0)

  def subset(self, indices: Sequence[int]) -> 'StochasticEnsemble':
    """`len(indices)` fresh calls: the draws have no identity to keep."""
    return StochasticEnsemble(self.model, len(indices), None,
                              self._keras.call_kwargs, self.method,
                              self.memory_budget_bytes, self.jit_compile,
                              _checked=True)
