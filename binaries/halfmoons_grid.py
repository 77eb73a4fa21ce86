r"""Figure 1: expected loss gradients of HMC BNNs over a grid on half moons.

For every (hidden width, training points, warm-up) cell: fit HMC on the full
training set, keep the model if its test accuracy exceeds the threshold (as
the paper does), and record the expected loss gradient at the test points.
Each finished cell is written to <workdir>/cells/ and skipped on a rerun, and
each cell's HMC checkpoints let a killed run resume mid-cell.

  python binaries/halfmoons_grid.py --workdir=workdir/halfmoons_grid
  python binaries/halfmoons_grid.py --config=configs/halfmoons_grid.py:paper

--print_config lists every config field (set one with --config.<field>=<value>)
and exits before TensorFlow is imported.
"""

import _quiet  # pylint: disable=unused-import  # First: quiet TF, --print_config.
import itertools
import os
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from tfp_robust.core import config_checks
from tfp_robust.core import files
from tfp_robust.core import locks

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                           'configs', 'halfmoons_grid.py:cpu'),
    'Experiment config (file:variant); --print_config lists its fields.')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir/halfmoons_grid',
                               'Where results, plots and checkpoints go.')


def main(argv):
  del argv
  config = _CONFIG.value
  workdir = _WORKDIR.value
  config_checks.check_run(config, [], workdir)
  locks.start_run(_WORKDIR.value)  # One run per work directory.
  # pylint: disable=g-import-not-at-top  # Heavy: after the checks.
  from tfp_robust.experiments import halfmoons
  from tfp_robust.fit import fitting
  from tfp_robust.reports import plots
  from tfp_robust.reports import tables as reports
  fitting.check_config(config, [])  # The fit layer's rules too.
  cells = list(itertools.product(config.hidden, config.num_train,
                                 config.warmup))
  rows = []
  start = time.time()
  for index, (hidden, num_train, warmup) in enumerate(cells):
    row, cached = halfmoons.halfmoons_cell_resumable(config, hidden,
                                                     num_train, warmup, workdir)
    rows.append(row)
    halfmoons.write_cell_hparams(workdir, row)
    logging.info('Cell %d/%d hidden %d, %d points, warm-up %d: accuracy '
                 '%.3f, mean |grad| %.4f, %.0fs%s (%.1f min elapsed)',
                 index + 1, len(cells), hidden, num_train, warmup,
                 row['test_accuracy'], row['grad_mean_abs'], row['fit_seconds'],
                 ' (done earlier)' if cached else '',
                 (time.time() - start) / 60)
  frame = halfmoons.grid_table(rows)
  reports.write_table(frame, os.path.join(workdir, 'figure1_cells'))
  summary = halfmoons.grid_summary(frame)
  reports.write_table(summary, os.path.join(workdir, 'figure1_summary'))
  kept = [r for r in rows if r.get('kept')]
  reports.save_figure(
      plots.gradient_components_by_width(
          kept, f'Expected loss gradients, HMC, {config.variant} grid '
          f'({len(kept)}/{len(rows)} models above '
          f'{config.min_accuracy:.0%} accuracy)'),
      os.path.join(workdir, 'figure1.png'))
  print(summary.to_string(index=False, float_format=lambda v: f'{v:.4f}'))
  print(f'\nFigure and table: {os.path.abspath(workdir)}\n'
        'TensorBoard (HParams tab): tensorboard --logdir '
        f"{os.path.abspath(os.path.join(workdir, 'tensorboard'))}")


if __name__ == '__main__':
  app.run(main)
