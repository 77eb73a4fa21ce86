"""A SavedModel written by `tfp_robust.export.save_model`, as an ensemble.

Its `log_probs` signature gives every sample's log-softmax at once (it
chunks over samples inside the graph), so this backend has one chunk; a
sub-ensemble selects samples from that output.

A SavedModel from `save_model` is untrusted like every file we read: its
manifest (`MANIFEST_FILE`, the SHA-256 of every file of the SavedModel,
written last) is checked before TensorFlow parses anything, so a truncated
or corrupt export is refused naming the damaged file. A SavedModel without
a manifest (written by older code or another program) is loaded as it is;
whatever TensorFlow's loader raises on it becomes the same `InvalidFile`.
"""

import json
import os
import re
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfp_robust.core import files
from tfp_robust.ensemble import base

MANIFEST_FILE = 'tfp_robust_manifest.json'
MANIFEST_FORMAT = 'tfp_robust SavedModel manifest 1'
_FIX = ('Export the ensemble again (tfp_robust.export.save_model), or restore '
        'the directory from a copy.')
_SHA256 = re.compile(r'^[0-9a-f]{64}$')


def write_manifest(directory: str, info: Dict) -> None:
  """Writes the manifest of the SavedModel in `directory` (call it last)."""
  digests = {}
  for root, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(root, name)
      relative = os.path.relpath(path, directory)
      if name.startswith(files.STAGING_PREFIX) or relative == MANIFEST_FILE:
        continue
      digests[relative.replace(os.sep, '/')] = files.sha256_file(path)
  manifest = dict(info, format=MANIFEST_FORMAT, files=digests,
                  code_version=files.code_version())
  manifest['manifest_sha256'] = files.sha256_json(manifest)  # Covers itself.
  files.write_text_atomically(os.path.join(directory, MANIFEST_FILE),
                              json.dumps(manifest, indent=1, sort_keys=True))


def _read_manifest(directory: str) -> Dict:
  path = os.path.join(directory, MANIFEST_FILE)
  try:
    manifest = files.read_json(path, 'the manifest of an exported SavedModel')
  except files.InvalidFile as error:
    files.invalid(path, error.problem, _FIX)
  listed = manifest.get('files') if isinstance(manifest, dict) else None
  if (not isinstance(listed, dict) or manifest.get('format') !=
      MANIFEST_FORMAT or 'saved_model.pb' not in listed):
    files.invalid(path, 'it should be a JSON object with "format": '
                  f'{MANIFEST_FORMAT!r} and the SHA-256 of every file, '
                  'saved_model.pb included (corrupt or edited)', _FIX)
  if manifest.get('manifest_sha256') != files.sha256_json(
      {k: v for k, v in manifest.items() if k != 'manifest_sha256'}):
    files.invalid(path, 'its own SHA-256 (manifest_sha256) does not match '
                  'its contents (corrupt or edited)', _FIX)
  for name, digest in listed.items():
    parts = name.split('/')
    if (not name or name.startswith('/') or '..' in parts or '' in parts or
        not isinstance(digest, str) or not _SHA256.match(digest)):
      files.invalid(path, f'it lists {name!r}: {digest!r}, not a file of '
                    'the SavedModel with its SHA-256 (corrupt or edited)',
                    _FIX)
  return manifest


def manifest_files(directory: str) -> List[str]:
  """The files the manifest in `directory` lists (InvalidFile if bad)."""
  return [name.replace('/', os.sep)
          for name in _read_manifest(directory)['files']]


def check_manifest(directory: str) -> Optional[Dict]:
  """The verified manifest of the SavedModel in `directory`, or None if it
  has none.

  Raises:
    files.InvalidFile: the manifest is unreadable, or a file it lists is
      missing or has another SHA-256 (truncated, corrupt or replaced).
  """
  if not os.path.exists(os.path.join(directory, MANIFEST_FILE)):
    return None
  manifest = _read_manifest(directory)
  for name, digest in sorted(manifest['files'].items()):
    path = os.path.join(directory, *name.split('/'))
    if not os.path.isfile(path):
      files.invalid(path, 'it is missing from the exported SavedModel (its '
                    f'{MANIFEST_FILE} lists it)', _FIX)
    if files.sha256_file(path) != digest:
      files.invalid(path, 'its SHA-256 differs from the one in '
                    f'{MANIFEST_FILE}: the exported SavedModel is truncated, '
                    'corrupt or was replaced', _FIX)
  return manifest


