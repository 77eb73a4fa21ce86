"""Files: written whole, with the umask, one run per directory, untrusted.

- Writing: `write_text_atomically` and `staging_dir` stage under a `.tmp-*`
  name in the target's directory, then rename, so a reader sees the old file
  or the whole new one. What they create gets the permissions the user's
  umask gives (`tempfile` alone makes 0600 files and 0700 directories).
- One run per work directory, and staging entries owned by the process
  writing them (their names carry its pid and host): `tfp_robust.core.locks`
  (`start_run`, `one_writer`, `clean_staging`, ...), which builds on this
  module.
- Reading: files we read are untrusted. `read_json` and `invalid` refuse a
  bad file with a message naming it and what is wrong (the shape of
  `validate.fail`), `sha256_file` / `sha256_json` give the digests stored
  beside artifacts and checked on load, and `code_version` says which code
  produced them.
"""

import contextlib
import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
from typing import Dict, Optional

from absl import logging

from tfp_robust.core import validate

STAGING_PREFIX = '.tmp-'
LOCK_FILE = '.lock'

# Errors are `validate.InvalidArgument`s (ValueErrors) whose message has the
# shape of `validate.fail`: `<name>=<value> is invalid: <what is wrong>.
# <the fix>`, here with the whole path (never shortened).


class InvalidFile(validate.InvalidArgument):
  """A file we read is missing a part, truncated, corrupt or edited."""


class WorkdirBusy(validate.InvalidArgument):
  """Another process holds the work directory."""


def _message(name: str, value, problem: str, fix: str) -> str:
  return f'{name}={value!r} is invalid: {problem}.' + (f' {fix}' if fix else '')


def invalid(path: str, problem: str, fix: str = ''):
  """Raises `InvalidFile`: `file='<path>' is invalid: <problem>. <fix>`.

  The error's `problem` attribute holds `<problem>` alone, for callers that
  recover by themselves and so have no fix to suggest.
  """
  error = InvalidFile(_message('file', path, problem, fix))
  error.problem = problem
  raise error


# -- permissions ------------------------------------------------------------

def current_umask() -> int:
  """The process's umask, read without changing it where the OS allows."""
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('Umask:'):
          return int(line.split()[1], 8)
  except (OSError, ValueError, IndexError):
    pass
  mask = os.umask(0o022)  # Not thread-safe, hence only the fallback.
  os.umask(mask)
  return mask


def file_mode() -> int:
  """What `open(path, 'w')` gives a new file: 0o666 & ~umask."""
  return 0o666 & ~current_umask()


def dir_mode() -> int:
  """What `os.makedirs` gives a new directory: 0o777 & ~umask."""
  return 0o777 & ~current_umask()


def staging_prefix(name: str = '') -> str:
  """`.tmp-<pid>@<host>~<name>`: a staging name this process owns."""
  return f'{STAGING_PREFIX}{os.getpid()}@{socket.gethostname()}~{name}'


def staging_dir(parent: str, name: str) -> str:
  """A new empty directory `<parent>/.tmp-<pid>@<host>~<name>-*`, with the
  umask's mode.

  Fill it, then rename it into place (the caller removes it on failure).
  """
  os.makedirs(parent, exist_ok=True)
  path = tempfile.mkdtemp(prefix=staging_prefix(name + '-'), dir=parent)
  os.chmod(path, dir_mode())
  return path


@contextlib.contextmanager
def staged_directory(directory: str, name: Optional[str] = None):
  """Yields an empty staging directory that replaces `directory` on success.

  Fill the yielded directory; when the block ends without an exception it
  is renamed into place. An existing `directory` stays readable as
  `<directory>.old` until the new one is in (readers that find only the
  `.old` one may use it), then it is removed. On an exception the staging
  directory is removed and `directory` is left as it was.
  """
  directory = os.path.abspath(directory)
  staging = staging_dir(os.path.dirname(directory),
                        name or os.path.basename(directory))
  try:
    yield staging
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  old = directory + '.old'
  if os.path.lexists(directory):
    _remove(old)
    os.rename(directory, old)
  os.rename(staging, directory)
  _remove(old)


def _remove(path: str) -> None:
  """Removes a directory tree, a file or a link at `path`, if any."""
  if os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path, ignore_errors=True)
  elif os.path.lexists(path):
    os.unlink(path)


def readable_directory(directory: str) -> Optional[str]:
  """`directory`, or the `<directory>.old` that `staged_directory` leaves
  readable when it was stopped between its two renames; None if neither."""
  for candidate in (directory, directory + '.old'):
    if os.path.isdir(candidate):
      return candidate
  return None


