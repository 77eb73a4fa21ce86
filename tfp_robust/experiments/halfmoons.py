"""Figure 1: one cell of the half-moons HMC grid, resumable.

A cell fits HMC on half moons, filters by accuracy and computes expected
gradients; a finished cell is read back from its JSON file.
"""

import json
import os
import shutil
import time
from typing import Dict, Optional

from absl import logging

from tfp_robust.evaluation import rows as evaluation
from tfp_robust.core import files
from tfp_robust.evaluation import gradients
from tfp_robust.fit import hmc
from tfp_robust.fit.mcmc import diagnostics as mcmc_diagnostics
from tfp_robust import networks
from tfp_robust.reports import tables as reports

_CELL_DIGEST = 'digest'
_CHECKPOINT_FINGERPRINT = 'cell_config.json'


def cell_name(hidden: int, num_train: int, warmup: int) -> str:
  return f'hidden{hidden}_train{num_train}_warmup{warmup}'


def _read_cell(path: str, name: str, fingerprint: str,
               hparams: Dict) -> Optional[Dict]:
  """The finished cell in `path`, or None (absent, stale or untrustworthy).

  A cell file that is not valid JSON, lacks a field, names another cell or
  whose SHA-256 differs from the one stored in it (edited or corrupted) is
  reported with a warning and recomputed, never trusted and never an abort.
  """
  if not os.path.exists(path):
    return None
  try:
    row = files.read_json(path, 'a finished grid cell')
    if not isinstance(row, dict):
      files.invalid(path, 'it should hold a JSON object (a grid cell)')
    if row.get('config') != fingerprint:
      logging.warning('Cell %s was computed with another config; '
                      'recomputing.', name)
      return None
    missing = [k for k in CELL_HPARAMS + _CELL_REQUIRED if k not in row]
    if missing:
      files.invalid(path, f'it lacks {missing}')
    held = {k: row[k] for k in CELL_HPARAMS}
    if held != hparams:
      files.invalid(path, f'it holds cell {held}, not {hparams}')
    digest = row.pop(_CELL_DIGEST, None)
    if digest is None:
      logging.warning('Cell file %s stores no digest (written by an older '
                      'tfp_robust): trusting it unchecked.', path)
    elif digest != files.sha256_json(row):
      files.invalid(path, 'it was changed after it was written (its SHA-256 '
                    'differs from the digest stored in it)')
  except files.InvalidFile as error:
    logging.warning('%s Recomputing cell %s.', error, name)
    return None
  return row


def _checkpoint_for(checkpoint_dir: str, fingerprint: str, name: str) -> None:
  """Keeps the cell's HMC checkpoints if the same config wrote them.

  The config's fingerprint is stored beside the checkpoints; a directory
  with another fingerprint (or none: written before fingerprints were
  stored) is removed, since its run.json would refuse the new config.
  """
  path = os.path.join(checkpoint_dir, _CHECKPOINT_FINGERPRINT)
  if os.path.isdir(checkpoint_dir):
    saved = None
    if os.path.exists(path):
      try:
        saved = files.read_json(path, "a grid cell's config")
      except files.InvalidFile as error:
        logging.warning('%s', error)
    if saved == {'config': fingerprint}:
      if hmc.has_checkpoint(checkpoint_dir):
        logging.info('Cell %s: resuming from its HMC checkpoints.', name)
      return
    logging.warning('Cell %s: its HMC checkpoints in %s come from another '
                    'config; starting the cell afresh.', name, checkpoint_dir)
    shutil.rmtree(checkpoint_dir)
  files.write_text_atomically(path, json.dumps({'config': fingerprint}))


def halfmoons_cell_resumable(config, hidden: int, num_train: int,
                             warmup: int, workdir: str):
  """`halfmoons_cell`, reusing a finished cell written by the same config.

  A finished cell is `<workdir>/cells/<name>.json`, holding the config's
  fingerprint and a SHA-256 of its contents; a missing, stale, edited or
  corrupted one is (re)computed. An unfinished cell resumes from its HMC
  checkpoints in `<workdir>/hmc/<name>` when the same config wrote them
  (their fingerprint is stored beside them); unreadable checkpoints are
  reported and the cell starts afresh. The returned row is the one read
  back from the file, so a resumed grid equals an uninterrupted one.

  Returns:
    `(row, cached)`, where `cached` says the row was read back from disk.
  """
  name = cell_name(hidden, num_train, warmup)
  path = os.path.join(workdir, 'cells', name + '.json')
  fingerprint = config.to_json(sort_keys=True)
  hparams = {'hidden': hidden, 'num_train': num_train, 'warmup': warmup}
  row = _read_cell(path, name, fingerprint, hparams)
  if row is not None:
    return row, True
  checkpoint_dir = os.path.join(workdir, 'hmc', name)
  log_dir = os.path.join(workdir, 'tensorboard', 'cells', name)
  _checkpoint_for(checkpoint_dir, fingerprint, name)
  try:
    row = halfmoons_cell(config, hidden, num_train, warmup,
                         workdir=checkpoint_dir, log_dir=log_dir)
  except files.InvalidFile as error:
    logging.warning('Cell %s: %s Starting the cell afresh.', name, error)
    shutil.rmtree(checkpoint_dir)
    _checkpoint_for(checkpoint_dir, fingerprint, name)
    row = halfmoons_cell(config, hidden, num_train, warmup,
                         workdir=checkpoint_dir, log_dir=log_dir)
  row['config'] = fingerprint
  # Through JSON, as a cached cell is read, so both give the same values.
  row = json.loads(json.dumps(row, default=float))
  reports.write_json(path, dict(row, **{_CELL_DIGEST: files.sha256_json(row)}))
  return row, False


