"""The paper in one command: its experiments as ordered steps, and the report.

Each experiment is a `Step`: one of the existing binaries, run as a
subprocess of the same Python interpreter with its config file:variant and
flags, into a sub-directory of the run's work directory. `STEPS` lists them
in the paper's order (Figure 1, Table 1 under the paper's and the strong
protocol, Table 2, Figures 2 and 3, the robustness curves, Figure 4's
grids, the replay of the original pipeline).

Resuming: a step that exits 0 writes an atomic marker
`<workdir>/steps/<name>.json` holding its command, wall time and code
version; `run` skips a step whose marker records the same step (binary,
config, flags, sub-directory: its `signature`) and runs the others, whose
binaries resume their own partial work (HMC checkpoints, saved ensembles,
finished grid cells, attacked methods). A work directory holds one scale.
Each step's output is appended to `<workdir>/logs/<name>.log` as well as
shown. Wall time counts every attempt, failed and killed ones too: a
running step saves its start and, every `HEARTBEAT_SECONDS`, its last alive
time in `<workdir>/steps/<name>.attempts.json`, so an attempt that was
killed still counts; the marker sums them.

Sharing: the Table 1 steps, the curves and the replay share one
sub-directory, `table1/`, as the binaries intend: the strong protocol, the
curves and the replay attack the ensembles the paper protocol trained
(each binary writes its own file names, so nothing is overwritten).

The report (`build_report`, `<workdir>/REPORT.md`) reads what the binaries
wrote (their Markdown tables, PNG figures) and sets the paper's numbers
(`paper_numbers`) beside our summaries; it recomputes nothing.
"""

import contextlib
import dataclasses
import datetime
import glob
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging

from tfp_robust.core import config_lib
from tfp_robust.core import files
from tfp_robust.experiments import paper_numbers
from tfp_robust.core import validate

# tfp_robust/experiments/reproduce.py -> the repository, three levels up.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BINARIES = os.path.join(REPO, 'binaries')
CONFIGS = os.path.join(REPO, 'configs')
SCALES = config_lib.VARIANTS
REPORT = 'REPORT.md'
_SCALE_FILE = 'reproduce.json'


@dataclasses.dataclass(frozen=True)
class Step:
  """One experiment: a binary, its config and flags, and what it writes.

  Paths of outputs are relative to the step's sub-directory `workdir`.

  Attributes:
    name: unique; `--steps` takes it (or its `group`).
    group: the experiment it belongs to, a key of `GROUPS`.
    binary: a file in binaries/, or an absolute path.
    config: `file.py:variant` in configs/ (or absolute), with `{scale}`
      standing for the scale; '' passes no --config.
    flags: further flags, as written on the command line.
    workdir: the sub-directory of the run's work directory.
    takes_executor: whether `--executor` is passed on (the grids).
    tables: Markdown tables the binary writes, shown in the report.
    links: files linked from the report, not shown (long tables, text).
    figures: glob patterns of the PNG figures it writes.
    paper: a key of `paper_numbers.TABLES` to set beside `summary`.
    dataset: the dataset of `summary`.
    summary: the CSV summary of ours the paper's numbers face.
    about: one sentence for the report.
  """
  name: str
  group: str
  binary: str
  config: str = ''
  flags: Tuple[str, ...] = ()
  workdir: str = ''
  takes_executor: bool = False
  tables: Tuple[str, ...] = ()
  links: Tuple[str, ...] = ()
  figures: Tuple[str, ...] = ()
  paper: str = ''
  dataset: str = ''
  summary: str = ''
  about: str = ''


# The experiments, in the paper's order: group -> the report's heading.
GROUPS = {
    'figure1': 'Figure 1: expected loss gradients of HMC BNNs on half moons',
    'table1': 'Table 1: random, FGSM and PGD attacks on HMC and VI BNNs',
    'table2': 'Table 2: a deterministic net, a deep ensemble and a VI BNN',
    'gradients': 'Figures 2 and 3: expected loss gradients against the '
                 'number of posterior samples',
    'curves': 'Robustness curves: accuracy against eps, with the certified '
              'band',
    'figure4': "Figure 4: robustness against accuracy over the paper's grids",
    'ablation': 'The original pipeline, replayed factor by factor',
}


_DATASET_NAMES = {'mnist': 'MNIST', 'fashion_mnist': 'Fashion-MNIST'}


