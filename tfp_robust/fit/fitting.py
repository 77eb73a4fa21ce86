"""Fitting a posterior from a config: the `fit` step of the flow.

config -> data -> fit (sgd | ensemble | vi | hmc) -> a saved posterior
ensemble. Binaries read an `ml_collections` config and call these; every
number lives in the config.
"""

import dataclasses
import json
import os
import time
from typing import Optional

from absl import logging
import numpy as np

from tfp_robust import ensemble as ensemble_lib
from tfp_robust.core import config_checks
from tfp_robust.core import files
from tfp_robust.core import validate
from tfp_robust.fit import hmc
from tfp_robust.fit.mcmc import diagnostics as mcmc_diagnostics
from tfp_robust.fit import models
from tfp_robust import networks
from tfp_robust.fit import original as original_hmc
from tfp_robust.reports import summaries
from tfp_robust.fit import vi

METHODS = ('sgd', 'ensemble', 'vi', 'hmc', 'hmc_original')
# Evaluation views of a trained method: `vi_resampled` is the VI model
# resampling its weights on every call (each evaluation S fresh draws; the
# attacks average `eot_iter` of them per gradient), where `vi` is S draws
# fixed once. Both come from one training.
VIEWS = {'vi_resampled': 'vi'}

def architecture_from_config(config, input_shape, num_classes):
  """An `Architecture` from a config with `hidden` (list) and `activation`."""
  if 'layers' in config and config.layers:
    return networks.Architecture(tuple(input_shape), num_classes,
                                 tuple(dict(l) for l in config.layers),
                                 config.activation)
  flat = int(np.prod(input_shape))
  return networks.Architecture.mlp(flat, list(config.hidden), num_classes,
                                   config.activation)

def _train_config(section, seed):
  return models.TrainConfig(epochs=int(section.epochs),
                            batch_size=int(section.batch_size),
                            learning_rate=float(section.learning_rate),
                            seed=int(seed))


# Keys of a method's config section that describe the model or the start,
# not the sampler.

_MODEL_KEYS = frozenset(('hidden', 'activation', 'layers', 'init', 'init_sgd',
                         'num_train'))

def hmc_config(section, seed) -> hmc.HMCConfig:
  """An `HMCConfig` from a config section; unknown keys are refused."""
  fields = {f.name for f in dataclasses.fields(hmc.HMCConfig)}
  unknown = set(section.keys()) - fields - _MODEL_KEYS
  if unknown:
    raise ValueError(f'Unknown HMC settings {sorted(unknown)}; known: '
                     f'{sorted(fields)}.')
  values = {k: v for k, v in section.items() if k in fields}
  values['seed'] = int(seed)
  return hmc.HMCConfig(**values)

def fit(method: str, architecture, x, y, config, seed: int = 0,
        workdir: Optional[str] = None, log_dir: Optional[str] = None):
  """Fits a posterior of `method` and returns `(ensemble, info)`.

  Args:
    method: one of `METHODS`.
    architecture: the network description.
    x: training inputs in [0, 1].
    y: training labels.
    config: a ConfigDict with one section per method (`sgd`, `ensemble`,
      `vi`, `hmc`) holding its settings.
    seed: the seed of the fit.
    workdir: optional directory for HMC checkpoints.
    log_dir: optional TensorBoard run directory (see `summaries`).

  Returns:
    The `PosteriorEnsemble` and a dict of facts about the fit (wall time,
    ELBO trace, HMC diagnostics).
  """
  if method not in METHODS:
    raise ValueError(f'Unknown method {method!r}; choose one of {METHODS}.')
  start = time.time()
  info = {}
  if method == 'sgd':
    ensemble = models.train_deterministic(
        architecture, x, y, _train_config(config.sgd, seed), log_dir=log_dir)
  elif method == 'ensemble':
    ensemble = models.train_deep_ensemble(
        architecture, x, y, _train_config(config.sgd, seed),
        int(config.ensemble.num_members), log_dir=log_dir)
  elif method == 'vi':
    result = vi.train(architecture, x, y, _train_config(config.vi, seed),
                      log_dir=log_dir)
    ensemble = vi.posterior_ensemble(result, architecture,
                                     int(config.vi.num_samples), seed=seed)
    if workdir:
      vi.save_variational(result, architecture,
                          os.path.join(workdir, 'variational'), int(seed))
    info['elbo_per_example'] = result.elbo_per_example
  elif method == 'hmc_original':
    # The replay of the original code's posterior (see `original_hmc`).
    # `init` is a replay setting here (the chain's start), not a model key.
    section = {k: v for k, v in config.hmc_original.items()
               if k not in _MODEL_KEYS - {'init'}}
    ensemble, replay_info = original_hmc.fit(
        architecture, x, y,
        original_hmc.OriginalHMCConfig(**section, seed=int(seed)))
    info.update(replay_info)
  else:
    settings = hmc_config(config.hmc, seed)
    checkpoint_dir = (os.path.join(workdir, 'hmc_checkpoint')
                      if workdir else None)
    initial_state, init_description = None, 'he_normal'
    if config.hmc.get('init', 'prior') == 'sgd':
      init_description = json.dumps({'sgd': config.hmc.init_sgd.to_dict()},
                                    sort_keys=True)
      if not hmc.has_checkpoint(checkpoint_dir):
        # Chains start from independent SGD solutions, which shortens the
        # warm-up that a He-normal start needs to reach the typical set.
        initial_state = models.train_deep_ensemble(
            architecture, x, y, _train_config(config.hmc.init_sgd, seed),
            settings.num_chains).params
    ensemble, result = hmc.fit(architecture, x, y, settings,
                               checkpoint_dir=checkpoint_dir, log_dir=log_dir,
                               initial_state=initial_state,
                               init_description=init_description)
    info.update(result.diagnostics)
  info['fit_seconds'] = time.time() - start
  logging.info('Fitted %s: %s in %.1fs', method, ensemble, info['fit_seconds'])
  return ensemble, info


