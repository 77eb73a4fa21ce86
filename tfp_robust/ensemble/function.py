"""The function-backed posterior ensemble: `logits_fn(params, x)` plus weights.

What a user of `tfp.mcmc` already has: a function computing one network's
logits from one set of weights, and the chain's states with a leading sample
axis. All samples of a chunk are evaluated at once with `tf.vectorized_map`.
"""

from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from tfp_robust.ensemble import base


class FunctionEnsemble(base.PosteriorEnsemble):
  """S weight samples of a network given as a function.

  Args:
    logits_fn: `logits_fn(params, x) -> [B, C]` for ONE sample's `params`
      (the structure of `params` without its sample axis) and inputs `x`
      `[B, *input_shape]`; traceable by `tf.function`.
    params: a nest (list, tuple, dict) of tensors, every leaf with the same
      leading sample axis S.
    input_shape: the shape of one input.
    num_classes: C.
    method: a name for reports (e.g. 'hmc').
    activation_elements: the largest activation of one sample on one input,
      in elements, for the memory budget; by default the largest of the
      input size, the classes and the last axis of every weight (exact for
      dense nets, an underestimate for conv nets: give it there).
    memory_budget_bytes: see `PosteriorEnsemble`.
    jit_compile: compile with XLA.

  Raises:
    ValueError: when the leaves disagree on S, a weight is not finite, or
      `logits_fn` does not return `[B, num_classes]`.
  """

  def __init__(self, logits_fn: Callable, params, input_shape,
               num_classes: int, method: str = 'function',
               activation_elements: Optional[int] = None,
               memory_budget_bytes: int = base.DEFAULT_MEMORY_BUDGET_BYTES,
               jit_compile: Optional[bool] = None, _checked: bool = False):
    super().__init__(method, memory_budget_bytes, jit_compile)
    if not callable(logits_fn):
      raise ValueError(f'logits_fn must be callable, got {logits_fn!r}.')
    self.logits_fn = logits_fn
    self.params = tf.nest.map_structure(
        lambda p: tf.convert_to_tensor(p, tf.float32), params)
    leaves = tf.nest.flatten(self.params)
    if not leaves:
      raise ValueError('params must hold at least one tensor.')
    sizes = {int(p.shape[0]) if p.shape.rank else -1 for p in leaves}
    if len(sizes) != 1 or min(sizes) < 1:
      raise ValueError(f'Every leaf of params needs the same leading sample '
                       f'axis S >= 1; got leading sizes {sorted(sizes)}.')
    self._num_samples = sizes.pop()
    self._input_shape = tuple(int(d) for d in input_shape)
    self._num_classes = int(num_classes)
    if activation_elements is None:
      activation_elements = max([int(np.prod(self._input_shape)),
                                 self._num_classes] +
                                [int(p.shape[-1]) for p in leaves
                                 if p.shape.rank > 1])
    self._activation_elements = int(activation_elements)
    if not _checked:
      for p in leaves:
        if not bool(tf.reduce_all(tf.math.is_finite(p))):
          raise ValueError('params contain NaN or infinite weights.')
      first = tf.nest.map_structure(lambda p: p[0], self.params)
      logits = logits_fn(first, tf.zeros((1,) + self._input_shape))
      if tuple(logits.shape) != (1, self._num_classes):
        raise ValueError(
            f'logits_fn(params[0], x) must return [B, {self._num_classes}] '
            f'for inputs [B, {", ".join(map(str, self._input_shape))}], got '
            f'{tuple(logits.shape)} for B = 1.')

  @property
  def num_samples(self) -> int:
    return self._num_samples

  def activation_elements_per_example(self) -> int:
    return self._activation_elements

  def weight_bytes_per_sample(self) -> int:
    return base.stacked_bytes_per_sample(self.params)

  def chunk(self, start: int, stop: int):
    if start == 0 and stop == self.num_samples:
      return self.params
    return tf.nest.map_structure(lambda p: p[start:stop], self.params)

  def chunk_log_probs(self, chunk, x):
    return tf.vectorized_map(
        lambda p: tf.nn.log_softmax(self.logits_fn(p, x)), chunk)

  def subset(self, indices) -> 'FunctionEnsemble':
    indices = np.asarray(indices, np.int64)
    return FunctionEnsemble(
        self.logits_fn,
        tf.nest.map_structure(lambda p: tf.gather(p, indices), self.params),
        self._input_shape, self._num_classes, self.method,
        self._activation_elements, self.memory_budget_bytes, self.jit_compile,
        _checked=True)
