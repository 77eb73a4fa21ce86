r"""How much do the known evaluation mistakes inflate robustness?

  python binaries/ablation.py --config=configs/table1.py:cpu --workdir=workdir/table1

For each saved ensemble: FGSM and PGD done correctly, with the softmax
applied twice, with PGD's pixel-range step and no projection, and with the
attack crafted on other posterior samples than those evaluated (see
`tfp_robust.ablations`). Writes <workdir>/<dataset>/ablation.{csv,md}.
"""

import os

from absl import app
from absl import flags
from ml_collections import config_flags

from tfp_robust import experiments
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
  frame = experiments.ablation_saved(config, _METHODS.value or
                                   list(config.methods), _WORKDIR.value)
  out = os.path.join(_WORKDIR.value, config.dataset)
  reports.write_table(frame, os.path.join(out, 'ablation'))
  print(frame.to_string(index=False, float_format=lambda v: f'{v:.3f}'))


if __name__ == '__main__':
  app.run(main)
