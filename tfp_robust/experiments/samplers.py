"""Which sampler mixes? Each variant fitted on one target, and measured.

A target is a dataset and a network (half moons as in Figure 1, MNIST as in
Table 1 at CPU scale); a variant is a set of `HMCConfig` sampler settings
(`mcmc.kernels`) and a chain start (`init`: SGD solutions or the He-normal
prior draw). Every variant of a target runs the same number of warm-up and
kept iterations with the same number of chains; what differs is the cost of
an iteration, so mixing is reported per hour of wall time as well as in
total. Each variant also gets the robustness measures of Theorem 1 (issue
11, item 3): adversarial accuracy of the predictive under PGD and the mean
magnitude of the expected loss gradient, so mixing and robustness sit in one
row. A finished variant's row is written atomically and skipped when the
comparison runs again; a killed variant resumes inside HMC from its
checkpoints.
"""

import json
import os
import time
from typing import Dict, List

from absl import logging
import ml_collections
import numpy as np
import pandas as pd

from tfp_robust.attacks import gradient as attacks
from tfp_robust import data as data_lib
from tfp_robust.evaluation import rows as evaluation
from tfp_robust.core import config_checks
from tfp_robust.core import files
from tfp_robust.fit import fitting
from tfp_robust.reports import summaries
from tfp_robust.fit.mcmc import kernels

# The fields a variant may set (the rest is the target's).
_SAMPLER_FIELDS = config_checks.SAMPLER_FIELDS


def load_target(target) -> data_lib.Dataset:
  """The dataset of a target section (`dataset`: half_moons or a TFDS name)."""
  if target.dataset == 'half_moons':
    return data_lib.half_moons(int(target.num_train), int(target.num_test),
                               noise=float(target.noise),
                               seed=int(target.data_seed))
  return data_lib.load_tfds(target.dataset, num_train=int(target.num_train)
                            or None, num_test=int(target.num_test) or None)


def variant_config(config, target_name: str, variant_name: str):
  """The fitting config (one `hmc` section) of a variant on a target."""
  target = config.targets[target_name]
  overrides = dict(config.variants[variant_name])
  unknown = set(overrides) - set(_SAMPLER_FIELDS)
  if unknown:
    raise ValueError(f'Variant {variant_name!r} sets {sorted(unknown)}, which '
                     f'are not sampler settings; known: {_SAMPLER_FIELDS}.')
  # An unlocked copy: config flags lock theirs, and variants add fields.
  fit_config = ml_collections.ConfigDict(target.fit.to_dict())
  fit_config.hmc.update(overrides)
  fit_config.diagnostic_points = int(config.diagnostic_points)
  return fit_config


def run_variant(config, target_name: str, variant_name: str, workdir: str,
                dataset=None) -> Dict:
  """Fits and measures one variant; returns its row (read back if done)."""
  directory = os.path.join(workdir, target_name, variant_name)
  row_path = os.path.join(directory, 'row.json')
  fit_config = variant_config(config, target_name, variant_name)
  settings_json = json.loads(json.dumps(dict(
      fit=fit_config.to_dict(), target={
          k: v for k, v in config.targets[target_name].items()
          if k not in ('fit', 'variants')},
      attack_points=int(config.attack_points),
      pgd_steps=int(config.pgd_steps), seed=int(config.seed),
      **_strong_settings(config)), default=list))
  if os.path.exists(row_path):
    row = files.read_json(row_path, 'a sampler-comparison row')
    if not isinstance(row, dict) or 'fn_rhat_max' not in row:
      files.invalid(row_path, 'it is not a sampler-comparison row',
                    'Delete the variant\'s directory to measure it again.')
    if 'settings' not in row:
      # Written before rows recorded their settings: nothing to compare.
      logging.warning('%s records no settings; read back unchecked.',
                      row_path)
    elif row['settings'] != settings_json:
      files.invalid(row_path, 'it was measured with other settings than the '
                    f'config now gives {target_name}/{variant_name}',
                    'Use another --workdir, or delete the variant\'s '
                    'directory to measure it again.')
    logging.info('%s/%s: done before, read back.', target_name, variant_name)
    return row
  dataset = dataset or load_target(config.targets[target_name])
  architecture = fitting.architecture_from_config(
      fit_config.hmc, dataset.input_shape, dataset.num_classes)
  settings = fitting.hmc_config(fit_config.hmc, int(config.seed))
  logging.info('%s/%s: %s, %d chains from %s, %d warm-up + %d kept',
               target_name, variant_name, kernels.describe(settings),
               settings.num_chains, fit_config.hmc.get('init', 'prior'),
               settings.num_burnin_steps, settings.num_results)
  start = time.time()
  ensemble, info = fitting.fit(
      'hmc', architecture, dataset.x_train, dataset.y_train, fit_config,
      seed=int(config.seed), workdir=directory,
      log_dir=summaries.run_dir(workdir, target_name, variant_name, 'fit'))
  facts = fitting.fit_facts('hmc', ensemble, fit_config, dataset.x_test,
                            dataset.y_test)
  count = int(config.attack_points)
  x, y = dataset.x_test[:count], dataset.y_test[:count]
  eps = float(config.targets[target_name].eps)
  x_adv = attacks.pgd(ensemble, x, y, eps, num_steps=int(config.pgd_steps),
                      loss='predictive', seed=int(config.seed))
  gradient = evaluation.gradient_statistics(ensemble, x, y)
  # The sampler's measured time, warm-up and kept segments, summed over
  # every process that ran a part (the driver saves each phase's time with
  # its checkpoint; each process's tracing and compilation included, as a
  # user pays them); estimated from the per-step rate if a phase's time was
  # lost (runs from before timings were saved). `wall_seconds` is this
  # process's whole time, evaluation included.
  seconds = info.get('sampler_seconds', float('nan'))
  measured = bool(np.isfinite(seconds))
  if not measured:
    seconds = (info.get('seconds_per_leapfrog_step', float('nan')) *
               info.get('leapfrog_steps_per_iteration', float('nan')) *
               (settings.num_burnin_steps + settings.num_results *
                settings.thinning))
  hours = seconds / 3600.0
  row = {
      'target': target_name, 'variant': variant_name,
      'sampler': kernels.describe(settings),
      'init': fit_config.hmc.get('init', 'prior'),
      'chains': settings.num_chains,
      'warm_up': settings.num_burnin_steps, 'kept': settings.num_results,
      'step_size': info['step_size'],
      'leapfrogs_per_iteration': info['leapfrog_steps_per_iteration'],
      'acceptance': info['acceptance_rate'],
      'sampler_seconds': seconds,
      'sampler_seconds_measured': measured,
      'wall_seconds': time.time() - start,
      'test_accuracy': facts['test_accuracy'],
      'fn_rhat_max': facts.get('fn_rhat_max', float('nan')),
      'fn_rhat_median': facts.get('fn_rhat_median', float('nan')),
      'fn_split_rhat_max': facts.get('fn_split_rhat_max', float('nan')),
      'fn_ess_min': facts.get('fn_ess_min', float('nan')),
      'fn_ess_median': facts.get('fn_ess_median', float('nan')),
      'fn_ess_min_per_hour': facts.get('fn_ess_min', float('nan')) / hours,
      'rhat_log_joint': info.get('rhat_log_joint', float('nan')),
      'ess_log_joint': info['ess_log_joint'],
      'pgd_eps': eps,
      'pgd_predictive_acc': float(ensemble.accuracy(x_adv, y)),
      'clean_acc_attack_points': float(ensemble.accuracy(x, y)),
      'mean_abs_expected_grad': gradient['grad_mean_abs'],
      'settings': settings_json,
  }
  if config.get('strong'):
    # On `strong_attack.num_samples` of the kept samples, every chain
    # thinned alike (the strong protocol on all 4,000 costs hours a variant).
    strong_samples = min(int(config.strong_attack.num_samples),
                         ensemble.num_samples)
    row['strong_samples'] = strong_samples
    row.update(strong_columns(
        ensemble.evenly_spaced(strong_samples, settings.num_chains), x, y,
        eps, config.strong_attack, int(config.seed)))
  row = json.loads(json.dumps(row, default=float))
  files.write_text_atomically(row_path, json.dumps(row, indent=2))
  logging.info('%s/%s: fn R-hat max %.3f, fn ESS min %.1f (%.1f per hour), '
               'accuracy %.3f, PGD %.3f', target_name, variant_name,
               row['fn_rhat_max'], row['fn_ess_min'],
               row['fn_ess_min_per_hour'], row['test_accuracy'],
               row['pgd_predictive_acc'])
  return row


