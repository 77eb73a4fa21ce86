"""The posterior ensemble interface: the narrow waist of tfp_robust.

A posterior ensemble is S samples of a classifier whose predictive is the
mean of the S softmaxes. Attacks, gradients, metrics, checks and ablations
read a model only through the public methods of `PosteriorEnsemble`:

- `num_samples`, `input_shape`, `num_classes`, `method`;
- `chunks(batch_size, boundaries)`: the samples split into chunks whose
  evaluation fits the memory budget, as `(start, chunk)` pairs, where a chunk
  is an opaque handle (a nest of tensors or a tuple of ints) that
  `chunk_log_probs` understands;
- `chunk_log_probs(chunk, x)`: per-sample log-softmax `[n, B, C]` of one
  chunk; traceable inside a `tf.function` and differentiable in `x`;
- `chunk_weighted_gradient(chunk, x, weights)`: one chunk's log-softmax and
  the input gradient of `sum(weights * log_probs)`; by default a tape over
  `chunk_log_probs`, and a backend may compute it faster (the architecture
  backend loops over samples on large dense nets);
- `subset(indices)`: some of the samples as an ensemble of their own;
- derived from those: `log_probs`, `predictive_log_probs`, `predict`,
  `accuracy`, `take`, `samples`, `evenly_spaced`.

A backend sets `_input_shape` and `_num_classes`, implements `num_samples`,
`chunk_log_probs`, `subset` and either `activation_elements_per_example`
(for the memory budget) or its own `chunks`. Backends: `architecture`
(our JSON architecture plus stacked weights: the fast path), `function`
(`logits_fn(params, x)` plus weights with a sample axis), `keras` (a list of
`tf_keras` models) and `stochastic` (a `tf_keras` model that resamples on
every call).
"""

import abc
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfp_robust.core import xla

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
  if len(x.shape) >= 1 and x.shape[0] == 0:
    raise ValueError('There are no inputs (a batch of 0 examples): an '
                     'evaluation set needs at least one example; check '
                     'num_points / num_test.')
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


def stacked_bytes_per_sample(params) -> int:
  """Bytes of one sample of weights stacked on a leading sample axis.

  For backends that slice such weights into chunks (and whose weights XLA
  may lay out anew inside a compiled call): the copy the memory budget
  counts per sample.
  """
  return sum(int(np.prod(p.shape[1:])) * p.dtype.size
             for p in tf.nest.flatten(params))


def predictive_from_log_probs(log_probs: tf.Tensor) -> tf.Tensor:
  """`[S, B, C]` per-sample log-softmax -> `[B, C]` log of the mean softmax."""
  num_samples = tf.cast(tf.shape(log_probs)[0], log_probs.dtype)
  return tf.reduce_logsumexp(log_probs, axis=0) - tf.math.log(num_samples)


def chunk_bounds(num_samples: int, chunk_size: int,
                 boundaries: Sequence[int] = ()) -> list:
  """`(start, stop)` pairs covering `[0, num_samples)` in order.

  Each piece holds at most `chunk_size` samples, and every value in
  `boundaries` (strictly inside the range) starts a new piece, so that a
  running sum over the pieces passes through each boundary exactly.
  """
  cuts = sorted({0, num_samples} | {int(b) for b in boundaries
                                    if 0 < int(b) < num_samples})
  bounds = []
  for start, stop in zip(cuts[:-1], cuts[1:]):
    for begin in range(start, stop, chunk_size):
      bounds.append((begin, min(begin + chunk_size, stop)))
  return bounds


