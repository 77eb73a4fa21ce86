"""One unit of the grid: train once, evaluate each cell, write atomically.

A unit is idempotent: each of its cells goes to
`<workdir>/cells/<cell name>.json` (written through a temporary file and a
rename) with a digest of the settings that produced it; a unit whose cells
all exist with the right digest is skipped, and a killed unit runs again
(HMC from its checkpoints, in `<workdir>/units/<unit name>/hmc`).
"""

import hashlib
import json
import math
import os
import time
from typing import Dict, List, Optional

from absl import logging
import numpy as np

from tfp_robust.core import config_lib
from tfp_robust import data as data_lib
from tfp_robust.core import files
from tfp_robust.fit import hmc
from tfp_robust.fit.mcmc import diagnostics as mcmc_diagnostics
from tfp_robust.fit import models
from tfp_robust import networks
from tfp_robust.evaluation import protocols
from tfp_robust.fit import vi
from tfp_robust.experiments.grid import cells as cells_lib


def architecture(params: Dict, input_shape, num_classes):
  return networks.Architecture.mlp(
      int(np.prod(input_shape)), [int(params['hidden'])] * int(params['depth']),
      num_classes, params['activation'])


def digest(grid_config, cell: cells_lib.Cell) -> str:
  """What produced a cell's numbers: the shared settings and its values."""
  shared = {k: (v.to_dict() if hasattr(v, 'to_dict') else v)
            for k, v in grid_config.items()
            if k in ('seed', 'num_train', 'num_test', 'attack', 'training',
                     'protocols', 'data_dir')}
  shared = config_lib.digest_view(shared)  # Older cells keep their digest.
  text = json.dumps([shared, cell.method, cell.dataset, list(cell.values)],
                    sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()


def cell_path(workdir: str, cell: cells_lib.Cell) -> str:
  return os.path.join(workdir, 'cells', cell.name + '.json')


def read_cell(workdir: str, grid_config, cell: cells_lib.Cell
              ) -> Optional[Dict]:
  """A finished cell's row, or None (missing, unreadable or stale)."""
  return files.read_finished(cell_path(workdir, cell), 'a finished grid cell',
                             digest(grid_config, cell), 'it runs again')


def is_done(workdir: str, grid_config, unit: cells_lib.Unit) -> bool:
  return all(read_cell(workdir, grid_config, c) is not None
             for c in unit.cells)


def _dataset(grid_config, dataset: str):
  return data_lib.load_tfds(
      dataset, data_dir=grid_config.get('data_dir') or None,
      num_train=int(grid_config.num_train) or None,
      num_test=int(grid_config.num_test) or None)


def _train(unit: cells_lib.Unit, grid_config, dataset, workdir: str
           ) -> Dict[object, object]:
  """The unit's one training: prefix value -> posterior ensemble."""
  params = dict(unit.shared)
  arch = architecture(params, dataset.input_shape, dataset.num_classes)
  seed = int(grid_config.seed)
  training = grid_config.training
  wanted = unit.prefix_values
  if unit.method == 'sgd':
    config = models.TrainConfig(epochs=max(wanted),
                                batch_size=int(params['batch_size']),
                                learning_rate=float(params['learning_rate']),
                                seed=seed)
    return models.train_deterministic_at_epochs(
        arch, dataset.x_train, dataset.y_train, config, wanted)
  if unit.method == 'vi':
    config = models.TrainConfig(epochs=max(wanted),
                                batch_size=int(training.vi_batch_size),
                                learning_rate=float(params['learning_rate']),
                                seed=seed)
    return vi.train_at_epochs(arch, dataset.x_train, dataset.y_train, config,
                              wanted, int(training.vi_num_samples), seed=seed)
  # HMC with the step size held fixed, as the grid's step-size axis means:
  # `burn_in` iterations per chain are run and dropped, then the longest
  # chain asked for; shorter cells take its first samples.
  chains = int(training.hmc_num_chains)
  burn_in = int(training.hmc_burn_in)
  per_chain = {n: -(-int(n) // chains) for n in wanted}
  segment = math.gcd(burn_in, *per_chain.values()) if burn_in else math.gcd(
      *per_chain.values())
  config = hmc.HMCConfig(
      num_results=burn_in + max(per_chain.values()), num_burnin_steps=0,
      num_leapfrog_steps=int(params['num_leapfrog_steps']),
      step_size=float(params['step_size']), num_chains=chains,
      prior_scale=float(training.hmc_prior_scale), seed=seed,
      segment_size=segment)
  ensemble, result = hmc.fit(
      arch, dataset.x_train, dataset.y_train, config,
      checkpoint_dir=os.path.join(workdir, 'units', unit.name, 'hmc'),
      init=training.get('hmc_init', 'he_normal'))
  ensembles = {}
  for n, steps in per_chain.items():
    ensembles[n] = ensemble.subset(list(range(burn_in * chains,
                                              (burn_in + steps) * chains)))
    ensembles[n].diagnostics = mcmc_diagnostics.diagnostics(
        [s[burn_in:burn_in + steps] for s in result.samples],
        result.log_prob[burn_in:burn_in + steps],
        result.is_accepted[burn_in:burn_in + steps])
  return ensembles


def _row(cell: cells_lib.Cell, ensemble, dataset, grid_config) -> Dict:
  attack = grid_config.attack
  x = dataset.x_test[:int(attack.num_points)]
  y = dataset.y_test[:int(attack.num_points)]
  if ensemble.num_samples > int(attack.num_samples):
    chains = (int(grid_config.training.hmc_num_chains)
              if cell.method == 'hmc' else 1)
    ensemble = ensemble.evenly_spaced(int(attack.num_samples), chains)
  start = time.time()
  rows = []
  for protocol in grid_config.get('protocols', ('paper',)):
    settings = attack.copy_and_resolve_references()
    settings.protocol = protocol
    rows += protocols.evaluate(ensemble, x, y, settings,
                               seed=int(grid_config.seed), certified=False)
  row = {'method': cell.method, 'dataset': cell.dataset, **cell.params,
         'num_evaluated_samples': ensemble.num_samples,
         'clean_accuracy': float(rows[0]['clean_accuracy']),
         'attack_seconds': time.time() - start}
  failed = set()
  for r in rows:
    key = (f"{r['protocol']}_{r['attack']}_{r['loss']}"
           f"{'' if len(attack.eps) == 1 else '@%g' % r['eps']}")
    row[key + '_acc'] = float(r['adversarial_accuracy'])
    row[key + '_softmax_robustness'] = float(r['softmax_robustness'])
    failed.update(c for c in str(r.get('checks_failed') or '').split(',')
                  if c)
  row['checks_failed'] = ','.join(sorted(failed))
  return row


def run_unit(unit: cells_lib.Unit, grid_config, workdir: str) -> List[str]:
  """Trains the unit (unless all its cells are done) and writes each cell.

  Returns:
    The paths of the unit's cell files.
  """
  paths = [cell_path(workdir, c) for c in unit.cells]
  if is_done(workdir, grid_config, unit):
    return paths
  dataset = _dataset(grid_config, unit.dataset)
  start = time.time()
  ensembles = _train(unit, grid_config, dataset, workdir)
  train_seconds = time.time() - start
  axis = cells_lib.PREFIX_AXIS[unit.method]
  for cell, path in zip(unit.cells, paths):
    ensemble = ensembles[cell.params[axis]]
    # The HMC diagnostics of the cell's own prefix travel with it.
    diagnostics = getattr(ensemble, 'diagnostics', None)
    row = _row(cell, ensemble, dataset, grid_config)
    if diagnostics:
      row.update({f'hmc_{k}': v for k, v in diagnostics.items()})
    row['unit'] = unit.name
    row['unit_train_seconds'] = train_seconds
    row['digest'] = digest(grid_config, cell)
    files.write_text_atomically(path, json.dumps(row, sort_keys=True,
                                                 default=float))
  logging.info('Grid unit %s: %d cells in %.1fs', unit.name, len(unit.cells),
               time.time() - start)
  return paths
