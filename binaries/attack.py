r"""Tables 1 and 2 of the paper: attacks on posterior ensembles.

  python binaries/attack.py --config=configs/table1.py:cpu --workdir=workdir/table1

One command: methods without a saved ensemble in --workdir are trained first
(as binaries/train.py would), then all are attacked.

Every ensemble is attacked and evaluated with the same samples (the first
`attack.num_samples`) on the first `attack.num_points` test images. Writes
<workdir>/<dataset>/attacks.{csv,md} (all rows) and summary.{csv,md}, and
checks.md: the evaluation sanity checks of `tfp_robust.checks` (gradient
masking, a gradient attack weaker than noise, the paper's attack against the
strong protocol).
"""

import os

from absl import app
from absl import flags
from ml_collections import config_flags

from tfp_robust import experiments
from tfp_robust import fitting
from tfp_robust import reports

_CONFIG = config_flags.DEFINE_config_file('config', None,
                                          'Experiment config (file:variant).')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir', 'Output directory.')
_METHODS = flags.DEFINE_list('methods', None,
                             'Methods to attack (default: the config\'s).')
_CHECK_POINTS = flags.DEFINE_integer(
    'check_points', 100, 'Test points for the gradient-masking checks '
    '(checks.md); 0 skips them.')
_TRAIN_MISSING = flags.DEFINE_bool(
    'train_missing', True, 'Train (with the same config) any method that has '
    'no saved ensemble in --workdir yet, so one command gives the result.')
flags.mark_flags_as_required(['config'])


def main(argv):
  del argv
  config = _CONFIG.value
  methods = _METHODS.value or list(config.methods)
  if _TRAIN_MISSING.value:
    fitting.ensure_trained(config, methods, _WORKDIR.value)
  frame, summary = experiments.attack_saved(config, methods, _WORKDIR.value)
  out = os.path.join(_WORKDIR.value, config.dataset)
  reports.write_table(frame, os.path.join(out, 'attacks'))
  reports.write_table(summary, os.path.join(out, 'summary'))
  print(summary.to_string(index=False, float_format=lambda v: f'{v:.3f}'))
  if _CHECK_POINTS.value:
    report = experiments.check_saved(config, methods, _WORKDIR.value,
                                   _CHECK_POINTS.value)
    reports.write_text(os.path.join(out, 'checks.md'), report)
    print(report)
  print(f'\nTables: {os.path.abspath(out)}')


if __name__ == '__main__':
  app.run(main)