def write_text_atomically(path: str, text: str) -> None:
  """Writes `text` to `path` through a temporary file in the same directory.

  A reader sees either the old file or the whole new one, never a partial
  write. The file gets the mode the umask gives; a write that fails (e.g. a
  full disk) removes its temporary file, and one killed mid-write leaves a
  `.tmp-*` file that the next `start_run` removes.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  with tempfile.NamedTemporaryFile('w', dir=directory, delete=False,
                                   prefix=staging_prefix()) as f:
    try:
      f.write(text)
      f.flush()
      os.fchmod(f.fileno(), file_mode())
    except BaseException:
      f.close()
      os.unlink(f.name)
      raise
  try:
    os.replace(f.name, path)
  except BaseException:
    if os.path.exists(f.name):
      os.unlink(f.name)
    raise


# -- digests ----------------------------------------------------------------

def sha256_file(path: str) -> str:
  """The hex SHA-256 of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(functools.partial(f.read, 1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def canonical_json(value) -> str:
  """`value` as JSON with sorted keys and no spaces: the text digests cover."""
  return json.dumps(value, sort_keys=True, separators=(',', ':'),
                    default=float)


def file_digests(directory: str) -> Dict[str, str]:
  """SHA-256 of every file directly in `directory`, by name."""
  return {name: sha256_file(os.path.join(directory, name))
          for name in sorted(os.listdir(directory))}


def check_file_digests(directory: str, digests, listed_in: str,
                       fix: str) -> None:
  """Refuses a file listed in `digests` that is missing or has changed."""
  for name, expected in sorted(digests.items()):
    if os.path.basename(str(name)) != name:
      invalid(listed_in, f'it lists {name!r}, which is not a file name in '
              'its own directory', fix)
    path = os.path.join(directory, name)
    if not os.path.exists(path):
      invalid(path, f'it is missing (listed in the digest of {listed_in})',
              fix)
    if sha256_file(path) != expected:
      invalid(path, f'its SHA-256 differs from the digest stored in '
              f'{listed_in}: it is truncated, corrupt or was replaced', fix)


def sha256_json(value) -> str:
  """The hex SHA-256 of `canonical_json(value)`."""
  return hashlib.sha256(canonical_json(value).encode('utf-8')).hexdigest()


@functools.lru_cache(maxsize=1)
def code_version() -> str:
  """The package version, plus the git commit when run from a checkout.

  A checkout with uncommitted changes is marked `+dirty`.
  """
  from tfp_robust import __version__  # pylint: disable=g-import-not-at-top
  version = f'tfp_robust {__version__}'
  # tfp_robust/core/files.py -> the checkout's root, three levels up.
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  if not os.path.exists(os.path.join(root, '.git')):
    return version
  try:
    commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root,
                            capture_output=True, text=True, timeout=10,
                            check=True).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--porcelain',
                            '--untracked-files=no', '--', 'tfp_robust'],
                           cwd=root, capture_output=True, text=True,
                           timeout=10, check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return version
  return f"{version} git {commit[:12]}{'+dirty' if dirty else ''}"


def read_finished(path: str, what: str, digest: str,
                  redo: str) -> Optional[Dict]:
  """A finished result saved as a JSON object with its `digest`, or None.

  For work that is skipped when its result file is there and was written by
  the same settings (a digest of them, stored in the object as `digest`):
  a missing file is None; an unreadable one, one that is not a JSON object
  or one with another digest is logged as a warning ending in `redo` (e.g.
  'it runs again') and is None, so the work is done again: a result file is
  never trusted blindly and never an abort.
  """
  if not os.path.exists(path):
    return None
  try:
    saved = read_json(path, what)
  except InvalidFile as error:
    logging.warning('%s is not used (%s); %s.', path,
                    getattr(error, 'problem', error), redo)
    return None
  if not isinstance(saved, dict):
    logging.warning('%s is not used (it should be a JSON object, %s); %s.',
                    path, what, redo)
    return None
  if saved.get('digest') != digest:
    logging.warning('%s was written by other settings or inputs, or edited; '
                    '%s.', path, redo)
    return None
  return saved


def read_json(path: str, what: str = 'JSON file'):
  """The JSON value in `path`; a clear `InvalidFile` if it is not JSON.

  Args:
    path: the file.
    what: what the file should be, for the message (e.g. 'an ensemble
      description').
  """
  try:
    with open(path, 'rb') as f:
      raw = f.read()
  except OSError as error:
    invalid(path, f'it cannot be read ({error.strerror or error})',
            'Check that it exists and is readable.')
  try:
    return json.loads(raw.decode('utf-8'))
  except UnicodeDecodeError:
    invalid(path, f'it should be {what} but is not UTF-8 text (corrupt)',
            'Restore the file or recreate it.')
  except json.JSONDecodeError as error:
    problem = ('it is empty' if not raw.strip() else
               f'it is not valid JSON ({error.msg} at line {error.lineno}, '
               f'column {error.colno})')
    invalid(path, f'{problem}; it should be {what} (truncated, corrupt or '
            'badly edited)', 'Restore the file or recreate it.')
  except (ValueError, RecursionError) as error:
    # JSON the parser refuses past its syntax: an integer of more than
    # 4,300 digits, nesting deeper than the interpreter's stack.
    invalid(path, f'it should be {what} but cannot be parsed '
            f'({type(error).__name__}: {str(error)[:100]})',
            'Restore the file or recreate it.')