def method_section(config, method: str):
  """The config section holding `method`'s model (ensembles use `sgd`'s)."""
  method = VIEWS.get(method, method)
  return config.sgd if method == 'ensemble' else config[method]

def load_dataset_for(config, method: str):
  """The config's dataset, flat for dense nets and as images for conv nets."""
  from tfp_robust import data as data_lib
  section = method_section(config, method)
  is_conv = bool(section.get('layers', None))
  # A method may train on a subset (e.g. CPU-scale HMC); 0 means all.
  num_train = section.get('num_train', 0) or config.get('num_train') or None
  return data_lib.load_tfds(config.dataset, data_dir=config.get('data_dir') or
                            None, flat=not is_conv, num_train=num_train,
                            num_test=config.get('num_test') or None)

def hmc_section(section, path: str) -> None:
  """One HMC config section: every field (`config_checks.hmc_section`), then
  `HMCConfig.validate`'s cross-field rules, named `--config.<path>.<field>`.
  """
  config_checks.hmc_section(section, path)
  settings = {k: section[k] for k in config_checks.HMC_FIELDS if k in section}
  try:
    hmc.HMCConfig(**settings).validate()
  except validate.InvalidArgument as error:
    raise validate.InvalidArgument(
        str(error).replace('HMCConfig.', f'--config.{path}.')) from None


def check_config(config, methods=None):
  """Every field of `config` (`config_checks.check`, which needs no
  TensorFlow) and the rules the fit layer owns (`hmc_section`): what runs
  before anything trains. Returns the config."""
  config_checks.check(config, methods)
  if 'hmc' in config and 'datasets' not in config:
    hmc_section(config.hmc, 'hmc')
  return config


def ensemble_dir(workdir: str, dataset: str, method: str) -> str:
  return os.path.join(workdir, dataset, method, 'ensemble')

def train_and_save(config, method: str, workdir: str):
  """Fits `method` on the config's dataset and saves its posterior ensemble.

  Returns:
    `(ensemble, info)` where info holds fit facts and the test accuracy.
  """
  check_config(config, [method])
  dataset = load_dataset_for(config, method)
  architecture = architecture_from_config(
      method_section(config, method), dataset.input_shape,
      dataset.num_classes)
  log_dir = summaries.run_dir(workdir, config.dataset, method, 'fit')
  ensemble, info = fit(method, architecture, dataset.x_train, dataset.y_train,
                       config, seed=int(config.seed),
                       workdir=os.path.join(workdir, config.dataset, method),
                       log_dir=log_dir)
  info.update(fit_facts(method, ensemble, config, dataset.x_test,
                        dataset.y_test))
  info['num_train'] = int(len(dataset.x_train))
  write_fit_summaries(log_dir, method, ensemble, info)
  info['architecture'] = architecture.to_json()
  ensemble.save(ensemble_dir(workdir, config.dataset, method), extra=info)
  logging.info('%s on %s: test accuracy %.4f', method, config.dataset,
               info['test_accuracy'])
  return ensemble, info