def _table1(dataset: str, protocol: str) -> Step:
  paper = protocol == 'paper'
  shown = _DATASET_NAMES[dataset]
  return Step(
      name=f'table1_{dataset}_{protocol}', group='table1',
      binary='attack.py', config='table1.py:{scale}',
      # The sanity checks do not depend on the protocol: the paper step
      # writes checks.md, the strong one does not repeat them.
      flags=(f'--config.dataset={dataset}',
             f'--config.attack.protocol={protocol}') +
      (() if paper else ('--check_points=0',)),
      workdir='table1', tables=(f'{dataset}/summary_{protocol}.md',),
      links=(f'{dataset}/attacks_{protocol}.md',) +
      ((f'{dataset}/checks.md',) if paper else ()),
      paper='table1', dataset=dataset,
      summary=f'{dataset}/summary_{protocol}.csv',
      about=(f'{shown}, the paper\'s protocol (random noise, FGSM and PGD '
             'under the expected and the predictive loss), with the '
             'certified accuracy' if paper else
             f'{shown}, the strong protocol (APGD-CE and -DLR, Square, '
             'transfer attacks, the worst case per image), on the '
             'ensembles the paper-protocol step trained'))


def _gradients(dataset: str) -> Step:
  suffix = '' if dataset == 'mnist' else '_fashion'
  return Step(
      name=f'gradients_{dataset}', group='gradients', binary='gradients.py',
      config='gradients.py:{scale}' + suffix, workdir='gradients',
      tables=(f'{dataset}/gradient_magnitudes.md',),
      figures=(f'{dataset}/figure2_*.png', f'{dataset}/figure3_*.png'),
      about=f'{_DATASET_NAMES[dataset]}: expected loss gradients of HMC and '
      'VI for growing numbers of samples (Figure 2 heatmaps, Figure 3 '
      'strips)')


def _curves(dataset: str) -> Step:
  flags = () if dataset == 'mnist' else (f'--config.dataset={dataset}',)
  return Step(
      name=f'curves_{dataset}', group='curves', binary='curves.py',
      config='curves.py:{scale}', flags=flags, workdir='table1',
      tables=(f'{dataset}/curves_band.md',),
      figures=(f'{dataset}/curves.png',),
      links=(f'{dataset}/curves.md', f'{dataset}/curve_checks.md'),
      about=f'{_DATASET_NAMES[dataset]}: SGD, a deep ensemble, and Table 1\'s '
      'VI and HMC under both protocols at every eps of the config')


STEPS: Tuple[Step, ...] = (
    Step(name='figure1', group='figure1', binary='halfmoons_grid.py',
         config='halfmoons_grid.py:{scale}', workdir='figure1',
         tables=('figure1_summary.md',), figures=('figure1.png',),
         links=('figure1_cells.md',),
         about='HMC over the grid of widths, training-set sizes and warm-up '
         'lengths; the expected loss gradient components of the models '
         'above the accuracy threshold'),
    _table1('mnist', 'paper'),
    _table1('mnist', 'strong'),
    _table1('fashion_mnist', 'paper'),
    _table1('fashion_mnist', 'strong'),
    Step(name='table2_mnist_paper', group='table2', binary='attack.py',
         config='table2.py:{scale}',
         flags=('--config.attack.protocol=paper',), workdir='table2',
         tables=('mnist/summary_paper.md',),
         links=('mnist/attacks_paper.md', 'mnist/checks.md'),
         paper='table2', dataset='mnist', summary='mnist/summary_paper.csv',
         about='MNIST: the deterministic net, the deep ensemble and VI '
         'under the paper\'s protocol'),
    Step(name='table2_mnist_strong', group='table2', binary='attack.py',
         config='table2.py:{scale}',
         flags=('--config.attack.protocol=strong', '--methods=sgd',
                '--check_points=0'), workdir='table2',
         tables=('mnist/summary_strong.md',),
         links=('mnist/attacks_strong.md',),
         paper='table2', dataset='mnist', summary='mnist/summary_strong.csv',
         about='MNIST: the deterministic net under the strong protocol'),
    _gradients('mnist'),
    _gradients('fashion_mnist'),
    _curves('mnist'),
    _curves('fashion_mnist'),
    Step(name='figure4', group='figure4', binary='grid.py',
         config='figure4.py:{scale}', workdir='figure4', takes_executor=True,
         flags=('--config.protocols=("paper","strong")',),
         tables=('figure4_answers.md',),
         figures=('figure4_*.png',), links=('grid.md',),
         about='Every cell of the HMC, SGD and VI grids (the paper\'s '
         'Tables 5-7) on both datasets, trained and attacked under the '
         'paper\'s and the strong protocol'),
    Step(name='ablation_mnist', group='ablation', binary='ablation.py',
         config='table1.py:{scale}', flags=('--methods=hmc,hmc_original',),
         workdir='table1', tables=('mnist/ablation.md',),
         about='MNIST: Table 1\'s HMC and the original code\'s HMC posterior '
         'under every combination of the original evaluation\'s mistakes'),
)


