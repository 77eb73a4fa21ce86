r"""Fits one posterior (sgd | ensemble | vi | hmc) and saves its ensemble.

  python binaries/train.py --config=configs/table1.py:cpu --method=hmc \
      --workdir=workdir/table1
  python binaries/train.py --config=configs/table1.py:cpu --method=vi \
      --config.dataset=fashion_mnist --workdir=workdir/table1

The ensemble goes to <workdir>/<dataset>/<method>/ensemble; HMC checkpoints
to <workdir>/<dataset>/<method>/hmc_checkpoint, so a killed HMC run resumes
when started again with the same flags.

--print_config lists every config field (set one with --config.<field>=<value>)
and exits before TensorFlow is imported.
"""

import _quiet  # pylint: disable=unused-import  # First: quiet TF, --print_config.
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from tfp_robust.core import config_checks
from tfp_robust.core import files
from tfp_robust.core import locks

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config (file:variant); --print_config lists '
    'its fields.')
_METHOD = flags.DEFINE_enum('method', None, list(config_checks.METHODS),
                            'Which posterior to fit.')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir', 'Output directory.')
flags.mark_flags_as_required(['config', 'method'])


def main(argv):
  del argv
  config_checks.check_run(_CONFIG.value, [_METHOD.value], _WORKDIR.value)
  locks.start_run(_WORKDIR.value)  # One run per work directory.
  from tfp_robust.fit import fitting  # pylint: disable=g-import-not-at-top
  _, info = fitting.train_and_save(_CONFIG.value, _METHOD.value,
                                     _WORKDIR.value)
  print(f"{_METHOD.value} on {_CONFIG.value.dataset}: test accuracy "
        f"{info['test_accuracy']:.4f} ({info['fit_seconds']:.0f}s)")
  print('TensorBoard: tensorboard --logdir '
        f"{os.path.abspath(os.path.join(_WORKDIR.value, 'tensorboard'))}")


if __name__ == '__main__':
  app.run(main)
