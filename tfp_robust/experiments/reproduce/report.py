"""The run's report, `<workdir>/REPORT.md`.

It reads what the binaries wrote (their Markdown tables, PNG figures) and
sets the paper's numbers (`paper_numbers`) beside our summaries; it
recomputes nothing.
"""

import datetime
import glob
import os
import shlex
from typing import Dict, Optional, Sequence

from tfp_robust.core import files
from tfp_robust.experiments import paper_numbers
from tfp_robust.experiments.reproduce import markers
from tfp_robust.experiments.reproduce.steps import command
from tfp_robust.experiments.reproduce.steps import GROUPS
from tfp_robust.experiments.reproduce.steps import Launch
from tfp_robust.experiments.reproduce.steps import Outcome
from tfp_robust.experiments.reproduce.steps import Step
from tfp_robust.experiments.reproduce.steps import step_dir

REPORT = 'REPORT.md'


def _read(path: str) -> str:
  with open(path, encoding='utf-8') as f:
    return f.read().rstrip('\n')


def _beside_paper(step: Step, workdir: str) -> Optional[str]:
  """Our summary with the paper's numbers beside it, as Markdown.

  Written (through `reports.write_table`) to
  `<workdir>/report/<step>_beside_paper.{csv,md}`.
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from tfp_robust.reports import tables as reports  # pylint: disable=g-import-not-at-top
  table = paper_numbers.TABLES[step.paper]
  summary = os.path.join(step_dir(step, workdir), step.summary)
  ours = pd.read_csv(summary)
  ours = ours.astype(object).where(ours.notna(), None).to_dict('records')
  rows = paper_numbers.beside(table, step.dataset, ours)
  if not rows:
    return None
  path = os.path.join(workdir, 'report', f'{step.name}_beside_paper')
  reports.write_table(pd.DataFrame(rows), path)
  return _read(path + '.md')


def _step_section(step: Step, workdir: str, launch: Launch,
                  marker: Optional[Dict], outcome: Optional[Outcome]) -> str:
  lines = [f'### `{step.name}`', '']
  if step.about:
    lines += [step.about + '.', '']
  failed = outcome and outcome.failed and outcome.failed[0] == step.name
  if marker:
    version = marker.get('code_version')
    lines.append(f"Finished {marker.get('finished', '')} in "
                 f'**{markers.step_time(marker)}**' +
                 (f' by {version}' if version else '') + ':')
    argv = marker.get('command') or command(step, workdir, launch)
  else:
    if failed:
      lines.append(f'**Failed** in the last run (exit code '
                   f'{outcome.failed[1]}; output in '
                   f'[{os.path.relpath(outcome.failed[2], workdir)}]'
                   f'({os.path.relpath(outcome.failed[2], workdir)})). '
                   'Not finished:')
    else:
      lines.append('Not run yet:')
    argv = command(step, workdir, launch)
  lines += ['', '```', shlex.join(argv), '```', '']
  if not marker:
    return '\n'.join(lines)
  base = step_dir(step, workdir)
  if step.paper:
    title = paper_numbers.TABLES[step.paper].title
    try:
      beside = _beside_paper(step, workdir)
    except (OSError, ValueError, KeyError) as error:
      beside = None
      lines += [f'(No comparison with the paper: {error}.)', '']
    if beside:
      bounds = ''
      if '(ours only)' in beside:
        bounds = ('; columns marked "ours only" have no counterpart in the '
                  'paper')
      worst_case = paper_numbers.OURS_ONLY[0][0]
      if worst_case in beside:
        bounds += ('; the true robust accuracy lies between the certified '
                   'accuracy and the worst case over every attack')
      lines += [f"**Beside the paper's {title}** (ours, then the paper's "
                'value; the paper attacks with the expected loss'
                f'{bounds}):', '', beside, '']
  for table in step.tables:
    path = os.path.join(base, table)
    rel = os.path.relpath(path, workdir)
    if os.path.exists(path):
      lines += [f'**[{rel}]({rel})**', '', _read(path), '']
    else:
      lines += [f'(`{rel}` is missing.)', '']
  for pattern in step.figures:
    for path in sorted(glob.glob(os.path.join(base, pattern))):
      rel = os.path.relpath(path, workdir)
      lines += [f'![{rel}]({rel})', '']
  links = [os.path.relpath(os.path.join(base, link), workdir)
           for link in step.links if os.path.exists(os.path.join(base, link))]
  if links:
    lines += ['Also: ' + ', '.join(f'[{rel}]({rel})' for rel in links) + '.',
              '']
  return '\n'.join(lines)


def build_report(steps: Sequence[Step], workdir: str, launch: Launch,
                 outcome: Optional[Outcome] = None) -> str:
  """The Markdown report of every step of `steps` in `workdir`."""
  workdir = os.path.abspath(workdir)
  found = {step.name: markers.finished(step, workdir, launch.scale,
                                       warn=False) for step in steps}
  done = [m for m in found.values() if m]
  total = sum(markers.step_seconds(m) for m in done)
  lines = [
      f'# Carbone et al. (NeurIPS 2020), reproduced at {launch.scale} scale',
      '',
      f'Written by `binaries/reproduce.py --scale={launch.scale}` in '
      f'`{workdir}` ({files.code_version()}), '
      f"{datetime.datetime.now().isoformat(timespec='seconds')}.",
      '',
      f'**{len(done)} of {len(steps)} steps finished. Wall time of the whole '
      f'run: {markers.duration(total)}** (the finished steps together; a step '
      'killed and resumed counts every attempt, a killed one to within '
      f'{markers.HEARTBEAT_SECONDS:.0f} s)' +
      (f'; this invocation: {markers.duration(outcome.seconds)}'
       if outcome else '') + '.', '',
      '| step | experiment | status | wall time |', '|---|---|---|---|']
  for step in steps:
    marker = found[step.name]
    if marker:
      status, seconds = 'finished', markers.step_time(marker)
    elif outcome and outcome.failed and outcome.failed[0] == step.name:
      status, seconds = f'failed (exit code {outcome.failed[1]})', ''
    else:
      status, seconds = 'not run yet', ''
    lines.append(f'| [`{step.name}`](#{step.name}) | {step.group} | '
                 f'{status} | {seconds} |')
  lines.append('')
  for group, title in GROUPS.items():
    members = [s for s in steps if s.group == group]
    if not members:
      continue
    lines += [f'## {title}', '']
    for step in members:
      lines.append(_step_section(step, workdir, launch, found[step.name],
                                 outcome))
  return '\n'.join(lines).rstrip('\n') + '\n'


def write_report(steps: Sequence[Step], workdir: str, launch: Launch,
                 outcome: Optional[Outcome] = None) -> str:
  """Writes `build_report` to `<workdir>/REPORT.md` atomically; its path."""
  path = os.path.join(os.path.abspath(workdir), REPORT)
  files.write_text_atomically(path, build_report(steps, workdir, launch,
                                                 outcome))
  return path
