r"""Which sampler mixes? HMC variants on half moons and MNIST, measured.

  python binaries/samplers.py --workdir=workdir/samplers
  python binaries/samplers.py --targets=halfmoons

Each variant (fixed, jittered and ChEES-adapted trajectories, diagonal mass
matrix, NUTS, chain starts; see configs/samplers.py) is fitted on each
target with the same iterations, then measured: function-space R-hat and
ESS (in total and per hour), test accuracy, PGD accuracy and the mean
expected-gradient magnitude. A finished variant is skipped when the binary
runs again; a killed one resumes inside HMC. Writes
<workdir>/samplers.{csv,md}, samplers.png and mixing.png (robustness
against mixing, every target's rows pooled).

--print_config lists every config field (set one with --config.<field>=<value>)
and exits before TensorFlow is imported.
"""

import _quiet  # pylint: disable=unused-import  # First: quiet TF, --print_config.
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from tfp_robust.core import config_checks
from tfp_robust.core import locks
from tfp_robust.core import validate

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                           'configs', 'samplers.py:cpu'),
    'Comparison config (file:variant); --print_config lists its fields.')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir/samplers',
                               'Output directory.')
_TARGETS = flags.DEFINE_list('targets', None,
                             'Targets to run (default: the config\'s).')


def main(argv):
  del argv
  config = _CONFIG.value
  # Before TensorFlow: every target and variant's fields (the sampler's
  # cross-field rules follow in sampler_comparison.check, below).
  config_checks.sampler_comparison(config, _TARGETS.value)
  validate.workdir('--workdir', _WORKDIR.value)
  # pylint: disable=g-import-not-at-top  # Heavy: after the checks.
  from tfp_robust.reports import plots
  from tfp_robust.reports import tables as reports
  from tfp_robust.experiments import samplers as sampler_comparison
  targets = sampler_comparison.check(config, _TARGETS.value)
  locks.start_run(_WORKDIR.value)  # One run per work directory.
  frame = sampler_comparison.run(config, _WORKDIR.value, targets)
  reports.write_table(frame, os.path.join(_WORKDIR.value, 'samplers'))
  reports.save_figure(plots.sampler_comparison(frame),
                      os.path.join(_WORKDIR.value, 'samplers.png'))
  reports.save_figure(plots.robustness_against_mixing(frame),
                      os.path.join(_WORKDIR.value, 'mixing.png'))
  columns = ['target', 'variant', 'sampler', 'chains', 'leapfrogs_per_iteration',
             'sampler_seconds', 'test_accuracy', 'fn_rhat_max', 'fn_ess_min',
             'fn_ess_min_per_hour', 'pgd_predictive_acc',
             'mean_abs_expected_grad']
  print(frame[columns].to_string(index=False, float_format='%.3f'))
  mixed = sampler_comparison.mixed(frame, config.mixed_rhat, config.mixed_ess)
  print(f'\n{int(mixed.sum())} of {len(frame)} variants reach function-space '
        f'R-hat < {config.mixed_rhat} and ESS >= {config.mixed_ess:g}.')
  print(f'Table: {os.path.abspath(_WORKDIR.value)}/samplers.md')


if __name__ == '__main__':
  app.run(main)
