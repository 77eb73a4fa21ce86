"""Runs the test suite in a few pytest processes, two at a time.

  python tests/run_suite.py -q

Arguments are passed to each `pytest` run (e.g. `-m "not slow"`, `-x`).
Why not one `pytest tests`: in one long process the suite has segfaulted in
the C++ unwinder (`libgcc_s`) after about 340 tests, at a different test
each time tests were added (BUILD_NOTES, "The test suite"). JIT-compiled
(XLA) code registers its exception frames with the unwinder and, once
freed, can leave them registered (a known LLVM failure, cmu-db/noisepage#962);
a C++ exception thrown later then reads freed memory. So the modules that
compile with XLA (`ALONE`: one test per compiled path, and the binaries'
and fresh processes' modules) each run in their own process; the others
compile nothing (the suite runs with `$TFP_ROBUST_JIT_COMPILE=0`, see
`tests/conftest.py`) and share a few processes (`--groups`), which saves
each module the seconds TensorFlow takes to start.

`--jobs N` (default: the number of CPUs, at most 2) runs N processes at
once, the longest first (by the durations of the last run, kept in
`.pytest_cache/tfp_robust_suite_durations.json`); each process's output is
printed whole when it ends. At the end: a durations report (every module's
time, the slowest tests) and one closing line with the totals,
`N passed, N failed, N skipped`.
"""

import argparse
import collections
import concurrent.futures
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

HERE = os.path.dirname(os.path.abspath(__file__))
DURATIONS = os.path.join(os.path.dirname(HERE), '.pytest_cache',
                         'tfp_robust_suite_durations.json')

# Modules with a test compiled with XLA, a child Python per test, Ray or the
# binaries: each in a process of its own.
ALONE = frozenset({
    'test_apgd.py', 'test_benchmarks.py', 'test_binaries.py',
    'test_certify.py', 'test_distributed.py', 'test_experiments.py',
    'test_grid.py', 'test_hmc.py', 'test_mcmc_kernels.py', 'test_networks.py',
    'test_reproduce.py', 'test_square.py',
})

# Seconds a module took (2 cores, Dec 2026), for the order of a first run;
# after a run, its own durations (DURATIONS) are used.
FIRST_GUESS = {
    'test_binaries.py': 600, 'test_grid.py': 300, 'test_hmc.py': 200,
    'test_mcmc_kernels.py': 150, 'test_checks.py': 150, 'test_card.py': 150,
    'test_experiments.py': 150, 'test_reproduce.py': 150,
    'test_distributed.py': 120, 'test_benchmarks.py': 100,
}


def _counts(junit_path):
  """(passed, failed, skipped, [(seconds, module, test id)]) of a JUnit XML."""
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
    classname = case.get('classname', '')
    module = next((part + '.py' for part in classname.split('.')
                   if part.startswith('test_')), '?')
    times.append((float(case.get('time', 0.0)), module,
                  f"{classname}::{case.get('name', '')}"))
  return passed, failed, skipped, times


def _run(paths, argv, report_dir, index):
  junit = os.path.join(report_dir, f'{index}.xml')
  start = time.time()
  process = subprocess.run(
      [sys.executable, '-m', 'pytest'] + paths + [f'--junitxml={junit}'] +
      argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
  return (process.returncode, process.stdout.decode(errors='replace'),
          time.time() - start, _counts(junit))


def _load_durations():
  try:
    with open(DURATIONS) as f:
      durations = json.load(f)
    return {str(k): float(v) for k, v in durations.items()}
  except (OSError, ValueError, AttributeError, TypeError):
    return {}


def _save_durations(durations):
  try:
    os.makedirs(os.path.dirname(DURATIONS), exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(DURATIONS))
    with os.fdopen(handle, 'w') as f:
      json.dump(durations, f, indent=1, sort_keys=True)
    os.replace(temporary, DURATIONS)
  except OSError:
    pass


def plan(modules, groups, expected):
  """Processes to run: lists of paths, the longest expected first.

  Modules in `ALONE` get a process each; the others are packed into
  `groups` processes of about equal expected time (greedy, longest first).
  A module never timed counts as half a minute.
  """
  cost = lambda path: expected.get(os.path.basename(path), 30.0)
  alone = [[path] for path in modules if os.path.basename(path) in ALONE]
  shared = sorted((p for p in modules if os.path.basename(p) not in ALONE),
                  key=cost, reverse=True)
  bins = [[] for _ in range(max(1, min(groups, len(shared))))]
  for path in shared:
    min(bins, key=lambda b: sum(cost(p) for p in b)).append(path)
  processes = alone + [sorted(b) for b in bins if b]
  return sorted(processes, key=lambda ps: sum(cost(p) for p in ps),
                reverse=True)


def main(argv):
  parser = argparse.ArgumentParser(add_help=False)
  parser.add_argument('--jobs', type=int,
                      default=max(1, min(2, os.cpu_count() or 1)))
  parser.add_argument('--groups', type=int, default=3)
  known, rest = parser.parse_known_args(argv)
  modules = sorted(glob.glob(os.path.join(HERE, 'test_*.py')))
  expected = dict(FIRST_GUESS, **_load_durations())
  processes = plan(modules, known.groups, expected)
  failed, totals, all_times = [], [0, 0, 0], []
  module_times = collections.Counter()
  start = time.time()
  with tempfile.TemporaryDirectory() as report_dir, \
      concurrent.futures.ThreadPoolExecutor(known.jobs) as pool:
    futures = {pool.submit(_run, paths, rest, report_dir, index): paths
               for index, paths in enumerate(processes)}
    for done, future in enumerate(concurrent.futures.as_completed(futures)):
      paths = futures[future]
      names = [os.path.basename(p) for p in paths]
      code, output, seconds, counts = future.result()
      print(f'[{done + 1}/{len(processes)}] {" ".join(names)} '
            f'({seconds:.0f} s)', flush=True)
      sys.stdout.write(output)
      sys.stdout.flush()
      for index in range(3):
        totals[index] += counts[index]
      all_times += counts[3]
      # A module's time: its tests' times; alone, its process's (start-up
      # included).
      if len(names) == 1:
        module_times[names[0]] = seconds
      else:
        for test_seconds, module, _ in counts[3]:
          module_times[module] += test_seconds
      if code not in (0, 5):  # 5: every test deselected.
        failed.append(f'{" ".join(names)} (exit code {code})')
        if not counts[1]:  # A crash that no test case recorded.
          totals[1] += 1
  minutes = (time.time() - start) / 60
  _save_durations(dict(expected, **module_times))
  print('\nDurations (s) by module, slowest first: ' + ', '.join(
      f'{name} {seconds:.0f}' for name, seconds in
      module_times.most_common()))
  print('Slowest tests:')
  for seconds, _, test in sorted(all_times, reverse=True)[:15]:
    print(f'  {seconds:7.1f} s  {test}')
  if failed:
    print(f'FAILED processes: {", ".join(failed)}')
  print(f'{len(modules)} modules in {len(processes)} processes in '
        f'{minutes:.1f} min with {known.jobs} jobs.')
  print(f'{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped',
        flush=True)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
