r"""Robustness curves: accuracy against eps, certified band, both protocols.

  python binaries/curves.py --config=configs/curves.py:cpu --workdir=workdir/table1

Methods without a saved ensemble in --workdir are trained first (the same
work directory as binaries/attack.py reuses its ensembles). Writes
<workdir>/<dataset>/curves.{csv,md}, curves_band.{csv,md} (per method and eps:
certified accuracy, the strongest attack and the gap between them, the
paper's PGD beside), curves.png and curve_checks.md.

--print_config lists every config field (set one with --config.<field>=<value>)
and exits before TensorFlow is imported.
"""

import _quiet  # pylint: disable=unused-import  # First: quiet TF, --print_config.
import _experiment
import os

from absl import app


def main(argv):
  del argv
  config, methods, workdir = _experiment.start()
  # pylint: disable=g-import-not-at-top  # Heavy: after the checks.
  from tfp_robust.evaluation import checks
  from tfp_robust.experiments import paper as experiments
  from tfp_robust.reports import plots
  from tfp_robust.reports import tables as reports
  rows, findings = experiments.robustness_curves(config, methods,
                                                 workdir)
  out = os.path.join(workdir, config.dataset)
  reports.write_table(rows, os.path.join(out, 'curves'))
  reports.write_table(reports.curve_band(rows),
                      os.path.join(out, 'curves_band'))
  reports.write_text(os.path.join(out, 'curve_checks.md'),
                     checks.format_findings(findings) + '\n')
  reports.save_figure(plots.robustness_curves(
      rows, f'{config.dataset}: {int(config.attack.num_points)} test images'),
      os.path.join(out, 'curves.png'))
  print(checks.format_findings(findings))
  print(f'\nCurves: {os.path.abspath(out)}')
  print('TensorBoard: tensorboard --logdir '
        f"{os.path.abspath(os.path.join(workdir, 'tensorboard'))}")


if __name__ == '__main__':
  app.run(main)
