"""The architecture-backed posterior ensemble: our fast path.

An `ArchitectureEnsemble` is a JSON-able `networks.Architecture` plus weights
with a leading sample axis `S`. Every method we fit becomes one: a
deterministic net is S = 1, a deep ensemble its members, VI a set of draws
from the variational posterior, HMC the kept states. It evaluates all samples
of a chunk in one traced call and is the only backend with a file format.
"""

import json
import os
from typing import Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from tfp_robust.core import files
from tfp_robust import networks
from tfp_robust.ensemble import base

DESCRIPTION_FILE = 'ensemble.json'
_CHECKPOINT_PREFIX = 'weights'


class ArchitectureEnsemble(base.PosteriorEnsemble):
  """S weight samples of one `networks.Architecture`, evaluated all at once.

  Args:
    architecture: a `networks.Architecture`.
    params: weights in `architecture.param_shapes()` order, each with a
      leading sample axis `S` of the same size.
    method: how the samples were obtained ('sgd', 'ensemble', 'vi', 'hmc').
    memory_budget_bytes: bound on one chunk's evaluation: its activations
      and one copy of its weights (see `PosteriorEnsemble`).
    jit_compile: compile the hot paths with XLA.
  """

  def __init__(self, architecture: networks.Architecture,
               params: Sequence, method: str = 'unknown',
               memory_budget_bytes: int = base.DEFAULT_MEMORY_BUDGET_BYTES,
               jit_compile: Optional[bool] = None):
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
    for p, (name, _) in zip(params, expected):
      if not bool(tf.reduce_all(tf.math.is_finite(p))):
        bad = int(tf.reduce_sum(tf.cast(~tf.math.is_finite(p), tf.int32)))
        raise ValueError(
            f'Weight {name} holds {bad} NaN or infinite values: a posterior '
            'ensemble needs finite weights. The fit diverged (lower the '
            'learning rate or step size) or the file is corrupt.')
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

  def weight_bytes_per_sample(self) -> int:
    return base.stacked_bytes_per_sample(self.params)

  def chunk(self, start: int, stop: int):
    # Slicing copies weights, so a single chunk is the weights themselves;
    # the copy of a chunk's weights is counted in the memory budget.
    if start == 0 and stop == self.num_samples:
      return self.params
    return [p[start:stop] for p in self.params]

  def chunk_log_probs(self, chunk, x):
    return networks.log_probs(self.architecture, chunk, x)

  def chunk_weighted_gradient(self, chunk, x, weights):
    # Large dense nets: one sample at a time in a compiled loop (faster on
    # CPU, see networks.SAMPLE_LOOP_MIN_MACS); otherwise one tape.
    if networks.sample_loop_pays(self.architecture, x.shape[0]):
      return networks.weighted_input_gradient(self.architecture, chunk, x,
                                              weights)
    return super().chunk_weighted_gradient(chunk, x, weights)

  def chunk_logit_bounds(self, chunk, lower, upper):
    return networks.interval_forward(self.architecture, chunk, lower, upper)

  # -- persistence ----------------------------------------------------------

  def save(self, directory: str, extra: Optional[dict] = None) -> str:
    """Writes a `tf.train.Checkpoint` and a JSON description, atomically.

    The description stores a SHA-256 of itself and of every weight file, and
    the code version that wrote them, so `load` can refuse a truncated,
    corrupt or edited ensemble.

    Args:
      directory: the target directory; replaced if it exists.
      extra: JSON-able metadata kept beside the description.

    Returns:
      The directory.
    """
    directory = os.path.abspath(directory)
    # The previous version stays readable (as .old) until the new one is in.
    with files.staged_directory(directory, 'ensemble') as staging:
      variables = {f'param_{i}': tf.Variable(p, trainable=False)
                   for i, p in enumerate(self.params)}
      tf.train.Checkpoint(**variables).write(
          os.path.join(staging, _CHECKPOINT_PREFIX))
      description = {
          'architecture': json.loads(self.architecture.to_json()),
          'method': self.method,
          'num_samples': self.num_samples,
          'extra': extra or {},
          'produced_by': {'code_version': files.code_version()},
      }
      # The digest covers the description as it will be read back.
      description = json.loads(json.dumps(description, default=float))
      description[_DIGEST_KEY] = {
          'algorithm': 'sha256',
          'description': files.sha256_json(description),
          'files': files.file_digests(staging),
      }
      with open(os.path.join(staging, DESCRIPTION_FILE), 'w') as f:
        json.dump(description, f, indent=2, sort_keys=True)
    return directory

  @classmethod
  def load(cls, directory: str,
           architecture: Optional[networks.Architecture] = None,
           **kwargs) -> 'ArchitectureEnsemble':
    """Restores an ensemble written by `save`; its files are untrusted.

    Before any weight is allocated, the description must parse and describe
    a valid architecture, the shapes it declares must be those the
    checkpoint stores and the weight files must hold that many bytes; then
    the stored SHA-256 digests of the description and of every weight file
    must match. An ensemble saved before digests existed loads with a
    warning.

    Args:
      directory: what `save` wrote.
      architecture: if given, loading fails unless the saved one matches.
      **kwargs: passed to the constructor (memory budget, jit).

    Raises:
      FileNotFoundError: when there is no saved ensemble in `directory`.
      ValueError: (`files.InvalidFile`) when a file is truncated, corrupt,
        edited or disagrees with another; or when the saved architecture is
        not the expected one.
    """
    directory = files.readable_directory(directory) or directory
    description_path = os.path.join(directory, DESCRIPTION_FILE)
    if not os.path.exists(description_path):
      raise FileNotFoundError(
          f'No posterior ensemble in {directory!r} (missing '
          f'{DESCRIPTION_FILE}); train one first, e.g. with binaries/train.py.')
    description = files.read_json(description_path,
                                  'a posterior ensemble description')
    saved, num_samples = _parse_description(description_path, description)
    if architecture is not None and saved != architecture:
      raise ValueError(f'The ensemble in {directory!r} has architecture '
                       f'{saved.to_json()}, not the expected '
                       f'{architecture.to_json()}; point to the matching '
                       'checkpoint or retrain.')
    prefix = os.path.join(directory, _CHECKPOINT_PREFIX)
    reader = _checked_reader(prefix, saved, num_samples, description_path)
    digest = description.get(_DIGEST_KEY)
    if digest is None:
      logging.warning(
          'The ensemble in %s stores no digest (it was saved by an older '
          'tfp_robust), so truncated or edited files cannot be detected; '
          'save it again to add one.', directory)
    else:
      _check_digest(directory, description_path, description, digest)
    params = []
    # Every stored tensor is read (the object graph too, so a cut anywhere in
    # the data file is found even without a digest); TF checks each one's
    # CRC32C.
    keys = [_key(i) for i in range(len(saved.param_shapes()))] + sorted(
        k for k in reader.get_variable_to_shape_map() if k.startswith('_'))
    for key in keys:
      try:
        value = reader.get_tensor(key)
      except (tf.errors.OpError, ValueError, IndexError, OSError) as error:
        files.invalid(_data_files(prefix)[0], f'stored tensor {key} cannot be '
                      f'read ({type(error).__name__}: {error}); the weight '
                      'file is truncated or corrupt', _RESAVE)
      if key.startswith('param_'):
        params.append(tf.convert_to_tensor(value))
    method = description.get('method', 'unknown')
    ensemble = cls(saved, params, method, **kwargs)
    ensemble.extra = description.get('extra', {})
    return ensemble


