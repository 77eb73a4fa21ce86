"""Files: the user's umask, one run per work directory, staging clean-up,
untrusted JSON (issue 10, items 4 and 5)."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import random_params
from tfp_robust.core import files
from tfp_robust.core import locks
from tfp_robust.fit import hmc
from tfp_robust import networks
from tfp_robust import ArchitectureEnsemble

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def umask():
  """Sets the process umask for one test, then restores it."""
  previous = os.umask(0o022)
  yield lambda mask: os.umask(mask)
  os.umask(previous)


def _mode(path):
  return stat.S_IMODE(os.stat(path).st_mode)


# -- the user's umask -------------------------------------------------------

@pytest.mark.parametrize('mask, file_mode, dir_mode', [
    (0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)])
def test_atomic_writes_and_staging_follow_the_umask(tmp_path, umask, mask,
                                                    file_mode, dir_mode):
  umask(mask)
  assert files.current_umask() == mask
  path = tmp_path / 'out' / 'table.csv'
  files.write_text_atomically(str(path), 'a,b\n')
  assert path.read_text() == 'a,b\n' and _mode(path) == file_mode
  staging = files.staging_dir(str(tmp_path), 'thing')
  assert os.path.basename(staging).startswith(files.staging_prefix('thing-'))
  assert locks.staging_owner_gone(staging) is False  # Ours, and we live.
  assert _mode(staging) == dir_mode


def test_saved_ensemble_follows_the_umask(tmp_path, umask):
  umask(0o022)
  arch = networks.Architecture.mlp(2, [3], 2)
  path = ArchitectureEnsemble(arch, random_params(arch, 2)).save(
      str(tmp_path / 'ensemble'))
  assert _mode(path) == 0o755
  for name in os.listdir(path):
    assert _mode(os.path.join(path, name)) == 0o644, name


def test_hmc_checkpoints_follow_the_umask(tmp_path, umask):
  umask(0o022)
  config = hmc.HMCConfig(num_results=2, num_burnin_steps=2, num_chains=2,
                         num_leapfrog_steps=2, segment_size=2,
                         jit_compile=False)
  directory = tmp_path / 'hmc'
  hmc.sample(lambda w: -tf.reduce_sum(w**2, -1), [tf.zeros((2, 3))], config,
             checkpoint_dir=str(directory), target_identity='gaussian')
  for root, dirs, names in os.walk(directory):
    for name in dirs:
      assert _mode(os.path.join(root, name)) == 0o755, name
    for name in names:
      assert _mode(os.path.join(root, name)) == 0o644, name


def test_failed_atomic_write_leaves_no_staging_file(tmp_path, monkeypatch):
  path = tmp_path / 'out.json'
  with pytest.raises(UnicodeEncodeError):  # Fails inside the write.
    files.write_text_atomically(str(path), 'bad \udc80 text')

  def disk_full(*args):
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(os, 'replace', disk_full)
  with pytest.raises(OSError, match='No space'):
    files.write_text_atomically(str(path), 'text')
  assert os.listdir(tmp_path) == []


# -- one run per work directory ---------------------------------------------

_HOLDER = """
import sys, time
from tfp_robust.core import files
from tfp_robust.core import locks
locks.start_run(sys.argv[1])
print('locked', flush=True)
time.sleep(120)
"""


def _hold(workdir):
  """A second process that takes `workdir` and keeps it until killed."""
  process = subprocess.Popen([sys.executable, '-c', _HOLDER, str(workdir)],
                             stdout=subprocess.PIPE, text=True, cwd=REPO)
  assert process.stdout.readline().strip() == 'locked'
  return process


def test_second_process_is_refused_naming_the_first_and_a_kill_frees_it(
    tmp_path):
  workdir = tmp_path / 'run'
  holder = _hold(workdir)
  try:
    with pytest.raises(files.WorkdirBusy) as error:
      locks.start_run(str(workdir))
    message = str(error.value)
    assert message.startswith(f'--workdir={str(workdir)!r} is invalid: '
                              'another run is using it')
    assert f'pid {holder.pid}' in message and '-c' in message
    assert 'choose another --workdir' in message
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # The kernel dropped the dead holder's lock: nothing is left stuck.
  try:
    locks.start_run(str(workdir))
    with open(workdir / files.LOCK_FILE) as f:
      assert json.load(f)['pid'] == os.getpid()
    locks.start_run(str(workdir))  # Taking it again in one process is fine.
  finally:
    locks.release_workdir(str(workdir))


def test_binary_refuses_a_busy_workdir(tmp_path):
  workdir = tmp_path / 'grid'
  locks.start_run(str(workdir))
  try:
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, 'binaries', 'halfmoons_grid.py'),
         f'--workdir={workdir}'], capture_output=True, text=True, cwd=REPO,
        timeout=300)
  finally:
    locks.release_workdir(str(workdir))
  assert result.returncode != 0
  assert 'another run is using it' in result.stderr
  assert f'pid {os.getpid()}' in result.stderr
  assert sorted(os.listdir(workdir)) == [files.LOCK_FILE]  # Nothing ran.


def test_staging_left_by_a_kill_is_removed_on_the_next_start(tmp_path):
  workdir = tmp_path / 'run'
  (workdir / 'mnist' / 'hmc' / '.tmp-segment_00003-x1y2').mkdir(parents=True)
  (workdir / 'mnist' / 'hmc' / '.tmp-segment_00003-x1y2' / 'ckpt.index'
  ).write_text('partial')
  (workdir / '.tmp-abc123').write_text('{"half": ')
  (workdir / 'mnist' / 'hmc' / 'run.json').write_text('{}')
  (workdir / 'mnist' / '.tmpfile').write_text('not ours')
  # A work directory inside, in use by another live process: left alone.
  busy = workdir / 'nested'
  holder = _hold(busy)
  try:
    (busy / '.tmp-live').write_text('being written')
    locks.start_run(str(workdir))
    locks.release_workdir(str(workdir))
    left = sorted(os.path.relpath(os.path.join(root, name), workdir)
                  for root, dirs, names in os.walk(workdir)
                  for name in dirs + names)
    assert left == ['.lock', 'mnist', 'mnist/.tmpfile', 'mnist/hmc',
                    'mnist/hmc/run.json', 'nested', 'nested/.lock',
                    'nested/.tmp-live']
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()


def test_start_run_refuses_an_unusable_workdir(tmp_path):
  with pytest.raises(ValueError, match='--workdir'):
    locks.start_run('')
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  with pytest.raises(ValueError, match='--workdir'):
    locks.start_run(str(blocker / 'sub'))


# -- untrusted JSON -----------------------------------------------------------

@pytest.mark.parametrize('raw, message', [
    (b'', 'it is empty'), (b'{"a": 1', 'not valid JSON'),
    (b'\xff\xfe{}', 'not UTF-8')])
def test_read_json_names_the_file_and_the_problem(tmp_path, raw, message):
  path = tmp_path / 'x.json'
  path.write_bytes(raw)
  with pytest.raises(files.InvalidFile, match=message) as error:
    files.read_json(str(path), 'a thing')
  assert str(error.value).startswith(f'file={str(path)!r} is invalid: ')
  with pytest.raises(files.InvalidFile, match='cannot be read'):
    files.read_json(str(tmp_path / 'missing.json'))


def test_digests_and_code_version():
  assert files.sha256_json({'b': 1, 'a': [1.5, 'x']}) == files.sha256_json(
      json.loads('{"a": [1.5, "x"], "b": 1}'))
  assert files.sha256_json({'a': 1}) != files.sha256_json({'a': 2})
  assert files.sha256_json({'x': np.float32(0.5)}) == files.sha256_json(
      {'x': 0.5})
  assert files.code_version().startswith('tfp_robust ')


def test_code_version_is_the_commit_imported_not_the_one_at_call_time(
    tmp_path):
  # A long run imports the package, then its checkout moves on: results must
  # name the code that runs (read at import), not the newer commit.
  import shutil  # pylint: disable=g-import-not-at-top
  import tfp_robust  # pylint: disable=g-import-not-at-top
  repo = tmp_path / 'checkout'
  shutil.copytree(os.path.dirname(tfp_robust.__file__), repo / 'tfp_robust',
                  ignore=shutil.ignore_patterns('__pycache__'))
  git = ['git', '-c', 'user.name=t', '-c', 'user.email=t@example.com']
  def run(*args):
    return subprocess.run(list(args), cwd=repo, check=True, text=True,
                          capture_output=True).stdout.strip()
  run('git', 'init', '-q')
  run(*git, 'add', '.')
  run(*git, 'commit', '-q', '-m', 'first')
  first = run('git', 'rev-parse', 'HEAD')[:12]
  script = ('import subprocess, tfp_robust\n'
            'from tfp_robust.core import files\n'
            f'subprocess.run({git!r} + ["commit", "-q", "--allow-empty", '
            '"-m", "second"], check=True)\n'
            'print(files.code_version())\n')
  env = dict(os.environ, PYTHONPATH=str(repo), TF_CPP_MIN_LOG_LEVEL='3')
  out = subprocess.run([sys.executable, '-c', script], cwd=repo, env=env,
                       check=True, text=True, capture_output=True).stdout
  second = run('git', 'rev-parse', 'HEAD')[:12]
  assert second != first
  assert out.strip().endswith(f'git {first}'), out


def test_file_errors_are_invalid_arguments():
  from tfp_robust.core import validate  # pylint: disable=g-import-not-at-top
  assert issubclass(files.InvalidFile, validate.InvalidArgument)
  assert issubclass(files.WorkdirBusy, validate.InvalidArgument)


def test_read_finished_trusts_only_an_object_with_the_same_digest(tmp_path,
                                                                   caplog):
  path = str(tmp_path / 'cell.json')
  with caplog.at_level('WARNING'):
    assert files.read_finished(path, 'a cell', 'abc', 'it runs again') is None
  assert not caplog.text  # Not there yet: nothing to warn about.
  for text in ('{"digest": "abc", "value"', '[1, 2]',
               '{"digest": "other", "value": 1}',
               '{"digest": "abc", "value": 1%s}' % ('0' * 5000),
               '[' * 100000 + ']' * 100000):
    with open(path, 'w') as f:
      f.write(text)
    caplog.clear()
    with caplog.at_level('WARNING'):
      assert files.read_finished(path, 'a cell', 'abc', 'it runs again') is None
    assert path in caplog.text and 'it runs again' in caplog.text, text[:40]
    assert 'Restore the file' not in caplog.text  # We recompute it ourselves.
  with open(path, 'w') as f:
    f.write('{"digest": "abc", "value": 1}')
  assert files.read_finished(path, 'a cell', 'abc', 'it runs again') == {
      'digest': 'abc', 'value': 1}
