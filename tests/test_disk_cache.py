"""The suite's on-disk fixture cache: built once, keyed by code, one writer."""

import os
import subprocess
import sys

import numpy as np

import disk_cache

HERE = os.path.dirname(os.path.abspath(__file__))


def _build():
  return [np.arange(3.0), np.eye(2, dtype=np.float32)]


def test_built_once_then_read_back_and_rebuilt_when_the_code_changes(
    tmp_path, monkeypatch):
  monkeypatch.setattr(disk_cache, 'DIRECTORY', str(tmp_path))
  calls = []

  def build():
    calls.append(1)
    return _build()

  first = disk_cache.arrays('net', build)
  again = disk_cache.arrays('net', build)
  assert len(calls) == 1
  for a, b, want in zip(first, again, _build()):
    np.testing.assert_array_equal(a, want)
    np.testing.assert_array_equal(b, want)
    assert a.dtype == want.dtype
  # Other code, another key: built again, beside the first.
  disk_cache.arrays('net', build, 'a changed source')
  assert len(calls) == 2
  assert len([n for n in os.listdir(tmp_path) if n.endswith('.npz')]) == 2
  monkeypatch.setenv('TFP_ROBUST_FIXTURE_CACHE', '0')
  disk_cache.arrays('net', build)
  assert len(calls) == 3


_CHILD = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import disk_cache
disk_cache.DIRECTORY = sys.argv[2]
def build():
  with open(sys.argv[3], 'a') as f:
    f.write('built\n')
  time.sleep(1.0)  # Both processes are waiting on the lock by now.
  return [np.full(4, 7.0)]
print(disk_cache.arrays('slow', build)[0].sum())
'''


def test_two_processes_at_once_build_once(tmp_path):
  log = tmp_path / 'builds.txt'
  script = tmp_path / 'child.py'  # A file: the key reads build's source.
  script.write_text(_CHILD)
  command = [sys.executable, str(script), HERE, str(tmp_path / 'cache'),
             str(log)]
  children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
              for _ in range(2)]
  outputs = [child.communicate(timeout=300)[0] for child in children]
  assert [child.returncode for child in children] == [0, 0]
  assert [o.strip() for o in outputs] == ['28.0', '28.0']
  assert log.read_text() == 'built\n'
  # No temporary file left behind.
  assert not [n for n in os.listdir(tmp_path / 'cache')
              if n.endswith('.npz') and not n.startswith('slow-')]
