r"""The original pipeline, replayed factor by factor.

  python binaries/ablation.py --config=configs/table1.py:cpu \
      --methods=hmc,hmc_original --workdir=workdir/table1

For each posterior (`hmc_original` is the original code's HMC posterior,
replayed: see `tfp_robust.fit.original`), every combination of the
evaluation switches of `tfp_robust.experiments.ablations`: the attack loss (correct,
softmax applied twice, Keras-style clipped probabilities), the attack (FGSM,
correct PGD, the original's 40-step PGD with a step of twice the pixel
range, a variant projected only at the end) and whether the attack saw other
posterior samples than those evaluated. Each row has the adversarial
accuracy and the fraction of inputs whose attack gradient is exactly zero.
Methods without a saved ensemble are trained first. Writes
<workdir>/<dataset>/ablation.{csv,md}.

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
  from tfp_robust.experiments import paper as experiments
  from tfp_robust.reports import tables as reports
  frame = experiments.ablation_saved(config, methods, workdir)
  out = os.path.join(workdir, config.dataset)
  reports.write_table(frame, os.path.join(out, 'ablation'))
  print(frame.to_string(index=False, float_format=lambda v: f'{v:.3f}'))


if __name__ == '__main__':
  app.run(main)
