r"""Which test images an attack leaves standing, class by class.

  python binaries/survivors.py --config=configs/table1.py:cpu \
      --methods=vi --steps=100 --restarts=3 --workdir=workdir/table1

For each saved posterior (trained first if missing): PGD on the predictive
loss at the config's first eps, then per class the clean and adversarial
accuracy, the share of posterior samples that still give the label, and the
class most adversarial images go to (`tfp_robust.evaluation.metrics.per_class`). Tells
a model that resists on some digits from one whose attacked images all fall
into one class. Writes <workdir>/<dataset>/survivors.{csv,md}.

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
from tfp_robust.core import validate

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config (file:variant); --print_config lists '
    'its fields.')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir', 'Output directory.')
_METHODS = flags.DEFINE_list('methods', None,
                             'Methods to analyse (default: the config\'s).')
_STEPS = flags.DEFINE_integer('steps', 100, 'PGD steps.')
_RESTARTS = flags.DEFINE_integer('restarts', 3, 'PGD random restarts.')
flags.mark_flags_as_required(['config'])


def main(argv):
  del argv
  config = _CONFIG.value
  methods = _METHODS.value or list(config.methods)
  steps = validate.integer('--steps', _STEPS.value, 1)
  restarts = validate.integer('--restarts', _RESTARTS.value, 1)
  config_checks.check_run(config, methods, _WORKDIR.value)
  locks.start_run(_WORKDIR.value)  # One run per work directory.
  # pylint: disable=g-import-not-at-top  # Heavy: after the checks.
  from tfp_robust.experiments import paper as experiments
  from tfp_robust.fit import fitting
  from tfp_robust.reports import tables as reports
  fitting.ensure_trained(config, methods, _WORKDIR.value)
  frame = experiments.survivors_saved(config, methods, _WORKDIR.value, steps,
                                      restarts)
  out = os.path.join(_WORKDIR.value, config.dataset)
  reports.write_table(frame, os.path.join(out, 'survivors'))
  print(frame.to_string(index=False, float_format=lambda v: f'{v:.3f}'))


if __name__ == '__main__':
  app.run(main)
