"""Export: a posterior ensemble as a SavedModel, and as a `tf_keras` layer.

`save_model` writes a SavedModel that `tf.saved_model.load` reads in a
process that never imports tfp_robust, with three signatures:

- `predictive(x) -> probabilities [B, C]`: the mean of the S softmaxes;
- `log_probs(x) -> log_probs [S, B, C]`: per-sample log-softmax;
- `pgd(x, labels, eps, steps) -> x_adv`: PGD on the predictive
  cross-entropy (step 2.5 eps / steps, no random start, projected every
  step), a `tf.while_loop` over `steps`.

The ensemble's forward pass is traced into the SavedModel through its
public interface, so every backend exports: an architecture-backed one saves
its weights as variables (no 2 GB graph-constant limit), a Keras-backed one
its models' variables. Samples are evaluated in chunks of at most
`sample_chunk` (from the memory budget at `batch_size` images), in a loop
inside the graph. `PredictiveLayer` wraps an ensemble as a `tf_keras` layer
returning the predictive probabilities.

Nothing of the user's is lost: `save_model` replaces only an empty
directory or a SavedModel it wrote itself (recognised by its manifest and
holding nothing else), unless `overwrite=True` says so, and checks that the
target can be written before any tracing. The manifest
(`tfp_robust_manifest.json`, written last, atomically) holds the SHA-256 of
every file of the SavedModel; `SavedModelEnsemble` checks it before
TensorFlow parses anything, so a damaged export is refused with a message
naming the file.
"""

import os

import tensorflow as tf
import tf_keras

from tfp_robust import ensemble as ensemble_lib
from tfp_robust.core import files
from tfp_robust.core import validate
from tfp_robust.ensemble import saved_model as saved_model_lib


class _Exported(tf.Module):
  """The tf.Module that is saved: weights as variables, three functions."""

  def __init__(self, ensemble, batch_size):
    super().__init__()
    self._ensemble = ensemble
    size = ensemble.sample_chunk_size(batch_size)
    self._bounds = ensemble_lib.chunk_bounds(ensemble.num_samples, size)
    handles = [ensemble.chunk(start, stop) for start, stop in self._bounds]
    # Tensors in the chunk handles become variables, so that the weights
    # are saved as checkpointed variables rather than graph constants.
    self._handles = tf.nest.map_structure(
        lambda t: tf.Variable(t, trainable=False) if tf.is_tensor(t) else t,
        handles)
    self._keep = getattr(ensemble, 'models', None)  # Tracks Keras models.
    shape = [None] + list(ensemble.input_shape)
    self.log_probs = tf.function(
        self._log_probs,
        input_signature=[tf.TensorSpec(shape, tf.float32, name='x')])
    self.predictive = tf.function(
        self._predictive,
        input_signature=[tf.TensorSpec(shape, tf.float32, name='x')])
    self.pgd = tf.function(self._pgd, input_signature=[
        tf.TensorSpec(shape, tf.float32, name='x'),
        tf.TensorSpec([None], tf.int32, name='labels'),
        tf.TensorSpec([], tf.float32, name='eps'),
        tf.TensorSpec([], tf.int32, name='steps')])

  def _all_log_probs(self, x):
    parts = [self._ensemble.chunk_log_probs(
        tf.nest.map_structure(
            lambda v: v.read_value() if isinstance(v, tf.Variable) else v,
            handle), x) for handle in self._handles]
    return parts[0] if len(parts) == 1 else tf.concat(parts, 0)

  def _log_probs(self, x):
    return {'log_probs': self._all_log_probs(x)}

  def _predictive(self, x):
    return {'probabilities': tf.exp(ensemble_lib.predictive_from_log_probs(
        self._all_log_probs(x)))}

  def _pgd(self, x, labels, eps, steps):
    step_size = 2.5 * eps / tf.cast(tf.maximum(steps, 1), tf.float32)
    one_hot = tf.one_hot(labels, self._ensemble.num_classes)

    def body(i, x_adv):
      with tf.GradientTape() as tape:
        tape.watch(x_adv)
        predictive = ensemble_lib.predictive_from_log_probs(
            self._all_log_probs(x_adv))
        loss = -tf.reduce_sum(predictive * one_hot)
      grad = tape.gradient(loss, x_adv)
      x_adv = x_adv + step_size * tf.sign(grad)
      x_adv = tf.clip_by_value(tf.clip_by_value(x_adv, x - eps, x + eps),
                               0.0, 1.0)
      return i + 1, x_adv

    _, x_adv = tf.while_loop(lambda i, _: i < steps, body, (0, x))
    return {'x_adv': x_adv}


