r"""Robustness curves: accuracy against eps, certified band, both protocols.

  python binaries/curves.py --config=configs/curves.py:cpu --workdir=workdir/table1

Methods without a saved ensemble in --workdir are trained first (the same
work directory as binaries/attack.py reuses its ensembles). Writes
<workdir>/<dataset>/curves.{csv,md}, curves.png and curve_checks.md.
"""

import _quiet  # pylint: disable=unused-import  # First: quiets TensorFlow.
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from tfp_robust import config_checks
from tfp_robust import checks
from tfp_robust import experiments
from tfp_robust import files
from tfp_robust import fitting
from tfp_robust import plots
from tfp_robust import reports

_CONFIG = config_flags.DEFINE_config_file('config', None,
                                          'Experiment config (file:variant).')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir', 'Output directory.')
_METHODS = flags.DEFINE_list('methods', None,
                             'Methods to evaluate (default: the config\'s).')
flags.mark_flags_as_required(['config'])


def main(argv):
  del argv
  config = _CONFIG.value
  methods = _METHODS.value or list(config.methods)
  config_checks.check_run(config, methods, _WORKDIR.value)
  files.start_run(_WORKDIR.value)  # One run per work directory.
  fitting.ensure_trained(config, methods, _WORKDIR.value)
  rows, findings = experiments.robustness_curves(config, methods,
                                                 _WORKDIR.value)
  out = os.path.join(_WORKDIR.value, config.dataset)
  reports.write_table(rows, os.path.join(out, 'curves'))
  reports.write_text(os.path.join(out, 'curve_checks.md'),
                     checks.format_findings(findings) + '\n')
  reports.save_figure(plots.robustness_curves(
      rows, f'{config.dataset}: {int(config.attack.num_points)} test images'),
      os.path.join(out, 'curves.png'))
  print(checks.format_findings(findings))
  print(f'\nCurves: {os.path.abspath(out)}')
  print('TensorBoard: tensorboard --logdir '
        f"{os.path.abspath(os.path.join(_WORKDIR.value, 'tensorboard'))}")


if __name__ == '__main__':
  app.run(main)
