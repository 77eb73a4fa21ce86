"""The posterior ensemble: the one type every fitting method produces.

A `PosteriorEnsemble` is an architecture plus weights with a leading sample
axis `S`. A deterministic net is S = 1, a deep ensemble its members, VI a set
of draws from the variational posterior, HMC the kept states. Attacks,
gradients and metrics only ever see this type.
"""

import json
import os
import shutil
import tempfile
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfp_robust import networks

_DESCRIPTION_FILE = 'ensemble.json'
_CHECKPOINT_PREFIX = 'weights'

# The largest activation tensor of one chunk, in bytes, unless told otherwise.
DEFAULT_MEMORY_BUDGET_BYTES = 1 << 30


def check_inputs(x, input_shape, labels=None, num_classes=None):
  """Validates a batch of inputs (and labels) and returns them as tensors.

  Args:
    x: inputs `[B, *input_shape]` with values in [0, 1].
    input_shape: the shape of one input.
    labels: optional int labels `[B]`.
    num_classes: number of classes the labels index.

  Returns:
    `x` as a float32 tensor, and `labels` as an int32 tensor (or None).

  Raises:
    ValueError: on a wrong shape, values outside [0, 1] or labels out of range.
  """
  x = tf.convert_to_tensor(x, tf.float32)
  expected = tuple(input_shape)
  if tuple(x.shape[1:]) != expected or len(x.shape) != len(expected) + 1:
    raise ValueError(f'Inputs must have shape [B, {", ".join(map(str, expected))}]'
                     f', got {tuple(x.shape)}; reshape them (flat vs image '
                     'layout is chosen when loading the data).')
  if x.shape.num_elements() and not bool(tf.reduce_all(tf.math.is_finite(x))):
    raise ValueError('Inputs contain NaN or infinite values.')
  x_min, x_max = float(tf.reduce_min(x)), float(tf.reduce_max(x))
  if x_min < 0.0 or x_max > 1.0:
    raise ValueError(f'Inputs must lie in [0, 1], got values in [{x_min:.3g}, '
                     f'{x_max:.3g}]; scale pixels by 1/255.')
  if labels is None:
    return x, None
  labels = tf.convert_to_tensor(labels)
  if not labels.dtype.is_integer:
    raise ValueError(f'Labels must be integers, got dtype {labels.dtype.name}.')
  labels = tf.cast(labels, tf.int32)
  if tuple(labels.shape) != (x.shape[0],):
    raise ValueError(f'Labels must have shape [{x.shape[0]}] to match the '
                     f'inputs, got {tuple(labels.shape)}.')
  if num_classes is not None and x.shape[0]:
    if int(tf.reduce_min(labels)) < 0 or int(tf.reduce_max(labels)) >= num_classes:
      raise ValueError(f'Labels must lie in [0, {num_classes}), got values in '
                       f'[{int(tf.reduce_min(labels))}, '
                       f'{int(tf.reduce_max(labels))}].')
  return x, labels


