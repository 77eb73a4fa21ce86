"""A SavedModel written by `tfp_robust.export.save_model`, as an ensemble.

Its `log_probs` signature gives every sample's log-softmax at once (it
chunks over samples inside the graph), so this backend has one chunk; a
sub-ensemble selects samples from that output.
"""

import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfp_robust.ensemble import base


class SavedModelEnsemble(base.PosteriorEnsemble):
  """The ensemble in a SavedModel with a `log_probs` signature.

  Args:
    path: the SavedModel directory.
    method: a name for reports.
    jit_compile: compile the attack loops with XLA (off by default: the
      loaded graph is compiled as it was saved).

  Raises:
    ValueError: when `path` is not a SavedModel with a `log_probs`
      signature taking `x` `[B, ...]` and returning `[S, B, C]`.
  """

  def __init__(self, path: str, method: str = 'saved_model',
               jit_compile: bool = False,
               _loaded=None, _indices: Optional[np.ndarray] = None):
    super().__init__(method, base.DEFAULT_MEMORY_BUDGET_BYTES, jit_compile)
    if _loaded is None:
      if not os.path.isfile(os.path.join(path, 'saved_model.pb')):
        raise ValueError(f'{path!r} is not a SavedModel directory (no '
                         'saved_model.pb); export one with '
                         'tfp_robust.export.save_model.')
      try:
        _loaded = tf.saved_model.load(path)
      except (tf.errors.OpError, ValueError, OSError) as error:
        raise ValueError(f'The SavedModel in {path!r} cannot be read '
                         f'({type(error).__name__}: {error}).') from None
    signature = getattr(_loaded, 'signatures', {}).get('log_probs')
    if signature is None:
      raise ValueError(f'The SavedModel in {path!r} has no log_probs '
                       'signature; export it with tfp_robust.export.')
    spec = signature.structured_input_signature[1].get('x')
    if spec is None or spec.shape.rank is None or not all(
        d is not None for d in spec.shape[1:]):
      raise ValueError(f'The log_probs signature of {path!r} must take x '
                       '[B, *input_shape] with a known input shape.')
    self.path = path
    self._loaded = _loaded
    self._signature = signature
    self._input_shape = tuple(int(d) for d in spec.shape[1:])
    probe = signature(x=tf.zeros((1,) + self._input_shape))['log_probs']
    if probe.shape.rank != 3:
      raise ValueError(f'log_probs of {path!r} returned shape {probe.shape}, '
                       'not [S, B, C].')
    self._total_samples, self._num_classes = int(probe.shape[0]), int(
        probe.shape[2])
    self._indices = (np.arange(self._total_samples) if _indices is None
                     else np.asarray(_indices, np.int64))

  @property
  def num_samples(self) -> int:
    return int(self._indices.size)

  def chunks(self, batch_size: int, boundaries: Sequence[int] = ()):
    """One chunk per boundary piece (the graph chunks internally)."""
    bounds = base.chunk_bounds(self.num_samples, self.num_samples, boundaries)
    for start, stop in bounds:
      yield start, self.chunk(start, stop)

  def sample_chunk_size(self, batch_size: int) -> int:
    return self.num_samples

  def chunk_log_probs(self, chunk, x):
    start, stop = chunk
    out = self._signature(x=x)['log_probs']
    if self.num_samples == self._total_samples and (start, stop) == (
        0, self._total_samples):
      return out
    return tf.gather(out, self._indices[start:stop])

  def subset(self, indices) -> 'SavedModelEnsemble':
    return SavedModelEnsemble(self.path, self.method, self.jit_compile,
                              _loaded=self._loaded,
                              _indices=self._indices[np.asarray(indices)])
