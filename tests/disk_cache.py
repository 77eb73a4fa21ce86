"""Trained test fixtures kept on disk across the suite's processes.

`tests/run_suite.py` runs a process per module, so a session fixture that
trains (the half-moons net, `conftest.trained_net`) was trained again in
every module that uses it. `arrays(name, build, sources)` returns the arrays
`build()` makes, computed once: they are kept under
`<repo>/.pytest_cache/tfp_robust_fixtures/<name>-<key>.npz`, where the key
is a SHA-256 of the fixture's source, every file of the package and the
TensorFlow version, so an edit to the code that made them makes them anew.
Two processes asking at once: one builds while the other waits on a lock
(`fcntl.flock`), then reads what the first wrote; the file is written to a
temporary name and renamed, so a reader never sees half of one.
`TFP_ROBUST_FIXTURE_CACHE=0` turns the cache off.
"""

import fcntl
import glob
import hashlib
import inspect
import os
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRECTORY = os.path.join(REPO, '.pytest_cache', 'tfp_robust_fixtures')


def key(*sources) -> str:
  """SHA-256 of `sources` (functions or strings), the package and TF."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  digest = hashlib.sha256(tf.__version__.encode())
  for source in sources:
    text = source if isinstance(source, str) else inspect.getsource(source)
    digest.update(text.encode())
  package = os.path.join(REPO, 'tfp_robust')
  for path in sorted(glob.glob(os.path.join(package, '**', '*.py'),
                               recursive=True)):
    digest.update(os.path.relpath(path, package).encode())
    with open(path, 'rb') as f:
      digest.update(f.read())
  return digest.hexdigest()[:20]


def arrays(name, build, *sources):
  """The list of arrays `build()` returns, from disk when made before."""
  if os.environ.get('TFP_ROBUST_FIXTURE_CACHE', '1') == '0':
    return [np.asarray(a) for a in build()]
  os.makedirs(DIRECTORY, exist_ok=True)
  path = os.path.join(DIRECTORY, f'{name}-{key(build, *sources)}.npz')
  with open(os.path.join(DIRECTORY, f'{name}.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      if not os.path.exists(path):
        values = [np.asarray(a) for a in build()]
        handle, temporary = tempfile.mkstemp(dir=DIRECTORY, suffix='.npz')
        with os.fdopen(handle, 'wb') as f:
          np.savez(f, *values)
        os.replace(temporary, path)
      with np.load(path) as saved:
        return [saved[f'arr_{i}'] for i in range(len(saved.files))]
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)