def save_model(ensemble, directory: str, batch_size: int = 256,
               overwrite: bool = False) -> str:
  """Writes `ensemble` as a SavedModel at `directory` (atomically).

  Args:
    ensemble: any `PosteriorEnsemble` whose forward pass is traceable.
    directory: the target. It must be new, an empty directory or a
      SavedModel this function wrote (then it is replaced), unless
      `overwrite` is set.
    batch_size: the batch the sample chunks are sized for.
    overwrite: replace whatever is at `directory` (a file, a directory and
      everything in it): only when you mean to delete it.

  Returns:
    The directory.

  Raises:
    validate.InvalidArgument: `directory` holds something we did not write
      (without `overwrite`), or it cannot be written; nothing is changed.
  """
  if ensemble.resamples:
    raise ValueError('A StochasticEnsemble resamples on every call; export '
                     'the model itself (tf.saved_model.save) or draw fixed '
                     'weights first (tfp_robust.fit.vi.posterior_ensemble).')
  if not isinstance(directory, (str, os.PathLike)) or not str(directory):
    validate.fail('directory', directory, 'it must be a non-empty path',
                  'Pass the directory to write the SavedModel to.')
  directory = os.path.abspath(directory)
  _check_target(directory, overwrite)
  _check_writable(directory)
  try:
    with files.staged_directory(directory, 'savedmodel') as staging:
      module = _Exported(ensemble, batch_size)
      tf.saved_model.save(module, staging, signatures={
          'predictive': module.predictive, 'log_probs': module.log_probs,
          'pgd': module.pgd})
      saved_model_lib.write_manifest(staging, {
          'num_samples': int(ensemble.num_samples),
          'input_shape': list(ensemble.input_shape),
          'num_classes': int(ensemble.num_classes)})
  except (OSError, tf.errors.OpError) as error:
    validate.fail('directory', directory, 'the SavedModel cannot be written '
                  f'there ({type(error).__name__}: '
                  f'{getattr(error, "strerror", None) or error})',
                  'Choose a directory you can write to (and with free '
                  'space); nothing was changed.')
  return directory


def _not_ours(path: str):
  """Why `path` is not ours to replace, or None (missing, empty, ours)."""
  if not os.path.lexists(path):
    return None
  if os.path.islink(path):
    return 'it is a symbolic link'
  if not os.path.isdir(path):
    return 'it is an existing file, not a SavedModel'
  names = sorted(os.path.relpath(os.path.join(root, name), path)
                 for root, _, found in os.walk(path) for name in found)
  if not names:
    return None
  if not os.path.exists(os.path.join(path, saved_model_lib.MANIFEST_FILE)):
    if os.path.exists(os.path.join(path, 'saved_model.pb')):
      return ('it holds a SavedModel that tfp_robust did not write (no '
              f'{saved_model_lib.MANIFEST_FILE})')
    return (f'it is a directory of {len(names)} file(s) that tfp_robust did '
            f'not write ({_some(names)})')
  try:
    listed = set(saved_model_lib.manifest_files(path))
  except files.InvalidFile:
    return f'its {saved_model_lib.MANIFEST_FILE} cannot be read'
  others = [n for n in names
            if n not in listed and n != saved_model_lib.MANIFEST_FILE]
  if others:
    return f'it holds file(s) the export did not write ({_some(others)})'
  return None


def _some(names) -> str:
  return ', '.join(names[:3]) + (', ...' if len(names) > 3 else '')


def _check_target(directory: str, overwrite: bool) -> None:
  """Refuses to replace what we did not write (unless `overwrite`)."""
  if overwrite:
    return
  problem = _not_ours(directory)
  if problem:
    validate.fail('directory', directory, f'{problem}, and saving would '
                  'replace it', 'Choose a new path, move it away, or pass '
                  'overwrite=True to delete it and save there.')
  old = directory + '.old'
  problem = _not_ours(old)
  if problem:
    validate.fail('directory', directory, f'{old!r} exists ({problem}), and '
                  'saving would delete it (an export keeps the previous one '
                  'there while it renames)', 'Move it away, or pass '
                  'overwrite=True.')


def _check_writable(directory: str) -> None:
  """Refuses a target whose nearest existing parent cannot be written."""
  parent = os.path.dirname(directory)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    validate.fail('directory', directory, f'{parent!r} is a file, so the '
                  'directory cannot be created', 'Choose another path.')
  if not os.access(parent, os.W_OK | os.X_OK):
    validate.fail('directory', directory, f'{parent!r} is not writable',
                  'Choose a directory you can write to, or fix its '
                  'permissions.')


class PredictiveLayer(tf_keras.layers.Layer):
  """A `tf_keras` layer: inputs `[B, *input_shape]` -> predictive `[B, C]`.

  Not trainable: it evaluates the posterior ensemble as it is, so it can sit
  inside a user's model, `tf.function` or `tf.data.Dataset.map`.
  """

  def __init__(self, ensemble, **kwargs):
    super().__init__(trainable=False, **kwargs)
    self.ensemble = ensemble

  def call(self, inputs):
    parts = [self.ensemble.chunk_log_probs(chunk, inputs)
             for _, chunk in self.ensemble.chunks(256)]
    log_probs = parts[0] if len(parts) == 1 else tf.concat(parts, 0)
    return tf.exp(ensemble_lib.predictive_from_log_probs(log_probs))
