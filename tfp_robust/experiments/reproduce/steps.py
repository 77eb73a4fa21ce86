"""The paper's experiments as ordered steps, and how each is launched.

Each experiment is a `Step`: one of the existing binaries, run as a
subprocess of the same Python interpreter with its config file:variant and
flags, into a sub-directory of the run's work directory. `STEPS` lists them
in the paper's order (Figure 1, Table 1 under the paper's and the strong
protocol, Table 2, Figures 2 and 3, the robustness curves, Figure 4's
grids, the replay of the original pipeline).

Sharing: the Table 1 steps, the curves and the replay share one
sub-directory, `table1/`, as the binaries intend: the strong protocol, the
curves and the replay attack the ensembles the paper protocol trained
(each binary writes its own file names, so nothing is overwritten).
"""

import dataclasses
import os
import sys
from typing import List, Optional, Sequence, Tuple

from tfp_robust.core import config_lib
from tfp_robust.core import files
from tfp_robust.core import validate

# tfp_robust/experiments/reproduce/steps.py -> the repository, four levels up.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BINARIES = os.path.join(REPO, 'binaries')
CONFIGS = os.path.join(REPO, 'configs')
SCALES = config_lib.VARIANTS


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


# -- commands -----------------------------------------------------------------

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
