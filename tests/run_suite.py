"""Runs the test suite one module per Python process.

  python tests/run_suite.py -m "not slow" -q

Arguments are passed to each `pytest` run. Why not one `pytest tests`: in one
long process the suite has segfaulted in the C++ unwinder (`libgcc_s`) after
about 340 tests, at a different test each time tests were added (sessions
9 and 10, BUILD_NOTES). JIT-compiled code registers its exception frames
with the unwinder and, once freed, can leave them registered (a known LLVM
failure, cmu-db/noisepage#962); a C++ exception thrown later then reads
freed memory. A process per module keeps that state from accumulating
across the suite. A single module still runs as usual:
`python -m pytest tests/test_hmc.py`.
"""

import glob
import os
import subprocess
import sys
import time


def main(argv):
  here = os.path.dirname(os.path.abspath(__file__))
  modules = sorted(glob.glob(os.path.join(here, 'test_*.py')))
  failed = []
  start = time.time()
  for index, path in enumerate(modules):
    name = os.path.basename(path)
    print(f'[{index + 1}/{len(modules)}] {name}', flush=True)
    code = subprocess.run([sys.executable, '-m', 'pytest', path] + argv,
                          check=False).returncode
    if code not in (0, 5):  # 5: every test of the module deselected.
      failed.append(f'{name} (exit code {code})')
  minutes = (time.time() - start) / 60
  if failed:
    print(f'FAILED in {minutes:.1f} min: {", ".join(failed)}', flush=True)
    return 1
  print(f'All {len(modules)} test modules passed in {minutes:.1f} min.',
        flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