def grid_table(rows):
  """The grid's rows as one table, columns in a fixed order.

  The hyperparameters first, then every other field in sorted order (the
  expected gradients and the config fingerprint left out), so a grid whose
  cells were read back writes the same CSV as one computed in one go.
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top
  records = [{k: v for k, v in r.items()
              if k not in ('components', 'config', _CELL_DIGEST)}
             for r in rows]
  others = sorted({k for r in records for k in r} - set(CELL_HPARAMS))
  return pd.DataFrame(records, columns=list(CELL_HPARAMS) + others)


def grid_summary(frame):
  """The columns of `grid_table` a reader compares cells by.

  The hyperparameters, whether the cell passed the accuracy filter, and
  `CELL_METRICS` (accuracy, expected gradient, mixing, time); the whole
  table keeps the other 20-odd diagnostics.
  """
  columns = list(CELL_HPARAMS) + ['kept'] + list(CELL_METRICS)
  return frame[[c for c in columns if c in frame]]


def halfmoons_cell(config, hidden: int, num_train: int, warmup: int,
                   workdir: Optional[str] = None,
                   log_dir: Optional[str] = None) -> Dict:
  """One cell of the Figure 1 grid: fit HMC, filter by accuracy, gradients.

  Args:
    config: the grid config (see `configs/halfmoons_grid.py`).
    hidden: width of each hidden layer.
    num_train: number of training points.
    warmup: HMC warm-up steps.
    workdir: where the cell's HMC checkpoints go (resumable).
    log_dir: optional TensorBoard run for the cell's HMC trace.

  Returns:
    A row with the hyperparameters, test accuracy, HMC diagnostics, wall
    time, gradient statistics and (if the model passes the accuracy filter)
    `components`, the expected gradients `[num_gradient_points, 2]`.
  """
  from tfp_robust import data as data_lib
  dataset = data_lib.half_moons(num_train, config.num_test, config.noise,
                                seed=config.seed)
  architecture = networks.Architecture.mlp(
      2, [hidden] * int(config.num_layers), 2, config.activation)
  section = config.hmc.to_dict()
  section['num_burnin_steps'] = warmup
  hmc_settings = hmc.HMCConfig(**section, seed=int(config.seed))
  start = time.time()
  ensemble, result = hmc.fit(architecture, dataset.x_train, dataset.y_train,
                             hmc_settings, checkpoint_dir=workdir,
                             log_dir=log_dir)
  row = {'hidden': hidden, 'num_train': num_train, 'warmup': warmup,
         'num_params': architecture.num_params(),
         'num_samples': ensemble.num_samples,
         'fit_seconds': time.time() - start}
  row.update(result.diagnostics)
  row['test_accuracy'] = ensemble.accuracy(dataset.x_test, dataset.y_test)
  row.update(mcmc_diagnostics.function_space_diagnostics(
      ensemble, hmc_settings.num_chains,
      dataset.x_test[:int(config.num_gradient_points)]))
  row['kept'] = row['test_accuracy'] > config.min_accuracy
  points = slice(0, int(config.num_gradient_points))
  x, y = dataset.x_test[points], dataset.y_test[points]
  row.update(evaluation.gradient_statistics(ensemble, x, y))
  if row['kept']:
    row['components'] = gradients.expected_gradients_by_num_samples(
        ensemble, x, y, [ensemble.num_samples])[ensemble.num_samples].tolist()
  return row


CELL_HPARAMS = ('hidden', 'num_train', 'warmup')
# What a finished cell must hold besides its hyperparameters.
_CELL_REQUIRED = ('test_accuracy', 'grad_mean_abs', 'fit_seconds', 'kept')
CELL_METRICS = ('test_accuracy', 'grad_mean_abs', 'acceptance_rate',
                'rhat_log_joint', 'fn_rhat_max', 'fn_ess_min', 'fit_seconds')


def write_cell_hparams(workdir: str, row: Dict) -> None:
  """One cell's hyperparameters and metrics for TensorBoard's HParams tab.

  Each cell is its own run under `<workdir>/tensorboard/hparams`, written
  afresh on every grid run (cached cells included), so nothing duplicates.
  """
  from tfp_robust.reports import summaries  # pylint: disable=g-import-not-at-top
  name = cell_name(row['hidden'], row['num_train'], row['warmup'])
  writer = summaries.open_writer(os.path.join(workdir, 'tensorboard',
                                              'hparams', name))
  summaries.hparams(writer, {k: row[k] for k in CELL_HPARAMS},
                    {f'cell/{k}': row[k] for k in CELL_METRICS if k in row})
  writer.close()