def fit_facts(method: str, ensemble, config, x_test, y_test):
  """Test accuracy, and for HMC the function-space R-hat and ESS.

  Convergence is judged on the function (the predicted probabilities at the
  first `config.diagnostic_points` test points, default 100), which
  weight-space symmetries do not blur.
  """
  facts = {'test_accuracy': ensemble.accuracy(x_test, y_test,
                                              batch_size=1000)}
  if method == 'hmc':
    facts.update(mcmc_diagnostics.function_space_diagnostics(
        ensemble, int(config.hmc.num_chains),
        x_test[:int(config.get('diagnostic_points', 100))]))
  return facts


def write_fit_summaries(log_dir: str, method: str, ensemble, info) -> None:
  """The fit's facts as `fit/<name>` scalars, and posterior histograms.

  HMC's own diagnostics are already under `hmc/diagnostics/`; the
  function-space ones are added there. Methods whose training writes no
  events of its own (the replayed original HMC) start the run afresh.
  """
  writer = summaries.open_writer(log_dir, fresh=method == 'hmc_original')
  numbers = {k: v for k, v in info.items() if not k.startswith('fn_')}
  summaries.scalars(writer, numbers, 0, prefix='fit/')
  summaries.scalars(writer, {k: v for k, v in info.items()
                             if k.startswith('fn_')}, 0,
                    prefix='hmc/diagnostics/')
  summaries.posterior_histograms(writer, ensemble)
  writer.close()


def load_trained(config, method: str, workdir: str):
  """The saved posterior ensemble of `method`, with its fit facts."""
  if method in VIEWS:
    return _load_view(config, method, workdir)
  path = _saved_dir(config, method, workdir)
  ensemble = ensemble_lib.PosteriorEnsemble.load(
      path, memory_budget_bytes=int(config.get('memory_budget_bytes',
                                               ensemble_lib.DEFAULT_MEMORY_BUDGET_BYTES)))
  return ensemble, getattr(ensemble, 'extra', {})

def _saved_dir(config, method: str, workdir: str) -> str:
  """The saved ensemble's readable directory; a clear error if none."""
  path = ensemble_dir(workdir, config.dataset, method)
  readable = files.readable_directory(path)
  if readable is None:
    raise FileNotFoundError(
        f'No trained {method} ensemble for {config.dataset} in {path!r}; run '
        f'binaries/train.py --method={method} with the same --config and '
        '--workdir first.')
  return readable


def saved_fingerprint(config, method: str, workdir: str) -> str:
  """SHA-256 of what `load_trained(config, method, workdir)` evaluates: the
  saved ensemble's architecture, method, sample count and weight files'
  digests and, for an evaluation view, the variational model's description.

  It changes whenever the weights change, and only then: the description's
  fit facts (wall times among them) and code version are left out, so an
  ensemble retrained bit for bit from the same seed (after a machine change,
  or with its checkpoint deleted to save disk) keeps its saved rows.
  """
  base = VIEWS.get(method, method)
  parts = [ensemble_lib.weights_fingerprint(
      _saved_dir(config, base, workdir))]
  if method in VIEWS:
    # Missing, it is `load_trained`'s error to report.
    variational = os.path.join(workdir, config.dataset, base, 'variational',
                               vi.VARIATIONAL_FILE)
    parts.append(files.sha256_file(variational)
                 if os.path.exists(variational) else None)
  return files.sha256_json(parts)


def ensure_trained(config, methods, workdir: str) -> None:
  """Trains (and saves) each method that has no saved ensemble yet.

  The whole config is checked first, so a bad field of a later method fails
  before an earlier one trains.
  """
  check_config(config, methods)
  for method in dict.fromkeys(VIEWS.get(m, m) for m in methods):
    path = ensemble_dir(workdir, config.dataset, method)
    if files.readable_directory(path) is None:
      logging.info('No saved %s ensemble in %s: training it.', method, path)
      train_and_save(config, method, workdir)


def _load_view(config, method: str, workdir: str):
  """An evaluation view (see `VIEWS`) of a trained method."""
  from tfp_robust.ensemble import stochastic  # pylint: disable=g-import-not-at-top
  base, extra = load_trained(config, VIEWS[method], workdir)
  model = vi.load_variational(
      os.path.join(workdir, config.dataset, VIEWS[method], 'variational'),
      base.architecture)
  ensemble = stochastic.StochasticEnsemble(
      model, int(config.vi.num_samples), seed=int(config.seed), method=method,
      memory_budget_bytes=base.memory_budget_bytes)
  # The fixed draws' test accuracy is not this view's.
  return ensemble, {k: v for k, v in extra.items() if k != 'test_accuracy'}
