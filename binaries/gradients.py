r"""Figures 2 and 3: expected loss gradients versus the number of samples.

  python binaries/gradients.py --config=configs/gradients.py:cpu --workdir=workdir/gradients

Trains the HMC and VI ensembles if --workdir has none yet, computes
E_{first n}[grad_x L] on the test images for each n, and writes heatmaps
(Figure 2), strip plots (Figure 3) and a table of gradient magnitudes per n.

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
  from tfp_robust.experiments import paper as experiments  # pylint: disable=g-import-not-at-top
  table = experiments.gradient_figures(config, methods, workdir)
  print(table.to_string(index=False, float_format=lambda v: f'{v:.3g}'))
  print(f'\nFigures: {os.path.abspath(os.path.join(workdir, config.dataset))}')
  print('TensorBoard: tensorboard --logdir '
        f"{os.path.abspath(os.path.join(workdir, 'tensorboard'))}")


if __name__ == '__main__':
  app.run(main)
