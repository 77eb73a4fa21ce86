r"""Every experiment of the paper in order, resumable, into one report.

  python binaries/reproduce.py --scale=cpu --workdir=workdir/reproduce_cpu
  python binaries/reproduce.py --scale=cpu --dry_run          # the commands
  python binaries/reproduce.py --scale=cpu --steps=table1,ablation_mnist
  python binaries/reproduce.py --scale=paper --executor=ray   # grids on Ray

Runs Figure 1, Table 1 (MNIST and Fashion-MNIST, the paper's and the strong
protocol), Table 2, Figures 2 and 3, the robustness curves, Figure 4's grids
and the replay of the original pipeline, each as a subprocess of its binary
(`tfp_robust.experiments.reproduce.STEPS`) into <workdir>/<sub-directory>/. A finished
step leaves <workdir>/steps/<step>.json (command, wall time), so running the
same command again skips it and resumes the rest; output goes to the
terminal and <workdir>/logs/<step>.log. <workdir>/REPORT.md holds each
step's tables and figures, the paper's numbers beside ours, and the wall
times; it is rewritten after every step.

--print_config prints this binary's flags and exits before TensorFlow is
imported.
"""

import _quiet  # pylint: disable=unused-import  # First: quiet TF, --print_config.
import os
import sys

from absl import app
from absl import flags

from tfp_robust.core import files

from tfp_robust.core import locks
from tfp_robust.experiments import reproduce

_SCALE = flags.DEFINE_string('scale', 'cpu', 'cpu | paper: the config '
                             'variant every step runs with.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory (default: '
                               'workdir/reproduce_<scale>).')
_STEPS = flags.DEFINE_list('steps', None, 'Steps or experiments to run '
                           '(default: all), e.g. figure1,table1,'
                           'ablation_mnist; --dry_run lists them.')
_EXECUTOR = flags.DEFINE_string('executor', 'in_process', 'in_process | ray: '
                                'passed on to the grid steps.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print the commands (and which '
                             'steps have finished) without running them.')


def main(argv):
  del argv
  scale = reproduce.check_scale(_SCALE.value)
  steps = reproduce.select(reproduce.STEPS, _STEPS.value)
  here = os.path.dirname(os.path.abspath(__file__))
  launch = reproduce.Launch(
      scale=scale, executor=reproduce.check_executor(_EXECUTOR.value),
      binaries=here, configs=os.path.join(os.path.dirname(here), 'configs'))
  workdir = _WORKDIR.value
  if workdir is None:
    workdir = os.path.join('workdir', f'reproduce_{scale}')
  if _DRY_RUN.value:
    print(reproduce.dry_run(steps, workdir, launch))
    return 0
  locks.start_run(workdir)  # One run per work directory.
  reproduce.claim_workdir(workdir, scale)
  outcome = reproduce.run(steps, workdir, launch,
                          report_steps=reproduce.STEPS)
  report = os.path.abspath(os.path.join(workdir, reproduce.REPORT))
  print(f'\n{len(outcome.ran)} step(s) run, {len(outcome.skipped)} skipped '
        f'(finished earlier). Report: {report}')
  if outcome.failed:
    name, code, log = outcome.failed
    sys.stderr.write(
        f'Error: step {name} failed (exit code {code}); its output is in '
        f'{log}. Fix the cause and run the same command again: finished '
        'steps are skipped.\n')
    return 1
  return 0


if __name__ == '__main__':
  app.run(main)
