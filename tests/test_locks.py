"""Locks: staging entries owned by their process, one writer per directory
(issue 27, items 2 and 3)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tfp_robust.core import files
from tfp_robust.core import locks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A shard of a grid at work: it holds its own lock on the shared work
# directory and has a checkpoint staged, a cell being written and an entry
# named by older code (no owner in its name).
_SHARD = """
import os, sys, time
from tfp_robust.core import files
from tfp_robust.core import locks
workdir = sys.argv[1]
locks.start_run(workdir, lock_file='.lock-shard-1', clean=False)
hmc = os.path.join(workdir, 'units', 'u1', 'hmc')
staged = files.staging_dir(hmc, 'state')
open(os.path.join(staged, 'ckpt.index'), 'w').write('half written')
cells = os.path.join(workdir, 'cells')
os.makedirs(cells)
open(os.path.join(cells, files.staging_prefix() + 'cell'), 'w').write('{')
open(os.path.join(cells, '.tmp-legacy'), 'w').write('{')
print('staged', flush=True)
time.sleep(120)
"""


def _entries(workdir):
  return sorted(os.path.relpath(os.path.join(root, name), workdir)
                for root, dirs, names in os.walk(workdir)
                for name in dirs + names if name.startswith('.tmp-'))


def test_a_merge_never_touches_a_live_shards_staging(tmp_path):
  workdir = str(tmp_path / 'grid')
  os.makedirs(workdir)
  shard = subprocess.Popen([sys.executable, '-c', _SHARD, workdir],
                           stdout=subprocess.PIPE, text=True, cwd=REPO)
  try:
    assert shard.stdout.readline().strip() == 'staged'
    live = _entries(workdir)
    assert len(live) == 3, live
    # What `binaries/grid.py --merge_only` does: its own lock, then cleans.
    locks.start_run(workdir, lock_file='.lock-shard-0')
    assert _entries(workdir) == live
    assert locks.clean_staging(workdir) == 0
  finally:
    shard.send_signal(signal.SIGKILL)
    shard.wait()
  try:
    # The shard is dead: its entries are nobody's and go.
    assert locks.clean_staging(workdir) == 3
    assert _entries(workdir) == []
  finally:
    locks.release_workdir(workdir, '.lock-shard-0')


def test_owner_of_a_staging_entry(tmp_path):
  ours = files.staging_dir(str(tmp_path), 'state')
  assert locks.staging_owner_gone(ours) is False
  # Our pid, but written before this process started: a reused pid.
  old = time.time() - 3600
  os.utime(ours, (old, old))
  assert locks.staging_owner_gone(ours) is True
  ended = subprocess.Popen([sys.executable, '-c', 'pass'])
  ended.wait()
  dead = tmp_path / f'.tmp-{ended.pid}@{os.uname().nodename}~state-x'
  dead.mkdir()
  assert locks.staging_owner_gone(str(dead)) is True
  elsewhere = tmp_path / f'.tmp-{os.getpid()}@another-host~state-x'
  elsewhere.mkdir()
  assert locks.staging_owner_gone(str(elsewhere)) is None
  assert locks.staging_owner_gone(str(tmp_path / '.tmp-legacy')) is None


def test_nothing_is_removed_while_another_process_holds_a_lock(tmp_path):
  workdir = str(tmp_path / 'run')
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import sys, time; from tfp_robust.core import files, locks;'
       " locks.start_run(sys.argv[1], lock_file='.lock-b', clean=False);"
       " print('locked', flush=True); time.sleep(120)", workdir],
      stdout=subprocess.PIPE, text=True, cwd=REPO)
  ended = subprocess.Popen([sys.executable, '-c', 'pass'])
  ended.wait()
  dead = f'.tmp-{ended.pid}@{os.uname().nodename}~x'
  live = files.staging_prefix('mine')
  try:
    assert holder.stdout.readline().strip() == 'locked'
    for name in ('.tmp-legacy', '.tmp-1@another-host~x', dead, live):
      (tmp_path / 'run' / name).write_text('{')
    locks.start_run(workdir, lock_file='.lock-a')
    # Even the entry of a dead process waits (in another pid namespace
    # with the same host name, the pid would look dead).
    assert len(_entries(workdir)) == 4
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  try:
    # Alone now: all but the entry of a live process (this one) go.
    assert locks.clean_staging(workdir) == 3
    assert _entries(workdir) == [live]
  finally:
    locks.release_workdir(workdir, '.lock-a')


def test_one_writer_is_released_after_its_block_and_not_reentered(tmp_path):
  directory = str(tmp_path / 'ckpt')
  probe = ('import sys; from tfp_robust.core import files, locks; '
           'locks.start_run(sys.argv[1], clean=False); print("locked")')
  with locks.one_writer(directory, 'checkpoint_dir'):
    with pytest.raises(files.WorkdirBusy) as error:
      with locks.one_writer(directory, 'checkpoint_dir'):
        pass
    assert str(error.value).startswith(
        f"checkpoint_dir={directory!r} is invalid: another call in this "
        'process is writing to it.')
    busy = subprocess.run([sys.executable, '-c', probe, directory],
                          capture_output=True, text=True, cwd=REPO)
    assert busy.returncode != 0 and 'another run is using it' in busy.stderr
  free = subprocess.run([sys.executable, '-c', probe, directory],
                        capture_output=True, text=True, cwd=REPO)
  assert free.returncode == 0 and 'locked' in free.stdout, free.stderr
  # A directory this process holds already (a binary's work directory)
  # stays held after the block.
  locks.start_run(directory)
  try:
    with locks.one_writer(directory, 'checkpoint_dir'):
      pass
    assert os.path.join(os.path.realpath(directory),
                        files.LOCK_FILE) in locks._HELD
  finally:
    locks.release_workdir(directory)