base.register_directory_loader(ArchitectureEnsemble.load)

_DIGEST_KEY = 'digest'


def weights_fingerprint(directory: str) -> str:
  """SHA-256 of what decides a saved ensemble's outputs: its architecture,
  method, sample count and weight files' digests, not its fit facts or the
  code version; the description file's own SHA-256 when it holds no weight
  digests (saved before they existed, or not a description: `load` says
  which)."""
  path = os.path.join(directory, DESCRIPTION_FILE)
  try:
    with open(path, 'rb') as f:
      description = json.loads(f.read())
    identity = {key: description[key]
                for key in ('architecture', 'method', 'num_samples')}
    identity['files'] = description[_DIGEST_KEY]['files']
    if not isinstance(identity['files'], dict):
      raise TypeError('weight digests are not a mapping')
  except (OSError, ValueError, KeyError, TypeError):
    return files.sha256_file(path)
  return files.sha256_json(identity)


_RESAVE = ('Restore the ensemble directory from a good copy, or retrain '
           '(e.g. with binaries/train.py).')


def _key(index: int) -> str:
  return f'param_{index}/.ATTRIBUTES/VARIABLE_VALUE'


def _data_files(prefix: str):
  directory, base_name = os.path.split(prefix)
  return sorted(os.path.join(directory, name) for name in os.listdir(directory)
                if name.startswith(base_name + '.data-'))


