r"""Figure 4: the paper's grids of HMC, SGD and VI networks, trained and attacked.

  python binaries/grid.py --workdir=workdir/figure4
  python binaries/grid.py --config=configs/figure4.py:paper --executor=ray
  python binaries/grid.py --shard_index=3 --num_shards=16   # one of 16 jobs
  python binaries/grid.py --merge_only                        # after the shards

Cells that one training serves share it (HMC sample counts are prefixes of
the longest chain, SGD and VI epochs are checkpoints of the longest run); the
plan's counts are printed first. Each cell is written atomically to
<workdir>/cells/ and skipped when the grid runs again, so a killed grid
resumes. The merge writes <workdir>/grid.{csv,md}, Figure 4 per dataset and
protocol, figure4_answers.{csv,md} (the paper's Figure 4 claims measured:
domination, rank correlation with accuracy and with width) and HParams for
TensorBoard.

--print_config lists every config field (set one with --config.<field>=<value>)
and exits before TensorFlow is imported.
"""

import _quiet  # pylint: disable=unused-import  # First: quiet TF, --print_config.
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from tfp_robust.core import config_checks
from tfp_robust.core import files
from tfp_robust.core import locks
from tfp_robust.core import validate

# `grid.executors.MAX_MAP_FRACTION`, copied so that the flags are defined
# without importing TensorFlow (tests/test_binaries.py keeps them equal).
_DEFAULT_MAX_MAP_FRACTION = 0.5
_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                           'configs', 'figure4.py:cpu'),
    'Grid config (file:variant); --print_config lists its fields.')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir/figure4', 'Output directory.')
_EXECUTOR = flags.DEFINE_enum('executor', 'in_process',
                              list(config_checks.GRID_EXECUTORS),
                              'Where units run.')
_RAY_ADDRESS = flags.DEFINE_string('ray_address', None,
                                   'Ray cluster address (default: local).')
_SHARD_INDEX = flags.DEFINE_integer('shard_index', 0, 'This job\'s shard.')
_NUM_SHARDS = flags.DEFINE_integer('num_shards', 1, 'Jobs sharing the grid.')
_MAX_MAP_FRACTION = flags.DEFINE_float(
    'max_map_fraction', _DEFAULT_MAX_MAP_FRACTION,
    'in_process: start a fresh process (resuming) once this one holds this '
    "share of the kernel's memory-map limit (vm.max_map_count).")
_MERGE_ONLY = flags.DEFINE_bool('merge_only', False,
                                'Only merge finished cells into the table.')


def main(argv):
  del argv
  config = _CONFIG.value
  config_checks.check_run(config, None, _WORKDIR.value)
  num_shards = validate.integer('--num_shards', _NUM_SHARDS.value, 1)
  validate.integer('--shard_index', _SHARD_INDEX.value, 0, num_shards - 1,
                   f'Shards are numbered 0 to {num_shards - 1}.')
  validate.number('--max_map_fraction', _MAX_MAP_FRACTION.value, 0.0, 1.0,
                  exclusive_minimum=True, fix='e.g. 0.5.')
  # Shards of one grid share a work directory, each holding its own lock
  # file, so they may run at once; two runs of the same shard may not.
  locks.start_run(_WORKDIR.value,
                  lock_file=f'.lock-shard-{_SHARD_INDEX.value}',
                  clean=_NUM_SHARDS.value == 1)
  # pylint: disable=g-import-not-at-top  # Heavy: after the checks.
  import pandas as pd
  from tfp_robust.experiments import grid
  from tfp_robust.reports import plots
  from tfp_robust.reports import tables as reports
  config_checks.check(config)  # The deep checks.
  workdir = _WORKDIR.value
  cells = grid.cells.grid_cells(config, config.datasets, config.methods)
  units = grid.cells.plan(cells)
  for method, count in grid.cells.counts(cells).items():
    print(f"{method}: {count['cells']} cells, {count['trainings_shared']} "
          'trainings after sharing')
  mine = grid.executors.shard(units, _SHARD_INDEX.value, _NUM_SHARDS.value)
  if not _MERGE_ONLY.value:
    options = ({'address': _RAY_ADDRESS.value} if _EXECUTOR.value == 'ray'
               else {'max_map_fraction': _MAX_MAP_FRACTION.value})
    try:
      grid.executors.run(mine, config, workdir, _EXECUTOR.value, **options)
    except grid.executors.RestartProcess as restart:
      # The units done so far are saved: the same command resumes after them.
      logging.info('Grid: %s; starting again.', restart)
      logging.flush()
      sys.stdout.flush()
      sys.stderr.flush()
      os.execv(sys.executable, [sys.executable] + sys.argv)
  frame = grid.merge.table(cells, config, workdir)
  grid.merge.write(frame, workdir)
  missing = len(cells) - len(frame)
  if missing:
    logging.info('%d of %d cells are not finished yet (other shards?).',
                 missing, len(cells))
  if not frame.empty:
    answers = grid.answers.answers(frame, config.protocols)
    if answers:
      reports.write_table(pd.DataFrame(answers),
                          os.path.join(workdir, 'figure4_answers'))
    for dataset in frame['dataset'].unique():
      for protocol in config.protocols:
        figure = plots.figure4(frame[frame['dataset'] == dataset], dataset,
                               protocol)
        if figure is not None:
          reports.save_figure(figure, os.path.join(
              workdir, f'figure4_{dataset}_{protocol}.png'))
  print(f'{len(frame)}/{len(cells)} cells in {os.path.abspath(workdir)}/grid.csv')


if __name__ == '__main__':
  app.run(main)
