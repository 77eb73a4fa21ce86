"""The architecture-backed posterior ensemble: our fast path.

An `ArchitectureEnsemble` is a JSON-able `networks.Architecture` plus weights
with a leading sample axis `S`. Every method we fit becomes one: a
deterministic net is S = 1, a deep ensemble its members, VI a set of draws
from the variational posterior, HMC the kept states. It evaluates all samples
of a chunk in one traced call and is the only backend with a file format.
"""

import json
import os
import shutil
import tempfile
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfp_robust import networks
from tfp_robust.ensemble import base

_DESCRIPTION_FILE = 'ensemble.json'
_CHECKPOINT_PREFIX = 'weights'


class ArchitectureEnsemble(base.PosteriorEnsemble):
  """S weight samples of one `networks.Architecture`, evaluated all at once.

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
               memory_budget_bytes: int = base.DEFAULT_MEMORY_BUDGET_BYTES,
               jit_compile: bool = True):
    super().__init__(method, memory_budget_bytes, jit_compile)
    self.architecture = architecture
    self._input_shape = architecture.input_shape
    self._num_classes = architecture.num_classes
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

  @property
  def num_samples(self) -> int:
    return int(self.params[0].shape[0])

  def __repr__(self):
    return (f'PosteriorEnsemble(method={self.method!r}, '
            f'num_samples={self.num_samples}, '
            f'num_params={self.architecture.num_params()})')

  def subset(self, indices) -> 'ArchitectureEnsemble':
    indices = np.asarray(indices, np.int64)
    if indices.size and np.array_equal(
        indices, np.arange(indices[0], indices[0] + indices.size)):
      select = lambda p: p[int(indices[0]):int(indices[0]) + indices.size]
    else:
      select = lambda p: tf.gather(p, indices)
    return ArchitectureEnsemble(self.architecture,
                                [select(p) for p in self.params], self.method,
                                self.memory_budget_bytes, self.jit_compile)

  def activation_elements_per_example(self) -> int:
    return self.architecture.widest_activation()

  def chunk(self, start: int, stop: int):
    # Slicing copies weights, so a single chunk is the weights themselves;
    # the copy of one chunk's weights is not counted in the memory budget.
    if start == 0 and stop == self.num_samples:
      return self.params
    return [p[start:stop] for p in self.params]

  def chunk_log_probs(self, chunk, x):
    return networks.log_probs(self.architecture, chunk, x)

  def chunk_logit_bounds(self, chunk, lower, upper):
    return networks.interval_forward(self.architecture, chunk, lower, upper)

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
           **kwargs) -> 'ArchitectureEnsemble':
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


def stack(ensembles: Sequence[ArchitectureEnsemble],
          method: Optional[str] = None) -> ArchitectureEnsemble:
  """Concatenates ensembles of one architecture along the sample axis."""
  first = ensembles[0]
  for other in ensembles[1:]:
    if other.architecture != first.architecture:
      raise ValueError('Only ensembles of one architecture can be stacked.')
  params = [tf.concat([e.params[i] for e in ensembles], axis=0)
            for i in range(len(first.params))]
  return ArchitectureEnsemble(first.architecture, params,
                              method or first.method,
                              first.memory_budget_bytes, first.jit_compile)
