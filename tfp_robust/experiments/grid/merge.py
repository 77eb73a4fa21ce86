"""The grid's cells as one table: CSV, Markdown and TensorBoard HParams."""

import os
from typing import Sequence

from tfp_robust.reports import tables as reports
from tfp_robust.reports import summaries
from tfp_robust.experiments.grid import cells as cells_lib
from tfp_robust.experiments.grid import runner

# Columns first in this order; the rest follow sorted, so a resumed grid
# writes the same file as an uninterrupted one.
_FIRST = ('method', 'dataset', 'num_samples', 'step_size', 'num_leapfrog_steps',
          'batch_size', 'learning_rate', 'hidden', 'activation', 'depth',
          'epochs', 'clean_accuracy')


def table(cells: Sequence[cells_lib.Cell], grid_config, workdir: str):
  """A DataFrame with one row per finished cell, in the cells' order."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  rows = []
  for cell in cells:
    row = runner.read_cell(workdir, grid_config, cell)
    if row is not None:
      rows.append({k: v for k, v in row.items() if k != 'digest'})
  frame = pd.DataFrame(rows)
  if frame.empty:
    return frame
  first = [c for c in _FIRST if c in frame.columns]
  return frame[first + sorted(c for c in frame.columns if c not in first)]


def write(frame, workdir: str, hparams: bool = True) -> None:
  """`<workdir>/grid.{csv,md}`, and one HParams run per cell."""
  reports.write_table(frame, os.path.join(workdir, 'grid'))
  if not hparams or frame.empty:
    return
  axes = {axis for method_axes in cells_lib.AXES.values()
          for axis in method_axes} | {'method', 'dataset'}
  for _, row in frame.iterrows():
    name = str(row.get('unit', 'cell')) + '-' + '-'.join(
        f'{k}{row[k]}' for k in sorted(axes) if k in row and row[k] == row[k])
    writer = summaries.open_writer(os.path.join(workdir, 'tensorboard',
                                                'hparams', name))
    summaries.hparams(
        writer, {k: row[k] for k in sorted(axes)
                 if k in row and row[k] == row[k]},
        {f'cell/{k}': row[k] for k in frame.columns
         if k.endswith(('_acc', '_robustness', 'clean_accuracy'))
         and row[k] == row[k]})
    writer.close()
