r"""Figures 2 and 3: expected loss gradients versus the number of samples.

  python binaries/gradients.py --config=configs/gradients.py:cpu --workdir=workdir/gradients

Trains the HMC and VI ensembles if --workdir has none yet, computes
E_{first n}[grad_x L] on the test images for each n, and writes heatmaps
(Figure 2), strip plots (Figure 3) and a table of gradient magnitudes per n.
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

_CONFIG = config_flags.DEFINE_config_file('config', None,
                                          'Experiment config (file:variant).')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir', 'Output directory.')
_METHODS = flags.DEFINE_list('methods', None,
                             'Methods to analyse (default: the config\'s).')
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
  table = experiments.gradient_figures(config, methods, _WORKDIR.value)
  print(table.to_string(index=False, float_format=lambda v: f'{v:.3g}'))
  print(f'\nFigures: {os.path.abspath(os.path.join(_WORKDIR.value, config.dataset))}')
  print('TensorBoard: tensorboard --logdir '
        f"{os.path.abspath(os.path.join(_WORKDIR.value, 'tensorboard'))}")


if __name__ == '__main__':
  app.run(main)