def _parse_description(path: str, description):
  """The architecture and sample count `ensemble.json` declares, checked."""
  if not isinstance(description, dict):
    files.invalid(path, 'it should hold a JSON object (an ensemble '
                  f'description), not {type(description).__name__}', _RESAVE)
  missing = [k for k in ('architecture', 'num_samples') if k not in description]
  if missing:
    files.invalid(path, f'it lacks {missing}', _RESAVE)
  num_samples = description['num_samples']
  if isinstance(num_samples, bool) or not isinstance(num_samples, int) or (
      num_samples < 1):
    files.invalid(path, f'num_samples={num_samples!r} must be an integer >= 1',
                  _RESAVE)
  for key, kind in (('method', str), ('extra', dict)):
    if key in description and not isinstance(description[key], kind):
      files.invalid(path, f'{key}={description[key]!r} must be a '
                    f'{kind.__name__}', _RESAVE)
  fields = description['architecture']
  if not isinstance(fields, dict):
    files.invalid(path, f'architecture={fields!r} must be a JSON object',
                  _RESAVE)
  try:
    saved = networks.Architecture(**fields)
  except Exception as error:  # pylint: disable=broad-except
    files.invalid(path, f'its architecture is not valid ({type(error).__name__}'
                  f': {error})', _RESAVE)
  return saved, num_samples


def _checked_reader(prefix: str, saved: networks.Architecture,
                    num_samples: int, description_path: str):
  """A checkpoint reader whose tensors are the shapes the description says.

  Reads only the checkpoint's index, so a description declaring huge sizes
  is refused before anything is allocated.
  """
  index_path = prefix + '.index'
  if not os.path.exists(index_path):
    files.invalid(index_path, 'it is missing: the ensemble has no weights',
                  _RESAVE)
  try:
    reader = tf.train.load_checkpoint(prefix)
    stored = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
  except (tf.errors.OpError, ValueError, IndexError, OSError) as error:
    files.invalid(index_path, 'the checkpoint index cannot be read '
                  f'({type(error).__name__}: {error}); it is truncated or '
                  'corrupt', _RESAVE)
  expected = saved.param_shapes()
  wanted = {_key(i) for i in range(len(expected))}
  found = {k for k in stored if k.startswith('param_')}
  if found != wanted:
    files.invalid(description_path, f'it declares {len(expected)} weight '
                  f'tensors but the checkpoint {index_path} stores '
                  f'{len(found)}: the checkpoint does not match its '
                  'description', _RESAVE)
  needed = 0
  for i, (name, shape) in enumerate(expected):
    declared = (num_samples,) + tuple(shape)
    if tuple(stored[_key(i)]) != declared or dtypes[_key(i)] != tf.float32:
      files.invalid(description_path, f'it declares weight {name} of shape '
                    f'{list(declared)} but the checkpoint stores '
                    f'{list(stored[_key(i)])} ({dtypes[_key(i)].name}): the '
                    'checkpoint does not match its description', _RESAVE)
    size = 1
    for dim in shape:
      size *= int(dim)
    needed += 4 * num_samples * size
  data_files = _data_files(prefix)
  if not data_files:
    files.invalid(prefix + '.data-00000-of-00001', 'it is missing: the '
                  'ensemble has no weight values', _RESAVE)
  held = sum(os.path.getsize(p) for p in data_files)
  if held < needed:
    files.invalid(data_files[0] if len(data_files) == 1 else prefix,
                  f'it is truncated: the {num_samples} samples of '
                  f'{saved.num_params()} weights in {description_path} need '
                  f'{needed} bytes, the weight file(s) hold {held}', _RESAVE)
  return reader


def _check_digest(directory: str, description_path: str, description: dict,
                  digest):
  """Refuses files whose SHA-256 differs from the one stored at save."""
  if not (isinstance(digest, dict) and isinstance(digest.get('files'), dict)
          and isinstance(digest.get('description'), str)):
    files.invalid(description_path, f'its digest entry {digest!r} is not '
                  'what save writes', _RESAVE)
  content = {k: v for k, v in description.items() if k != _DIGEST_KEY}
  if files.sha256_json(content) != digest['description']:
    files.invalid(description_path, 'it was changed after the ensemble was '
                  'saved (its SHA-256 differs from the digest stored in it), '
                  'so it may describe another network than the one its '
                  'weights belong to',
                  'Restore the saved file or retrain. To use an edited '
                  'description on purpose, delete its "digest" entry.')
  files.check_file_digests(directory, digest['files'], description_path,
                           _RESAVE)


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
