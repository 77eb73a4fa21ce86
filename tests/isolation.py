"""Running a test in a fresh Python process (a child pytest).

Why: the whole suite in one pytest process has segfaulted inside the C++
unwinder (`libgcc_s`) a few tests after heavy in-process work with
jit-compiled TensorFlow functions (sessions 9 and 10, BUILD_NOTES). The
likely mechanism is LLVM's: JIT-compiled code registers its exception
frames with the unwinder and, once freed, can leave them registered, so a
C++ exception thrown later reads freed memory. A test that compiles much
and throws it away runs in its own process, so nothing of it is left in
the suite's.
"""

import functools
import inspect
import os
import subprocess
import sys

CHILD = os.environ.get('TFP_ROBUST_TEST_CHILD') == '1'
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fresh_process(test):
  """Runs `test` in a child pytest; in the child it runs as written."""
  path = os.path.abspath(inspect.getfile(test))

  @functools.wraps(test)
  def run(*args, **kwargs):
    if CHILD:
      return test(*args, **kwargs)
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         f'{path}::{test.__name__}'],
        env=dict(os.environ, TFP_ROBUST_TEST_CHILD='1'), capture_output=True,
        text=True, timeout=900, cwd=_REPO)
    assert result.returncode == 0, result.stdout[-4000:]
    assert '1 passed' in result.stdout, result.stdout[-2000:]
    return None

  return run