def _strong_settings(config) -> Dict:
  """The strong protocol's settings, in a row's settings only when on (so
  rows measured without it still read back under a config without it)."""
  if not config.get('strong'):
    return {}
  return {'strong': config.strong_attack.to_dict()}


def strong_columns(ensemble, x, y, eps: float, attack, seed: int) -> Dict:
  """The strong protocol (`protocols.evaluate`: APGD-CE and -DLR, Square,
  transfer, the per-image worst case, certified) on one variant's posterior
  at `eps`: its accuracies as `strong_<attack>_acc` columns."""
  from tfp_robust.evaluation import protocols  # pylint: disable=g-import-not-at-top
  section = dict(attack.to_dict() if hasattr(attack, 'to_dict') else attack,
                 protocol='strong', eps=(eps,))
  columns = {}
  for row in protocols.evaluate(ensemble, x, y, section, seed=seed):
    name = row['attack'] if row['loss'] in ('all', 'ibp', 'margin') else (
        f"{row['attack']}_{row['loss']}")
    columns[f'strong_{name}_acc'] = row['adversarial_accuracy']
  return columns


def run(config, workdir: str, targets=None) -> pd.DataFrame:
  """Every variant of every target (in config order); returns the table."""
  rows: List[Dict] = []
  for target_name in targets or config.target_order:
    dataset = None
    for variant_name in config.targets[target_name].variants:
      done = os.path.exists(os.path.join(workdir, target_name, variant_name,
                                         'row.json'))
      if dataset is None and not done:
        dataset = load_target(config.targets[target_name])
      rows.append(run_variant(config, target_name, variant_name, workdir,
                              dataset))
  return pd.DataFrame(rows).drop(columns=['settings'], errors='ignore')


def mixed(frame: pd.DataFrame, rhat_bound: float,
          min_ess: float) -> pd.Series:
  """Rows whose chains meet the target: fn R-hat < bound, fn ESS >= min."""
  return (frame['fn_rhat_max'] < rhat_bound) & (frame['fn_ess_min'] >= min_ess)


def check(config, targets=None) -> List[str]:
  """Every variant's settings, checked before anything runs; the targets.

  The fields (`config_checks.sampler_comparison`, which the binary runs
  before TensorFlow loads), then each variant's sampler as HMC builds it.
  """
  from tfp_robust.core import config_checks  # pylint: disable=g-import-not-at-top
  from tfp_robust.core import validate  # pylint: disable=g-import-not-at-top
  names = config_checks.sampler_comparison(config, targets)
  for name in names:
    for variant_name in config.targets[name].variants:
      section = variant_config(config, name, variant_name).hmc
      try:
        fitting.hmc_config(section, int(config.seed)).validate()
      except validate.InvalidArgument as error:
        raise validate.InvalidArgument(
            f'variant {variant_name!r} of target {name!r}: {error}') from None
  return names