class SavedModelEnsemble(base.PosteriorEnsemble):
  """The ensemble in a SavedModel with a `log_probs` signature.

  Args:
    path: the SavedModel directory.
    method: a name for reports.
    jit_compile: compile the attack loops with XLA (off by default: the
      loaded graph is compiled as it was saved).

  Raises:
    files.InvalidFile (a ValueError): when `path` is not a SavedModel, when
      its manifest or a file it lists is damaged (checked before TensorFlow
      reads it), when TensorFlow cannot load it, or when it has no
      `log_probs` signature taking `x` `[B, ...]` and returning `[S, B, C]`.
  """

  def __init__(self, path: str, method: str = 'saved_model',
               jit_compile: bool = False,
               _loaded=None, _indices: Optional[np.ndarray] = None):
    super().__init__(method, base.DEFAULT_MEMORY_BUDGET_BYTES, jit_compile)
    checked = None
    if _loaded is None:
      if not os.path.isfile(os.path.join(path, 'saved_model.pb')):
        files.invalid(path, 'it is not a SavedModel directory (no '
                      'saved_model.pb)', 'Export one with '
                      'tfp_robust.export.save_model.')
      checked = check_manifest(path)
      _loaded = self._load(path, checked)
    signature = getattr(_loaded, 'signatures', {}).get('log_probs')
    if signature is None:
      files.invalid(path, 'the SavedModel has no log_probs signature',
                    'Export it with tfp_robust.export.save_model.')
    spec = signature.structured_input_signature[1].get('x')
    if spec is None or spec.shape.rank is None or not all(
        d is not None for d in spec.shape[1:]):
      files.invalid(path, 'the log_probs signature of the SavedModel must '
                    'take x [B, *input_shape] with a known input shape',
                    'Export it with tfp_robust.export.save_model.')
    self.path = path
    self._loaded = _loaded
    self._signature = signature
    self._input_shape = tuple(int(d) for d in spec.shape[1:])
    try:
      probe = signature(x=tf.zeros((1,) + self._input_shape))['log_probs']
    except Exception as error:  # pylint: disable=broad-except
      files.invalid(path, 'the SavedModel loads but its log_probs signature '
                    f'fails ({type(error).__name__}: {str(error)[:200]})',
                    _FIX)
    if probe.shape.rank != 3 or (checked and list(probe.shape[::2]) != [
        checked.get('num_samples'), checked.get('num_classes')]):
      files.invalid(path, f'log_probs returned shape {probe.shape}, not '
                    '[S, B, C] with the S and C of its manifest', _FIX)
    self._total_samples, self._num_classes = int(probe.shape[0]), int(
        probe.shape[2])
    self._indices = (np.arange(self._total_samples) if _indices is None
                     else np.asarray(_indices, np.int64))

  @staticmethod
  def _load(path: str, checked: Optional[Dict]):
    """`tf.saved_model.load(path)`, with any failure an `InvalidFile`."""
    try:
      return tf.saved_model.load(path)
    except Exception as error:  # pylint: disable=broad-except
      # A loader fed a damaged file raises almost anything (KeyError,
      # RuntimeError, AttributeError, IndexError, OpError, ...).
      text = str(error).strip().splitlines()
      files.invalid(path, 'TensorFlow cannot load this SavedModel '
                    f'({type(error).__name__}: {text[0][:200] if text else ""})'
                    + ('' if checked else f'; it has no {MANIFEST_FILE}, so '
                       'it was not checked before loading: truncated, '
                       'corrupt or not written by tfp_robust.export'), _FIX)

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
