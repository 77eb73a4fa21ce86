r"""The original pipeline, replayed factor by factor.

  python binaries/ablation.py --config=configs/table1.py:cpu \
      --methods=hmc,hmc_original --workdir=workdir/table1

For each posterior (`hmc_original` is the original code's HMC posterior,
replayed: see `tfp_robust.original_hmc`), every combination of the
evaluation switches of `tfp_robust.ablations`: the attack loss (correct,
softmax applied twice, Keras-style clipped probabilities), the attack (FGSM,
correct PGD, the original's 40-step PGD with a step of twice the pixel
range, a variant projected only at the end) and whether the attack saw other
posterior samples than those evaluated. Each row has the adversarial
accuracy and the fraction of inputs whose attack gradient is exactly zero.
Methods without a saved ensemble are trained first. Writes
<workdir>/<dataset>/ablation.{csv,md}.
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
                             'Methods to analyse (default: the config\'s).')
flags.mark_flags_as_required(['config'])


def main(argv):
  del argv
  config = _CONFIG.value
  methods = _METHODS.value or list(config.methods)
  config_checks.check_run(config, methods, _WORKDIR.value)
  files.start_run(_WORKDIR.value)  # One run per work directory.
  fitting.ensure_trained(config, methods, _WORKDIR.value)
  frame = experiments.ablation_saved(config, methods, _WORKDIR.value)
  out = os.path.join(_WORKDIR.value, config.dataset)
  reports.write_table(frame, os.path.join(out, 'ablation'))
  print(frame.to_string(index=False, float_format=lambda v: f'{v:.3f}'))


if __name__ == '__main__':
  app.run(main)