class PosteriorEnsemble(abc.ABC):
  """S samples of a classifier; the predictive is the mean of the softmaxes.

  Args:
    method: how the samples were obtained ('sgd', 'ensemble', 'vi', 'hmc',
      'keras', ...).
    memory_budget_bytes: bound on the memory of one chunk's evaluation: its
      activations and, for backends that hold the samples' weights stacked,
      one copy of the chunk's weights (a slice when there are several
      chunks; the layout copies XLA makes of the weights inside a compiled
      call when there is one). The samples are split into chunks to respect
      it; the stored weights themselves are not counted.
    jit_compile: compile the hot paths with XLA (None: `core.xla.default()`,
      True unless $TFP_ROBUST_JIT_COMPILE=0).

  Attributes:
    resamples: True when every evaluation draws fresh samples (a stochastic
      model), so that no two calls see the same S samples.
  """

  resamples = False

  def __init__(self, method: str = 'unknown',
               memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
               jit_compile: Optional[bool] = None):
    memory_budget_bytes = int(memory_budget_bytes)
    if memory_budget_bytes < 1:
      raise ValueError(f'memory_budget_bytes must be positive, got '
                       f'{memory_budget_bytes}.')
    self.method = method
    self.memory_budget_bytes = memory_budget_bytes
    self.jit_compile = xla.default() if jit_compile is None else bool(
        jit_compile)
    self._compiled: Dict[object, object] = {}

  # -- what a backend provides ----------------------------------------------

  @property
  @abc.abstractmethod
  def num_samples(self) -> int:
    """S."""

  @property
  def input_shape(self) -> Tuple[int, ...]:
    """The shape of one input (a backend sets `_input_shape`)."""
    return self._input_shape

  @property
  def num_classes(self) -> int:
    """C (a backend sets `_num_classes`)."""
    return self._num_classes

  @abc.abstractmethod
  def chunk_log_probs(self, chunk, x: tf.Tensor) -> tf.Tensor:
    """Per-sample log-softmax `[n, B, C]` of one chunk on inputs `x`.

    Traceable in a `tf.function` and differentiable with respect to `x`;
    `chunk` is one of the handles `chunks` yields. No input checks: callers
    validate once with `check_inputs`.
    """

  @abc.abstractmethod
  def subset(self, indices: Sequence[int]) -> 'PosteriorEnsemble':
    """The samples at `indices` (in that order) as an ensemble of their own."""

  def activation_elements_per_example(self) -> int:
    """Largest activation of one sample on one input, in float32 elements."""
    raise NotImplementedError(
        f'{type(self).__name__} must define activation_elements_per_example '
        'or chunks.')

  def weight_bytes_per_sample(self) -> int:
    """Bytes of one sample's weights that evaluating a chunk may copy.

    0 for backends whose samples are separate models (nothing is sliced).
    """
    return 0

  def chunk(self, start: int, stop: int):
    """The handle of samples `start` to `stop` for `chunk_log_probs`."""
    return (start, stop)

  def chunk_weighted_gradient(self, chunk, x: tf.Tensor, weights: tf.Tensor):
    """One chunk's log-softmax and the input gradient of a linear objective.

    Args:
      chunk: a handle from `chunks`.
      x: inputs `[B, *input_shape]`.
      weights: `[n, B, C]`, or `[B, C]` shared by the chunk's samples.

    Returns:
      `(log_probs [n, B, C], d/dx sum(weights * log_probs))`, the gradient
      zero where the output does not depend on the input. Traceable.
    """
    with tf.GradientTape() as tape:
      tape.watch(x)
      log_probs = self.chunk_log_probs(chunk, x)
      objective = tf.reduce_sum(weights * log_probs)
    gradient = tape.gradient(objective, x)
    return log_probs, tf.zeros_like(x) if gradient is None else gradient

  def chunk_logit_bounds(self, chunk, lower, upper):
    """Interval bounds `([n, B, C], [n, B, C])` on one chunk's logits.

    Over the input box `[lower, upper]`; traceable. Certification needs the
    layer structure, which only some backends know.
    """
    raise NotImplementedError(
        f'{type(self).__name__} cannot bound its logits over an input box '
        '(interval bound propagation needs its layers); certify an '
        'architecture-backed ensemble (ArchitectureEnsemble) instead.')

  # -- chunking ---------------------------------------------------------------

  def sample_chunk_size(self, batch_size: int) -> int:
    """Samples per chunk so that one chunk's evaluation fits the budget."""
    widest = self.activation_elements_per_example()
    # Forward and backward keep a few tensors of the widest layer alive, and
    # the chunk's weights may be copied once (see `memory_budget_bytes`).
    per_sample = (4 * 4 * max(batch_size, 1) * widest +
                  self.weight_bytes_per_sample())
    return max(1, min(self.num_samples,
                      self.memory_budget_bytes // per_sample))

  def chunks(self, batch_size: int,
             boundaries: Sequence[int] = ()) -> Iterator[Tuple[int, object]]:
    """Yields `(start, chunk)` covering the samples in order.

    Args:
      batch_size: inputs evaluated at once (the budget scales with it).
      boundaries: sample indices at which a new chunk must start (e.g. the
        prefix sizes of the gradient-versus-samples experiment).
    """
    size = self.sample_chunk_size(batch_size)
    for start, stop in chunk_bounds(self.num_samples, size, boundaries):
      yield start, self.chunk(start, stop)

  def compiled(self, key, build):
    """A cached compiled function for this ensemble (built on first use)."""
    if key not in self._compiled:
      self._compiled[key] = build()
    return self._compiled[key]

  @staticmethod
  def chunk_key(chunk):
    """The part of a compile-cache key that a chunk handle contributes.

    A handle of plain Python ints (e.g. `(start, stop)` of a Keras list) is
    baked into the traced function, so each gets a function of its own; a
    handle of tensors is an argument, so one function serves all.
    """
    if isinstance(chunk, tuple) and all(isinstance(v, int) for v in chunk):
      return chunk
    return None

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
    return self.subset(np.arange(start, stop))

  def evenly_spaced(self, n: int, num_chains: int = 1
                    ) -> 'PosteriorEnsemble':
    """`n` samples spread evenly along the chains.

    HMC stores its samples step by step with `num_chains` chains
    interleaved (sample i is step i // C of chain i % C). Taking every k-th
    sample would keep a single chain whenever k is a multiple of C; here
    each chain gives n // C samples (the first n % C chains one more),
    evenly spaced along it, so thinning never drops a chain. The samples
    stay in storage order. `num_chains=1`: evenly over all samples.
    """
    if not 1 <= n <= self.num_samples:
      raise ValueError(f'n must lie in [1, {self.num_samples}], got {n}.')
    if num_chains < 1 or self.num_samples % num_chains:
      raise ValueError(
          f'num_chains={num_chains} is invalid for {self.num_samples} '
          'samples: it must be a positive divisor of the number of samples '
          '(the chains of an HMC run, interleaved step by step).')
    steps = self.num_samples // num_chains
    keep = []
    for chain in range(num_chains):
      m = n // num_chains + (1 if chain < n % num_chains else 0)
      keep.append(np.floor(np.arange(m) * steps / max(m, 1)).astype(np.int64)
                  * num_chains + chain)
    return self.subset(np.sort(np.concatenate(keep)))

  # -- evaluation -----------------------------------------------------------

  def _log_probs_fn(self, chunk=None):
    return self.compiled(('log_probs', self.chunk_key(chunk)),
                         lambda: tf.function(self.chunk_log_probs,
                                             jit_compile=self.jit_compile,
                                             reduce_retracing=True))

  def log_probs(self, x) -> tf.Tensor:
    """Per-sample log-softmax `[S, B, C]` of inputs `x` `[B, *input_shape]`."""
    x, _ = check_inputs(x, self.input_shape)
    parts = [self._log_probs_fn(chunk)(chunk, x)
             for _, chunk in self.chunks(x.shape[0])]
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)

  def predictive_log_probs(self, x) -> tf.Tensor:
    """Log of the mean of the S softmaxes, `[B, C]`."""
    return predictive_from_log_probs(self.log_probs(x))

  def predict(self, x) -> tf.Tensor:
    """Predicted classes `[B]` of the predictive mean."""
    return tf.argmax(self.predictive_log_probs(x), axis=-1,
                     output_type=tf.int32)

  def accuracy(self, x, labels, batch_size: Optional[int] = None) -> float:
    """Accuracy of the predictive mean, `batch_size` inputs at a time."""
    x, labels = check_inputs(x, self.input_shape, labels, self.num_classes)
    size = int(batch_size or max(1, x.shape[0]))
    correct = sum(
        int(tf.reduce_sum(tf.cast(self.predict(x[i:i + size]) ==
                                  labels[i:i + size], tf.int32)))
        for i in range(0, x.shape[0], size))
    return correct / max(1, x.shape[0])

  def __repr__(self):
    return (f'{type(self).__name__}(method={self.method!r}, '
            f'num_samples={self.num_samples})')

  # -- persistence ----------------------------------------------------------

  def save(self, directory: str, extra: Optional[dict] = None) -> str:
    """Saves the ensemble; backends without a file format refuse clearly."""
    raise NotImplementedError(
        f'A {type(self).__name__} cannot be saved as an ensemble directory '
        '(its forward pass is code, not data); export it as a SavedModel '
        'with tfp_robust.export.save_model instead.')

  @staticmethod
  def load(directory: str, **kwargs) -> 'PosteriorEnsemble':
    """Restores an ensemble directory written by `save` (see `architecture`)."""
    if _directory_loader is None:
      raise RuntimeError('No backend reads ensemble directories: import '
                         'tfp_robust.ensemble (it registers them).')
    return _directory_loader(directory, **kwargs)


# Reads an ensemble directory. The architecture backend, the one with a file
# format, registers its `load` when it is imported (importing any module of
# `tfp_robust.ensemble` imports the package, which imports every backend), so
# that this interface imports no backend: imports run backend -> interface.
_directory_loader = None


def register_directory_loader(load) -> None:
  """Makes `load(directory, **kwargs)` what `PosteriorEnsemble.load` calls."""
  global _directory_loader
  _directory_loader = load