class PosteriorEnsemble:
  """S weight samples of one architecture, evaluated all at once.

  Args:
    architecture: a `networks.Architecture`.
    params: weights in `architecture.param_shapes()` order, each with a
      leading sample axis `S` of the same size.
    method: how the samples were obtained ('sgd', 'ensemble', 'vi', 'hmc').
    memory_budget_bytes: bound on the largest activation tensor of one
      evaluation; the samples are split into chunks to respect it.
    jit_compile: compile the hot paths with XLA.
  """

  def __init__(self, architecture: networks.Architecture,
               params: Sequence, method: str = 'unknown',
               memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
               jit_compile: bool = True):
    self.architecture = architecture
    self.method = method
    self.memory_budget_bytes = int(memory_budget_bytes)
    self.jit_compile = jit_compile
    params = [tf.convert_to_tensor(p, tf.float32) for p in params]
    expected = architecture.param_shapes()
    if len(params) != len(expected):
      raise ValueError(f'Expected {len(expected)} weight tensors for this '
                       f'architecture, got {len(params)}.')
    num_samples = params[0].shape[0]
    for p, (name, shape) in zip(params, expected):
      if tuple(p.shape) != (num_samples,) + tuple(shape):
        raise ValueError(f'Weight {name} must have shape [S, '
                         f'{", ".join(map(str, shape))}] with S={num_samples}, '
                         f'got {tuple(p.shape)}.')
    if num_samples < 1:
      raise ValueError('A posterior ensemble needs at least one sample.')
    self.params = params
    self._compiled: Dict[object, object] = {}

  @property
  def num_samples(self) -> int:
    return int(self.params[0].shape[0])

  @property
  def input_shape(self):
    return self.architecture.input_shape

  @property
  def num_classes(self) -> int:
    return self.architecture.num_classes

  def __repr__(self):
    return (f'PosteriorEnsemble(method={self.method!r}, '
            f'num_samples={self.num_samples}, '
            f'num_params={self.architecture.num_params()})')

  # -- sub-ensembles --------------------------------------------------------

  def take(self, n: int) -> 'PosteriorEnsemble':
    """The first `n` samples as an ensemble of their own."""
    if not 1 <= n <= self.num_samples:
      raise ValueError(f'n must lie in [1, {self.num_samples}], got {n}.')
    return self.samples(0, n)

  def samples(self, start: int, stop: int) -> 'PosteriorEnsemble':
    """Samples `start` to `stop` (exclusive) as an ensemble of their own."""
    if not 0 <= start < stop <= self.num_samples:
      raise ValueError(f'Need 0 <= start < stop <= {self.num_samples}, got '
                       f'{start} and {stop}.')
    return self._subset(lambda p: p[start:stop])

  def evenly_spaced(self, n: int) -> 'PosteriorEnsemble':
    """`n` samples spread evenly over all of them (e.g. along HMC chains)."""
    if not 1 <= n <= self.num_samples:
      raise ValueError(f'n must lie in [1, {self.num_samples}], got {n}.')
    indices = np.floor(np.arange(n) * self.num_samples / n).astype(np.int64)
    return self._subset(lambda p: tf.gather(p, indices))

  def _subset(self, fn):
    return PosteriorEnsemble(self.architecture, [fn(p) for p in self.params],
                             self.method, self.memory_budget_bytes,
                             self.jit_compile)

  # -- evaluation -----------------------------------------------------------

  def sample_chunk_size(self, batch_size: int) -> int:
    """Samples per chunk so that one chunk's activations fit the budget."""
    widest = self.architecture.widest_activation()
    # Forward and backward keep a few tensors of the widest layer alive.
    per_sample = 4 * 4 * max(batch_size, 1) * widest
    return max(1, min(self.num_samples,
                      self.memory_budget_bytes // per_sample))

  def chunks(self, batch_size: int):
    """Yields `(start, params_chunk)` covering the samples in order.

    Slicing copies weights, so a single chunk is the weights themselves; the
    copy of one chunk's weights is not counted in the memory budget.
    """
    size = self.sample_chunk_size(batch_size)
    if size >= self.num_samples:
      yield 0, self.params
      return
    for start in range(0, self.num_samples, size):
      yield start, [p[start:start + size] for p in self.params]

  def compiled(self, key, build):
    """A cached compiled function for this ensemble's architecture."""
    if key not in self._compiled:
      self._compiled[key] = build()
    return self._compiled[key]

  def _log_probs_fn(self):
    architecture = self.architecture
    return self.compiled('log_probs', lambda: tf.function(
        lambda params, x: networks.log_probs(architecture, params, x),
        jit_compile=self.jit_compile))

  def log_probs(self, x) -> tf.Tensor:
    """Per-sample log-softmax `[S, B, C]` of inputs `x` `[B, *input_shape]`."""
    x, _ = check_inputs(x, self.input_shape)
    fn = self._log_probs_fn()
    parts = [fn(chunk, x) for _, chunk in self.chunks(x.shape[0])]
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)

  def predictive_log_probs(self, x) -> tf.Tensor:
    """Log of the mean of the S softmaxes, `[B, C]`."""
    return predictive_from_log_probs(self.log_probs(x))

  def predict(self, x) -> tf.Tensor:
    """Predicted classes `[B]` of the predictive mean."""
    return tf.argmax(self.predictive_log_probs(x), axis=-1, output_type=tf.int32)

  def accuracy(self, x, labels) -> float:
    """Accuracy of the predictive mean."""
    x, labels = check_inputs(x, self.input_shape, labels, self.num_classes)
    return float(tf.reduce_mean(tf.cast(self.predict(x) == labels, tf.float32)))

  # -- persistence ----------------------------------------------------------

  def save(self, directory: str, extra: Optional[dict] = None) -> str:
    """Writes a `tf.train.Checkpoint` and a JSON description, atomically.

    Args:
      directory: the target directory; replaced if it exists.
      extra: JSON-able metadata kept beside the description.

    Returns:
      The directory.
    """
    directory = os.path.abspath(directory)
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.tmp-ensemble-', dir=parent)
    try:
      variables = {f'param_{i}': tf.Variable(p, trainable=False)
                   for i, p in enumerate(self.params)}
      tf.train.Checkpoint(**variables).write(
          os.path.join(staging, _CHECKPOINT_PREFIX))
      description = {
          'architecture': json.loads(self.architecture.to_json()),
          'method': self.method,
          'num_samples': self.num_samples,
          'extra': extra or {},
      }
      with open(os.path.join(staging, _DESCRIPTION_FILE), 'w') as f:
        json.dump(description, f, indent=2, sort_keys=True)
      if os.path.exists(directory):
        old = directory + '.old'
        shutil.rmtree(old, ignore_errors=True)
        os.rename(directory, old)
        os.rename(staging, directory)
        shutil.rmtree(old, ignore_errors=True)
      else:
        os.rename(staging, directory)
    except BaseException:
      shutil.rmtree(staging, ignore_errors=True)
      raise
    return directory

  @classmethod
  def load(cls, directory: str,
           architecture: Optional[networks.Architecture] = None,
           **kwargs) -> 'PosteriorEnsemble':
    """Restores an ensemble written by `save`.

    Args:
      directory: what `save` wrote.
      architecture: if given, loading fails unless the saved one matches.
      **kwargs: passed to the constructor (memory budget, jit).

    Raises:
      FileNotFoundError: when there is no saved ensemble in `directory`.
      ValueError: when the checkpoint does not match its description or the
        expected architecture.
    """
    if not os.path.isdir(directory) and os.path.isdir(directory + '.old'):
      directory += '.old'  # `save` was stopped between its two renames.
    description_path = os.path.join(directory, _DESCRIPTION_FILE)
    if not os.path.exists(description_path):
      raise FileNotFoundError(
          f'No posterior ensemble in {directory!r} (missing '
          f'{_DESCRIPTION_FILE}); train one first, e.g. with binaries/train.py.')
    with open(description_path) as f:
      description = json.load(f)
    saved = networks.Architecture(**description['architecture'])
    if architecture is not None and saved != architecture:
      raise ValueError(f'The ensemble in {directory!r} has architecture '
                       f'{saved.to_json()}, not the expected '
                       f'{architecture.to_json()}; point to the matching '
                       'checkpoint or retrain.')
    num_samples = int(description['num_samples'])
    variables = {f'param_{i}': tf.Variable(tf.zeros((num_samples,) + shape),
                                           trainable=False)
                 for i, (_, shape) in enumerate(saved.param_shapes())}
    try:
      status = tf.train.Checkpoint(**variables).read(
          os.path.join(directory, _CHECKPOINT_PREFIX))
      status.assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError) as error:
      raise ValueError(f'The checkpoint in {directory!r} does not match its '
                       f'description ({error}); it is corrupt or was written '
                       'by a different version: retrain.') from error
    params = [variables[f'param_{i}'].read_value()
              for i in range(len(variables))]
    ensemble = cls(saved, params, description.get('method', 'unknown'),
                   **kwargs)
    ensemble.extra = description.get('extra', {})
    return ensemble


def predictive_from_log_probs(log_probs: tf.Tensor) -> tf.Tensor:
  """`[S, B, C]` per-sample log-softmax -> `[B, C]` log of the mean softmax."""
  num_samples = tf.cast(tf.shape(log_probs)[0], log_probs.dtype)
  return tf.reduce_logsumexp(log_probs, axis=0) - tf.math.log(num_samples)


def stack(ensembles: Sequence[PosteriorEnsemble],
          method: Optional[str] = None) -> PosteriorEnsemble:
  """Concatenates ensembles of one architecture along the sample axis."""
  first = ensembles[0]
  for other in ensembles[1:]:
    if other.architecture != first.architecture:
      raise ValueError('Only ensembles of one architecture can be stacked.')
  params = [tf.concat([e.params[i] for e in ensembles], axis=0)
            for i in range(len(first.params))]
  return PosteriorEnsemble(first.architecture, params, method or first.method,
                           first.memory_budget_bytes, first.jit_compile)
