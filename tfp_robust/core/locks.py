"""Locks: one writer per directory, and who owns a staging entry.

- `start_run(workdir)`, called first in every binary's `main`, takes an
  advisory `fcntl.flock` lock on `<workdir>/.lock` (holding the pid, host
  and command of the holder), so a second process on the same directory is
  refused with a message naming the first instead of deleting its live
  checkpoints. The kernel releases the lock when its process dies, so a
  killed run never leaves it stuck. Once the lock is held, staging entries
  (`.tmp-*`) a killed run or a full disk left behind are removed.
- `one_writer(directory)` holds the same lock for a block: the library's
  rule for a directory it writes across many steps (HMC checkpoints given
  to `hmc.fit` through the Python API).
- Staging entries are owned: their names carry the pid and host of the
  process writing them (`.tmp-<pid>@<host>~<name>-*`, see
  `files.staging_prefix`). A clean-up removes nothing while another
  process holds a lock on the directory (the shards of a grid each hold
  their own, so a merge or a second shard never touches a live shard's
  files), nor in a subdirectory another process holds (an HMC checkpoint
  directory being written), and otherwise only the entries whose process
  has ended (or cannot be told: another host, or named by older code), so
  a process writing without any lock keeps its files too.

Binaries call `locks.start_run` first in their `main`. This module uses
`files` (messages, staging names); `files` does not import it.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import re
import socket
import sys
from typing import Dict, Optional

from absl import logging

from tfp_robust.core import files
from tfp_robust.core import validate

_HELD: Dict[str, int] = {}  # Real path of a held lock file -> its fd.
_ACTIVE = set()  # Lock files a `one_writer` block of this process is in.


def _holder(lock_path: str) -> str:
  try:
    with open(lock_path) as f:
      holder = json.loads(f.read() or '{}')
  except (OSError, ValueError):
    holder = {}
  if not isinstance(holder, dict) or 'pid' not in holder:
    return 'a process that has not written its name yet'
  return (f"pid {holder.get('pid')} on {holder.get('host', '?')}, started "
          f"{holder.get('started', '?')}: {holder.get('command', '?')}")


def _open_and_lock(workdir: str, lock_path: str, name: str) -> Optional[int]:
  """An fd of `lock_path` with its exclusive lock; None if it cannot lock."""
  try:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
  except OSError as error:
    validate.fail(name, workdir, f'its lock file {lock_path} cannot '
                  f'be opened ({error.strerror})', 'Choose a directory you '
                  'can write to, or fix its permissions.')
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as error:
    os.close(fd)
    if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      raise files.WorkdirBusy(files._message(
          name, workdir, 'another run is using it '
          f'({_holder(lock_path)})', 'Wait for that run to finish (or stop '
          f'it), or choose another {name}.')) from None
    logging.warning('Cannot lock %s (%s): nothing stops a second run on this '
                    'directory.', lock_path, error)
    return None
  return fd


def lock_workdir(workdir: str, lock_file: str = files.LOCK_FILE,
                 name: str = '--workdir') -> Optional[int]:
  """Takes the advisory lock of `workdir` for the life of this process.

  `lock_file` names the lock: runs that may share a directory (the shards
  of one grid) each take their own. `name` is the argument that messages
  name.

  Returns:
    The lock's file descriptor (None where the file system cannot lock).

  Raises:
    WorkdirBusy: another live process holds it; the message names it.
  """
  real = os.path.join(os.path.realpath(workdir), lock_file)
  if real in _HELD:
    return _HELD[real]
  lock_path = os.path.join(workdir, lock_file)
  for _ in range(10):  # Again if the file was removed as we took it.
    fd = _open_and_lock(workdir, lock_path, name)
    if fd is None:
      return None
    try:
      same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
    except OSError:
      same = False
    if same:
      break
    os.close(fd)
  else:
    validate.fail(name, workdir, f'its lock file {lock_path} is removed '
                  'each time it is taken', 'Stop whatever removes it.')
  holder = {'pid': os.getpid(), 'host': socket.gethostname(),
            'command': ' '.join([os.path.basename(sys.executable)] +
                                sys.argv),
            'started': datetime.datetime.now().isoformat(timespec='seconds')}
  os.ftruncate(fd, 0)
  os.pwrite(fd, json.dumps(holder).encode('utf-8'), 0)
  os.fsync(fd)
  _HELD[real] = fd
  return fd


def release_workdir(workdir: str, lock_file: str = files.LOCK_FILE,
                    remove: bool = False) -> None:
  """Gives the lock up before the process ends (tests, notebooks); with
  `remove`, its file goes too (removed while still held, so a process that
  opened it meanwhile sees it gone and takes a new one)."""
  real = os.path.join(os.path.realpath(workdir), lock_file)
  fd = _HELD.pop(real, None)
  if fd is not None:
    if remove:
      try:
        os.unlink(real)
      except OSError:
        pass
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextlib.contextmanager
def one_writer(directory: Optional[str], name: str):
  """Holds `directory`'s lock (`<directory>/.lock`) while the block runs.

  The library's rule for a directory it writes into across many steps (HMC
  checkpoints): one writer at a time. A directory this process already
  holds (a binary's work directory) stays held after the block; otherwise
  the lock is released, and its file removed, when the block ends. Nothing
  happens when `directory` is empty or None.

  Args:
    directory: the directory (created if missing).
    name: the argument that messages name, e.g. 'checkpoint_dir'.

  Raises:
    WorkdirBusy: another process holds the directory, or another
      `one_writer` block of this process is writing to it.
    validate.InvalidArgument: it cannot be created or written.
  """
  if not directory:
    yield
    return
  validate.workdir(name, directory)
  real = os.path.join(os.path.realpath(directory), files.LOCK_FILE)
  if real in _ACTIVE:
    raise files.WorkdirBusy(files._message(
        name, directory, 'another call in this process is writing to it',
        f'Let it finish first, or choose another {name}.'))
  taken = real not in _HELD
  lock_workdir(directory, files.LOCK_FILE, name)
  _ACTIVE.add(real)
  try:
    yield
  finally:
    _ACTIVE.discard(real)
    if taken:
      release_workdir(directory, remove=True)


def _held_by_another(directory: str, names) -> bool:
  """Whether a lock file (`.lock*`) among `names` in `directory` is held by
  another process (or cannot be probed)."""
  real = os.path.realpath(directory)
  for name in names:
    path = os.path.join(directory, name)
    if (not name.startswith(files.LOCK_FILE) or
        os.path.join(real, name) in _HELD
        or not os.path.isfile(path)):
      continue
    try:
      fd = os.open(path, os.O_RDONLY)
    except OSError:
      return True  # Cannot tell: leave it alone.
    try:
      fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
      return True
    finally:
      os.close(fd)  # Also releases the probe's shared lock.
  return False


_OWNER = re.compile(r'^' + re.escape(files.STAGING_PREFIX) + r'(\d+)@([^~/]+)~')


def _process_start(pid: int) -> Optional[float]:
  """When the live process `pid` started (seconds since the epoch; 0 where
  the OS does not say), or None if there is no such process."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return None
  except OSError:
    pass  # Alive (another user's), or cannot tell.
  try:
    with open(f'/proc/{pid}/stat') as f:
      ticks = int(f.read().rsplit(')', 1)[1].split()[19])
    with open('/proc/stat') as f:
      boot = next(int(line.split()[1]) for line in f
                  if line.startswith('btime'))
    return boot + ticks / os.sysconf('SC_CLK_TCK')
  except (OSError, ValueError, IndexError, StopIteration):
    return 0.0


def staging_owner_gone(path: str) -> Optional[bool]:
  """Whether the process that owns the staging entry `path` has ended.

  True when the pid in its name runs no longer on this host (or now runs a
  process started after the entry was last written: a reused pid), False
  when it still runs, None when it cannot be told (an entry named by older
  code, or by another host).
  """
  match = _OWNER.match(os.path.basename(path))
  if not match or match.group(2) != socket.gethostname():
    return None
  started = _process_start(int(match.group(1)))
  if started is None:
    return True
  try:
    written = os.lstat(path).st_mtime
  except OSError:
    return False  # Gone already, or unreadable: leave it to its owner.
  return started > written + 2.0  # Start times are known to the second.


def clean_staging(workdir: str) -> int:
  """Removes the staging entries (`.tmp-*`) under `workdir` that no live
  process owns.

  Only call this while holding a lock on `workdir`. Nothing is removed
  while another process holds a lock on `workdir`, nor in subdirectories
  another process holds; elsewhere an entry goes unless its owner is known
  to live (see `staging_owner_gone`). Leaving a dead run's entry for a
  later clean-up costs disk space; removing a live one kills a run.

  Returns:
    How many entries were removed.
  """
  removed = 0
  for root, dirs, names in os.walk(workdir):
    if _held_by_another(root, names):
      # Another process works here (at the top: a grid shard beside us).
      dirs[:] = []
      continue
    staging = [d for d in dirs if d.startswith(files.STAGING_PREFIX)]
    dirs[:] = [d for d in dirs if not d.startswith(files.STAGING_PREFIX)]
    for name in staging + [n for n in names
                           if n.startswith(files.STAGING_PREFIX)]:
      path = os.path.join(root, name)
      if staging_owner_gone(path) is False:
        continue
      try:
        files._remove(path)
        removed += 1
      except OSError:
        pass
  if removed:
    logging.info('Removed %d staging file(s) left in %s by an interrupted '
                 'run.', removed, workdir)
  return removed


def start_run(workdir: str, lock_file: str = files.LOCK_FILE,
              clean: bool = True) -> Optional[int]:
  """What every binary does first: create, lock and clean its work directory.

  Args:
    workdir: the work directory.
    lock_file: the lock's name; the shards of one grid, which share a
      directory by design, each hold their own.
    clean: remove staging files left by a killed run (those of live
      processes are never touched, see `clean_staging`).

  Raises:
    validate.InvalidArgument: an empty path, or a directory that cannot be
      created or written.
    WorkdirBusy: another process is running on `workdir`.
  """
  validate.workdir('--workdir', workdir)
  fd = lock_workdir(workdir, lock_file)
  if clean:
    clean_staging(workdir)
  return fd