@dataclasses.dataclass(frozen=True)
class Launch:
  """How steps are started: scale, executor, interpreter and directories."""
  scale: str = 'cpu'
  executor: str = 'in_process'
  python: str = sys.executable
  binaries: str = BINARIES
  configs: str = CONFIGS


@dataclasses.dataclass
class Outcome:
  """What one `run` did."""
  ran: List[str] = dataclasses.field(default_factory=list)
  skipped: List[str] = dataclasses.field(default_factory=list)
  failed: Optional[Tuple[str, int, str]] = None  # name, exit code, log
  seconds: float = 0.0


# -- arguments ----------------------------------------------------------------

def check_scale(scale: str) -> str:
  return validate.one_of('--scale', scale, SCALES)


def check_executor(executor: str) -> str:
  from tfp_robust.experiments.grid import executors  # pylint: disable=g-import-not-at-top
  return validate.one_of('--executor', executor, executors.EXECUTORS)


def select(steps: Sequence[Step], names: Optional[Sequence[str]]
           ) -> List[Step]:
  """The steps `names` picks (step or group names), in the order of `steps`.

  No names (None or empty) picks every step.

  Raises:
    validate.InvalidArgument: a name that is neither a step nor a group.
  """
  if not names:
    return list(steps)
  known = [s.name for s in steps] + [g for g in GROUPS
                                     if any(s.group == g for s in steps)]
  known = list(dict.fromkeys(known))
  wanted = set()
  for name in names:
    validate.one_of('--steps', name, known,
                    'Name steps or experiments (groups) as listed; '
                    '--dry_run prints every step.')
    wanted.add(name)
  return [s for s in steps if s.name in wanted or s.group in wanted]


# -- commands and markers ------------------------------------------------------

def step_dir(step: Step, workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), step.workdir or step.name)


def command(step: Step, workdir: str, launch: Launch) -> List[str]:
  """The step's command line: interpreter, binary, config, flags, workdir."""
  argv = [launch.python, os.path.join(launch.binaries, step.binary)]
  if step.config:
    argv.append('--config=' + os.path.join(
        launch.configs, step.config.format(scale=launch.scale)))
  argv += list(step.flags)
  if step.takes_executor:
    argv.append(f'--executor={launch.executor}')
  argv.append(f'--workdir={step_dir(step, workdir)}')
  return argv


def signature(step: Step, scale: str) -> str:
  """What decides a step's results: binary, config, flags, sub-directory.

  Not the interpreter, the repository's location or the executor.
  """
  return files.sha256_json({
      'binary': os.path.basename(step.binary),
      'config': os.path.basename(step.config.format(scale=scale)),
      'flags': list(step.flags), 'workdir': step.workdir or step.name})


def marker_path(step: Step, workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'steps', step.name + '.json')


def attempts_path(step: Step, workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'steps',
                      step.name + '.attempts.json')


# How often a running step's last-alive time is saved: a killed attempt's
# time is counted to within this.
HEARTBEAT_SECONDS = 30.0


def earlier_attempts(step: Step, workdir: str, scale: str) -> List[List[float]]:
  """`[start, last alive]` (epoch seconds) of the step's unfinished attempts.

  Attempts of another command, or an unreadable file, count as none.
  """
  path = attempts_path(step, workdir)
  if not os.path.exists(path):
    return []
  try:
    saved = files.read_json(path, "a step's attempt times")
  except files.InvalidFile as error:
    logging.warning('%s Its earlier attempts are not counted.', error)
    return []
  spans = saved.get('attempts') if isinstance(saved, dict) else None
  if (spans is None or saved.get('signature') != signature(step, scale) or
      not isinstance(spans, list) or
      not all(isinstance(a, list) and len(a) == 2 and
              all(isinstance(t, (int, float)) for t in a) and a[1] >= a[0]
              for a in spans)):
    logging.warning('%s is not this step\'s attempt record; its earlier '
                    'attempts are not counted.', path)
    return []
  return spans


