r"""Tables 1 and 2 of the paper: attacks on posterior ensembles.

  python binaries/attack.py --config=configs/table1.py:cpu --workdir=workdir/table1

One command: methods without a saved ensemble in --workdir are trained first
(as binaries/train.py would), then all are attacked.

Every ensemble is attacked and evaluated with the same samples (the first
`attack.num_samples`) on the first `attack.num_points` test images. Writes
<workdir>/<dataset>/attacks_<protocol>.{csv,md} (all rows, with the checks
each evaluation failed) and summary_<protocol>.{csv,md}, and checks.md: the
sanity checks of `tfp_robust.checks` on --check_points images (gradient
masking, attacks weaker than noise or than gradient-free ones, the paper's
attack against APGD and Square). --config.attack.protocol=paper|strong picks
the protocol (see tfp_robust/protocols.py).
"""

import _quiet  # pylint: disable=unused-import  # First: quiets TensorFlow.
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from tfp_robust import config_checks
from tfp_robust import experiments
from tfp_robust import files
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
  config_checks.check_run(config, methods, _WORKDIR.value)
  files.start_run(_WORKDIR.value)  # One run per work directory.
  if _TRAIN_MISSING.value:
    fitting.ensure_trained(config, methods, _WORKDIR.value)
  frame, summary = experiments.attack_saved(config, methods, _WORKDIR.value)
  out = os.path.join(_WORKDIR.value, config.dataset)
  protocol = config.attack.protocol
  reports.write_table(frame, os.path.join(out, f'attacks_{protocol}'))
  reports.write_table(summary, os.path.join(out, f'summary_{protocol}'))
  print(summary.to_string(index=False, float_format=lambda v: f'{v:.3f}'))
  if _CHECK_POINTS.value:
    report = experiments.check_saved(config, methods, _WORKDIR.value,
                                   _CHECK_POINTS.value)
    reports.write_text(os.path.join(out, 'checks.md'), report)
    print(report)
  print(f'\nTables: {os.path.abspath(out)}')
  print('TensorBoard: tensorboard --logdir '
        f"{os.path.abspath(os.path.join(_WORKDIR.value, 'tensorboard'))}")


if __name__ == '__main__':
  app.run(main)
