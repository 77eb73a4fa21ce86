"""Running the steps in order, resuming a run, and its dry run.

`run` skips a step whose marker records the same step (`markers.finished`)
and runs the others, whose binaries resume their own partial work (HMC
checkpoints, saved ensembles, finished grid cells, attacked methods). Each
step's output is appended to `<workdir>/logs/<name>.log` as well as shown;
the report is rewritten after every finished step.
"""

import contextlib
import datetime
import os
import shlex
import subprocess
import sys
import time
from typing import Callable, List, Optional, Sequence

from tfp_robust.experiments.reproduce import markers
from tfp_robust.experiments.reproduce import report
from tfp_robust.experiments.reproduce.steps import command
from tfp_robust.experiments.reproduce.steps import Launch
from tfp_robust.experiments.reproduce.steps import Outcome
from tfp_robust.experiments.reproduce.steps import Step


def _stdout(text: str) -> None:
  sys.stdout.write(text)
  sys.stdout.flush()


def dry_run(steps: Sequence[Step], workdir: str, launch: Launch) -> str:
  """The commands `run` would start, one per step, marking finished ones."""
  lines = []
  for index, step in enumerate(steps, 1):
    marker = markers.finished(step, workdir, launch.scale)
    state = (f'finished ({markers.step_time(marker)}), would be skipped'
             if marker else 'would run')
    lines.append(f'# {index}/{len(steps)} {step.name}: {state}')
    lines.append(shlex.join(command(step, workdir, launch)))
  return '\n'.join(lines)


def _execute(argv: List[str], log: str, echo: Callable[[str], None]) -> int:
  """Runs `argv`, its output shown through `echo` and appended to `log`."""
  os.makedirs(os.path.dirname(log), exist_ok=True)
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  with open(log, 'a', encoding='utf-8') as out:
    out.write(f'\n=== {datetime.datetime.now().isoformat(timespec="seconds")}'
              f' {shlex.join(argv)}\n')
    out.flush()
    with subprocess.Popen(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env, text=True,
                          errors='replace') as process:
      for line in process.stdout:
        out.write(line)
        out.flush()
        echo(line)
  return process.returncode


def run(steps: Sequence[Step], workdir: str, launch: Launch,
        report_steps: Optional[Sequence[Step]] = None,
        echo: Callable[[str], None] = _stdout) -> Outcome:
  """Runs each unfinished step in order; stops at the first that fails.

  The report is rewritten after every finished step and at the end.

  Args:
    steps: the steps to run (e.g. `select(STEPS, names)`).
    workdir: the run's work directory (the caller holds its lock).
    launch: scale, executor, interpreter and directories.
    report_steps: the steps the report covers (default: `steps`).
    echo: where the steps' output and progress lines go.
  """
  workdir = os.path.abspath(workdir)
  report_steps = list(report_steps or steps)
  outcome = Outcome()
  start = time.time()
  for index, step in enumerate(steps, 1):
    marker = markers.finished(step, workdir, launch.scale)
    if marker:
      echo(f'[{index}/{len(steps)}] {step.name}: finished earlier '
           f'({markers.step_time(marker)}), skipped\n')
      outcome.skipped.append(step.name)
      continue
    argv = command(step, workdir, launch)
    echo(f'[{index}/{len(steps)}] {step.name}: {shlex.join(argv)}\n')
    with markers.Attempt(step, workdir, launch.scale) as attempt:
      code = _execute(argv, markers.log_path(step, workdir), echo)
    seconds, all_seconds = attempt.seconds, attempt.all_seconds
    if code != 0:
      outcome.failed = (step.name, code, markers.log_path(step, workdir))
      break
    attempts = len(attempt.earlier) + 1
    markers.write_marker(step, workdir, launch, argv, seconds, all_seconds,
                         attempts)
    with contextlib.suppress(FileNotFoundError):
      os.remove(markers.attempts_path(step, workdir))  # Now in the marker.
    echo(f'[{index}/{len(steps)}] {step.name}: finished in '
         f'{markers.duration(seconds)}' +
         (f' ({markers.duration(all_seconds)} over {attempts} attempts)'
          if attempts > 1 else '') + '\n')
    outcome.ran.append(step.name)
    outcome.seconds = time.time() - start
    report.write_report(report_steps, workdir, launch, outcome)
  outcome.seconds = time.time() - start
  report.write_report(report_steps, workdir, launch, outcome)
  return outcome