class _Attempt:
  """Records an attempt's start and, every `HEARTBEAT_SECONDS`, its last
  alive time in the step's attempts file, so a killed run still counts it."""

  def __init__(self, step: Step, workdir: str, scale: str):
    self._path = attempts_path(step, workdir)
    self._signature = signature(step, scale)
    self.earlier = earlier_attempts(step, workdir, scale)
    self._start = time.time()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._beat, daemon=True)

  def _save(self) -> None:
    # Bookkeeping: a failure to write it must not stop the step.
    try:
      files.write_text_atomically(self._path, json.dumps({
          'signature': self._signature,
          'attempts': self.earlier + [[self._start, time.time()]]}))
    except OSError as error:
      logging.warning('Could not record the attempt in %s (%s); its time '
                      'will not count if the run is killed.', self._path,
                      error)

  def _beat(self) -> None:
    while not self._stop.wait(HEARTBEAT_SECONDS):
      self._save()

  def __enter__(self):
    os.makedirs(os.path.dirname(self._path), exist_ok=True)
    self._save()
    self._thread.start()
    return self

  def __exit__(self, *exc_info):
    self._stop.set()
    self._thread.join()
    self._save()

  @property
  def seconds(self) -> float:
    """This attempt's time so far."""
    return time.time() - self._start

  @property
  def all_seconds(self) -> float:
    """This attempt's time so far plus every earlier attempt's."""
    return self.seconds + sum(end - start for start, end in self.earlier)


def log_path(step: Step, workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'logs', step.name + '.log')


def finished(step: Step, workdir: str, scale: str,
             warn: bool = True) -> Optional[Dict]:
  """The step's marker if it finished with the same signature, else None.

  A marker that is unreadable or records another command counts as not
  finished (with a warning when `warn`): the step runs again.
  """
  path = marker_path(step, workdir)
  if not os.path.exists(path):
    return None
  try:
    marker = files.read_json(path, 'a finished-step marker')
  except files.InvalidFile as error:
    if warn:
      logging.warning('%s The step runs again.', error)
    return None
  if not isinstance(marker, dict) or not isinstance(
      marker.get('seconds'), (int, float)):
    if warn:
      logging.warning('%s is not a finished-step marker; the step runs '
                      'again.', path)
    return None
  if marker.get('signature') != signature(step, scale):
    if warn:
      logging.warning('Step %s finished earlier with another command (%s); '
                      'it runs again.', step.name,
                      shlex.join(map(str, marker.get('command') or [])))
    return None
  return marker


def _write_marker(step: Step, workdir: str, launch: Launch,
                  argv: List[str], seconds: float, all_seconds: float,
                  attempts: int) -> None:
  files.write_text_atomically(marker_path(step, workdir), json.dumps({
      'step': step.name, 'command': argv, 'seconds': seconds,
      'seconds_all_attempts': all_seconds, 'attempts': attempts,
      'signature': signature(step, launch.scale), 'scale': launch.scale,
      'finished': datetime.datetime.now().isoformat(timespec='seconds'),
      'code_version': files.code_version()}, indent=2))


def claim_workdir(workdir: str, scale: str) -> None:
  """Records the scale of a new work directory; refuses another scale.

  Binaries reuse what a work directory holds (saved ensembles, grid cells),
  so CPU-scale and paper-scale results must not share one.
  """
  path = os.path.join(workdir, _SCALE_FILE)
  if os.path.exists(path):
    held = files.read_json(path, 'the scale of a reproduce run')
    held = held.get('scale') if isinstance(held, dict) else None
    if held != scale:
      validate.fail('--scale', scale, f'the work directory {workdir} holds '
                    f'a {held}-scale run, whose trained models the '
                    f'{scale}-scale steps would reuse', 'Choose another '
                    '--workdir for this scale.')
    return
  files.write_text_atomically(path, json.dumps({
      'scale': scale,
      'started': datetime.datetime.now().isoformat(timespec='seconds')}))


# -- running ----------------------------------------------------------------

def _stdout(text: str) -> None:
  sys.stdout.write(text)
  sys.stdout.flush()


