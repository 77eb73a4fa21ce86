"""Runs the test suite, one pytest process per module, two at a time.

  python tests/run_suite.py -m "not slow" -q

Arguments are passed to each `pytest` run. Why not one `pytest tests`: in one
long process the suite has segfaulted in the C++ unwinder (`libgcc_s`) after
about 340 tests, at a different test each time tests were added
(BUILD_NOTES, "The test suite"). JIT-compiled code registers its exception
frames with the unwinder and, once freed, can leave them registered (a known
LLVM failure, cmu-db/noisepage#962); a C++ exception thrown later then reads
freed memory. A process per module keeps that state from accumulating
across the suite. A single module still runs as usual:
`python -m pytest tests/test_hmc.py`.

`--jobs N` (default: the number of CPUs, at most 2) runs N modules at once;
each module's output is printed whole when it ends. At the end: the slowest
tests and modules, and one closing line with the totals,
`N passed, N failed, N skipped`.
"""

import argparse
import concurrent.futures
import glob
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree


def _counts(junit_path):
  """(passed, failed, skipped, [(seconds, test id)]) from a JUnit XML file."""
  try:
    root = ElementTree.parse(junit_path).getroot()
  except (OSError, ElementTree.ParseError):
    return 0, 0, 0, []
  passed = failed = skipped = 0
  times = []
  for case in root.iter('testcase'):
    outcome = {child.tag for child in case}
    if outcome & {'failure', 'error'}:
      failed += 1
    elif 'skipped' in outcome:
      skipped += 1
    else:
      passed += 1
    times.append((float(case.get('time', 0.0)),
                  f"{case.get('classname', '')}::{case.get('name', '')}"))
  return passed, failed, skipped, times


def _run(path, argv, report_dir):
  name = os.path.basename(path)
  junit = os.path.join(report_dir, name + '.xml')
  start = time.time()
  process = subprocess.run(
      [sys.executable, '-m', 'pytest', path, f'--junitxml={junit}'] + argv,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
  return (name, process.returncode, process.stdout.decode(errors='replace'),
          time.time() - start, _counts(junit))


def main(argv):
  parser = argparse.ArgumentParser(add_help=False)
  parser.add_argument('--jobs', type=int,
                      default=max(1, min(2, os.cpu_count() or 1)))
  known, rest = parser.parse_known_args(argv)
  here = os.path.dirname(os.path.abspath(__file__))
  modules = sorted(glob.glob(os.path.join(here, 'test_*.py')))
  failed_modules, totals, all_times, module_times = [], [0, 0, 0], [], []
  start = time.time()
  with tempfile.TemporaryDirectory() as report_dir, \
      concurrent.futures.ThreadPoolExecutor(known.jobs) as pool:
    futures = [pool.submit(_run, path, rest, report_dir) for path in modules]
    for done, future in enumerate(concurrent.futures.as_completed(futures)):
      name, code, output, seconds, counts = future.result()
      print(f'[{done + 1}/{len(modules)}] {name} ({seconds:.0f} s)',
            flush=True)
      sys.stdout.write(output)
      sys.stdout.flush()
      for index in range(3):
        totals[index] += counts[index]
      all_times += counts[3]
      module_times.append((seconds, name))
      if code not in (0, 5):  # 5: every test of the module deselected.
        failed_modules.append(f'{name} (exit code {code})')
        if not counts[1]:  # A crash that no test case recorded.
          totals[1] += 1
  minutes = (time.time() - start) / 60
  print('\nSlowest modules: ' + ', '.join(
      f'{name} {seconds:.0f} s' for seconds, name in
      sorted(module_times, reverse=True)[:8]))
  print('Slowest tests:')
  for seconds, test in sorted(all_times, reverse=True)[:15]:
    print(f'  {seconds:7.1f} s  {test}')
  if failed_modules:
    print(f'FAILED modules: {", ".join(failed_modules)}')
  print(f'{len(modules)} modules in {minutes:.1f} min with {known.jobs} '
        'jobs.')
  print(f'{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped',
        flush=True)
  return 1 if failed_modules else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