def dry_run(steps: Sequence[Step], workdir: str, launch: Launch) -> str:
  """The commands `run` would start, one per step, marking finished ones."""
  lines = []
  for index, step in enumerate(steps, 1):
    marker = finished(step, workdir, launch.scale)
    state = (f'finished ({_step_time(marker)}), would be skipped'
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
    marker = finished(step, workdir, launch.scale)
    if marker:
      echo(f'[{index}/{len(steps)}] {step.name}: finished earlier '
           f'({_step_time(marker)}), skipped\n')
      outcome.skipped.append(step.name)
      continue
    argv = command(step, workdir, launch)
    echo(f'[{index}/{len(steps)}] {step.name}: {shlex.join(argv)}\n')
    with _Attempt(step, workdir, launch.scale) as attempt:
      code = _execute(argv, log_path(step, workdir), echo)
    seconds, all_seconds = attempt.seconds, attempt.all_seconds
    if code != 0:
      outcome.failed = (step.name, code, log_path(step, workdir))
      break
    attempts = len(attempt.earlier) + 1
    _write_marker(step, workdir, launch, argv, seconds, all_seconds, attempts)
    with contextlib.suppress(FileNotFoundError):
      os.remove(attempts_path(step, workdir))  # Now in the marker.
    echo(f'[{index}/{len(steps)}] {step.name}: finished in '
         f'{duration(seconds)}' +
         (f' ({duration(all_seconds)} over {attempts} attempts)'
          if attempts > 1 else '') + '\n')
    outcome.ran.append(step.name)
    outcome.seconds = time.time() - start
    write_report(report_steps, workdir, launch, outcome)
  outcome.seconds = time.time() - start
  write_report(report_steps, workdir, launch, outcome)
  return outcome


# -- the report ----------------------------------------------------------------

def step_seconds(marker: Dict) -> float:
  """A finished step's wall time over all its attempts (a marker written
  before attempts were counted has its last attempt's only)."""
  value = marker.get('seconds_all_attempts')
  return float(value if isinstance(value, (int, float)) else
               marker['seconds'])


def _step_time(marker: Dict) -> str:
  attempts = marker.get('attempts')
  text = duration(step_seconds(marker))
  if isinstance(attempts, int) and attempts > 1:
    text += (f' over {attempts} attempts (last '
             f"{duration(marker['seconds'])})")
  return text


def duration(seconds: float) -> str:
  """A wall time as people read it: 42 s, 12.5 min, 3 h 07 min."""
  seconds = float(seconds)
  if seconds < 60:
    return f'{seconds:.0f} s'
  if seconds < 3600:
    return f'{seconds / 60:.1f} min'
  hours, rest = divmod(int(round(seconds)), 3600)
  return f'{hours} h {rest // 60:02d} min'


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
                 f'**{_step_time(marker)}**' +
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
  markers = {step.name: finished(step, workdir, launch.scale, warn=False)
             for step in steps}
  done = [m for m in markers.values() if m]
  total = sum(step_seconds(m) for m in done)
  lines = [
      f'# Carbone et al. (NeurIPS 2020), reproduced at {launch.scale} scale',
      '',
      f'Written by `binaries/reproduce.py --scale={launch.scale}` in '
      f'`{workdir}` ({files.code_version()}), '
      f"{datetime.datetime.now().isoformat(timespec='seconds')}.",
      '',
      f'**{len(done)} of {len(steps)} steps finished. Wall time of the whole '
      f'run: {duration(total)}** (the finished steps together; a step '
      'killed and resumed counts every attempt, a killed one to within '
      f'{HEARTBEAT_SECONDS:.0f} s)' +
      (f'; this invocation: {duration(outcome.seconds)}' if outcome else '')
      + '.', '',
      '| step | experiment | status | wall time |', '|---|---|---|---|']
  for step in steps:
    marker = markers[step.name]
    if marker:
      status, seconds = 'finished', _step_time(marker)
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
      lines.append(_step_section(step, workdir, launch, markers[step.name],
                                 outcome))
  return '\n'.join(lines).rstrip('\n') + '\n'


def write_report(steps: Sequence[Step], workdir: str, launch: Launch,
                 outcome: Optional[Outcome] = None) -> str:
  """Writes `build_report` to `<workdir>/REPORT.md` atomically; its path."""
  path = os.path.join(os.path.abspath(workdir), REPORT)
  files.write_text_atomically(path, build_report(steps, workdir, launch,
                                                 outcome))
  return path
