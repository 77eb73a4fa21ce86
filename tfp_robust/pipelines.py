"""Experiment steps shared by the binaries: fit by method, attack, tabulate.

Binaries read an `ml_collections` config and call these; every number lives
in the config. Results are plain dict rows that pandas turns into tables.
"""

import dataclasses
import json
import os
import time
from typing import Dict, List, Optional

from absl import logging
import numpy as np

from tfp_robust import attacks
from tfp_robust import ensemble as ensemble_lib
from tfp_robust import files
from tfp_robust import gradients
from tfp_robust import hmc
from tfp_robust import metrics
from tfp_robust import models
from tfp_robust import networks
from tfp_robust import vi

METHODS = ('sgd', 'ensemble', 'vi', 'hmc')
ATTACKS = ('random', 'fgsm', 'pgd', 'strong')


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
        workdir: Optional[str] = None):
  """Fits a posterior of `method` and returns `(ensemble, info)`.

  Args:
    method: one of `METHODS`.
    architecture: the network description.
    x: training inputs in [0, 1].
    y: training labels.
    config: a ConfigDict with one section per method (`sgd`, `ensemble`,
      `vi`, `hmc`) holding its settings.
    seed: the seed of the fit.
    workdir: optional directory for TensorBoard logs and HMC checkpoints.

  Returns:
    The `PosteriorEnsemble` and a dict of facts about the fit (wall time,
    ELBO trace, HMC diagnostics).
  """
  if method not in METHODS:
    raise ValueError(f'Unknown method {method!r}; choose one of {METHODS}.')
  log_dir = os.path.join(workdir, 'tensorboard', method) if workdir else None
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
    info['elbo_per_example'] = result.elbo_per_example
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


def run_attack(name: str, ensemble, x, y, eps: float, loss: str,
               config, seed: int):
  """Adversarial inputs of attack `name` (one of `ATTACKS`)."""
  if name == 'random':
    return attacks.random_sign(x, eps, seed=seed)
  if name == 'fgsm':
    return attacks.fgsm(ensemble, x, y, eps, loss=loss)
  if name == 'pgd':
    return attacks.pgd(ensemble, x, y, eps, num_steps=int(config.pgd_steps),
                       step_size=config.get('pgd_step_size', None),
                       restarts=int(config.pgd_restarts), loss=loss, seed=seed)
  if name == 'strong':
    return attacks.strong_attack(ensemble, x, y, eps,
                                 num_steps=int(config.strong_steps),
                                 restarts=int(config.strong_restarts),
                                 seed=seed)
  raise ValueError(f'Unknown attack {name!r}; choose one of {ATTACKS}.')


def attack_rows(ensemble, x, y, config, seed: int = 0,
                labels: Optional[Dict] = None) -> List[Dict]:
  """One row per (attack, loss, eps), all evaluated on the same samples.

  Args:
    ensemble: the posterior ensemble (attacked and evaluated as is).
    x: test inputs.
    y: test labels.
    config: a ConfigDict with `attacks`, `losses`, `eps` (a list) and the PGD
      settings `pgd_steps`, `pgd_restarts` (and `strong_*` for 'strong').
    seed: seed of the random attack and PGD starts.
    labels: extra columns for every row (e.g. method, dataset).

  Returns:
    A list of dict rows.
  """
  rows = []
  clean_log_probs = ensemble.log_probs(x)
  for eps in config.eps:
    for name in config.attacks:
      # Random noise and the strong protocol do not follow one named loss.
      loss_names = ['none'] if name in ('random', 'strong') else config.losses
      for loss in loss_names:
        start = time.time()
        x_adv = run_attack(name, ensemble, x, y, eps, loss, config, seed)
        row = dict(labels or {})
        row.update(attack=name, loss=loss, eps=float(eps),
                   num_samples=ensemble.num_samples, num_points=len(x))
        row.update(metrics.robustness(ensemble, x, y, x_adv, clean_log_probs))
        row['attack_seconds'] = time.time() - start
        logging.info('%s', row)
        rows.append(row)
  return rows


def gradient_statistics(ensemble, x, y) -> Dict[str, float]:
  """Magnitude of the expected loss gradient over all samples, per component."""
  grads = gradients.expected_gradients_by_num_samples(
      ensemble, x, y, [ensemble.num_samples])[ensemble.num_samples]
  magnitude = np.abs(grads)
  return {
      'grad_mean_abs': float(magnitude.mean()),
      'grad_median_abs': float(np.median(magnitude)),
      'grad_max_abs': float(magnitude.max()),
      'grad_frac_zero': float(np.mean(magnitude == 0.0)),
  }


def write_json(path: str, value) -> None:
  """Writes JSON atomically (temporary file, then rename)."""
  files.write_text_atomically(
      path, json.dumps(value, indent=2, sort_keys=True, default=float))


def write_table(frame, path_without_suffix: str) -> None:
  """Writes a pandas frame as CSV and Markdown, atomically."""
  files.write_text_atomically(path_without_suffix + '.csv',
                              frame.to_csv(index=False))
  files.write_text_atomically(path_without_suffix + '.md', _markdown(frame))


def _markdown(frame) -> str:
  """A Markdown table without the optional `tabulate` dependency."""
  def cell(value):
    if isinstance(value, float):
      return f'{value:.4g}'
    return str(value)
  header = '| ' + ' | '.join(map(str, frame.columns)) + ' |'
  rule = '|' + '---|' * len(frame.columns)
  body = ['| ' + ' | '.join(cell(v) for v in row) + ' |'
          for row in frame.itertuples(index=False)]
  return '\n'.join([header, rule] + body) + '\n'


def save_figure(figure, path: str) -> None:
  """Saves a matplotlib figure atomically as PNG."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  staging = os.path.join(directory, '.tmp-' + os.path.basename(path))
  figure.savefig(staging, dpi=120, bbox_inches='tight', format='png')
  os.replace(staging, path)


def summary_table(rows: List[Dict], fit_info: Optional[Dict[str, Dict]] = None):
  """One row per method: clean accuracy, attacked accuracy per attack/loss.

  Args:
    rows: rows of `attack_rows`, with a `method` column.
    fit_info: optional method -> dict with `grad_mean_abs`.

  Returns:
    A pandas DataFrame.
  """
  import pandas as pd  # Heavy import, needed only for tables.
  frame = pd.DataFrame(rows)
  table = []
  for method, group in frame.groupby('method', sort=False):
    entry = {'method': method,
             'samples': int(group['num_samples'].iloc[0]),
             'clean_acc': float(group['clean_accuracy'].iloc[0])}
    for row in group.itertuples(index=False):
      key = f'{row.attack}_{row.loss}_acc' if row.loss != 'none' else f'{row.attack}_acc'
      if len(frame['eps'].unique()) > 1:
        key += f'@{row.eps:g}'
      entry[key] = float(row.adversarial_accuracy)
    if fit_info and 'grad_mean_abs' in fit_info.get(method, {}):
      entry['mean_abs_expected_grad'] = fit_info[method]['grad_mean_abs']
    table.append(entry)
  return pd.DataFrame(table)


def halfmoons_cell_resumable(config, hidden: int, num_train: int,
                             warmup: int, workdir: str):
  """`halfmoons_cell`, reusing a finished cell written by the same config.

  Returns:
    `(row, cached)`, where `cached` says the row was read back from disk.
  """
  name = f'hidden{hidden}_train{num_train}_warmup{warmup}'
  path = os.path.join(workdir, 'cells', name + '.json')
  fingerprint = config.to_json(sort_keys=True)
  if os.path.exists(path):
    with open(path) as f:
      row = json.load(f)
    if row.get('config') == fingerprint:
      return row, True
    logging.warning('Cell %s was computed with another config; recomputing.',
                    name)
  checkpoint_dir = os.path.join(workdir, 'hmc', name)
  if os.path.exists(checkpoint_dir):
    import shutil
    shutil.rmtree(checkpoint_dir)  # Its run.json would refuse the new config.
  row = halfmoons_cell(config, hidden, num_train, warmup, workdir=checkpoint_dir)
  row['config'] = fingerprint
  write_json(path, row)
  return row, False


def halfmoons_cell(config, hidden: int, num_train: int, warmup: int,
                   workdir: Optional[str] = None) -> Dict:
  """One cell of the Figure 1 grid: fit HMC, filter by accuracy, gradients.

  Args:
    config: the grid config (see `configs/halfmoons_grid.py`).
    hidden: width of each hidden layer.
    num_train: number of training points.
    warmup: HMC warm-up steps.
    workdir: where the cell's HMC checkpoints go (resumable).

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
                             hmc_settings, checkpoint_dir=workdir)
  row = {'hidden': hidden, 'num_train': num_train, 'warmup': warmup,
         'num_params': architecture.num_params(),
         'num_samples': ensemble.num_samples,
         'fit_seconds': time.time() - start}
  row.update(result.diagnostics)
  row['test_accuracy'] = ensemble.accuracy(dataset.x_test, dataset.y_test)
  row.update(hmc.function_space_diagnostics(
      ensemble, hmc_settings.num_chains,
      dataset.x_test[:int(config.num_gradient_points)]))
  row['kept'] = row['test_accuracy'] > config.min_accuracy
  points = slice(0, int(config.num_gradient_points))
  x, y = dataset.x_test[points], dataset.y_test[points]
  row.update(gradient_statistics(ensemble, x, y))
  if row['kept']:
    row['components'] = gradients.expected_gradients_by_num_samples(
        ensemble, x, y, [ensemble.num_samples])[ensemble.num_samples].tolist()
  return row


def method_section(config, method: str):
  """The config section holding `method`'s model (ensembles use `sgd`'s)."""
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


def ensemble_dir(workdir: str, dataset: str, method: str) -> str:
  return os.path.join(workdir, dataset, method, 'ensemble')


def train_and_save(config, method: str, workdir: str):
  """Fits `method` on the config's dataset and saves its posterior ensemble.

  Returns:
    `(ensemble, info)` where info holds fit facts and the test accuracy.
  """
  dataset = load_dataset_for(config, method)
  architecture = architecture_from_config(
      method_section(config, method), dataset.input_shape,
      dataset.num_classes)
  ensemble, info = fit(method, architecture, dataset.x_train, dataset.y_train,
                       config, seed=int(config.seed),
                       workdir=os.path.join(workdir, config.dataset, method))
  info['test_accuracy'] = accuracy_in_batches(ensemble, dataset.x_test,
                                              dataset.y_test)
  info['num_train'] = int(len(dataset.x_train))
  info['architecture'] = architecture.to_json()
  ensemble.save(ensemble_dir(workdir, config.dataset, method), extra=info)
  logging.info('%s on %s: test accuracy %.4f', method, config.dataset,
               info['test_accuracy'])
  return ensemble, info


def accuracy_in_batches(ensemble, x, y, batch_size: int = 1000) -> float:
  """Predictive accuracy over a large test set, a batch at a time."""
  correct = 0
  for start in range(0, len(x), batch_size):
    predicted = ensemble.predict(x[start:start + batch_size]).numpy()
    correct += int(np.sum(predicted == y[start:start + batch_size]))
  return correct / max(1, len(x))


def load_trained(config, method: str, workdir: str):
  """The saved posterior ensemble of `method`, with its fit facts."""
  path = ensemble_dir(workdir, config.dataset, method)
  if not (os.path.exists(path) or os.path.exists(path + '.old')):
    raise FileNotFoundError(
        f'No trained {method} ensemble for {config.dataset} in {path!r}; run '
        f'binaries/train.py --method={method} with the same --config and '
        '--workdir first.')
  ensemble = ensemble_lib.PosteriorEnsemble.load(
      path, memory_budget_bytes=int(config.get('memory_budget_bytes',
                                               ensemble_lib.DEFAULT_MEMORY_BUDGET_BYTES)))
  return ensemble, getattr(ensemble, 'extra', {})


def expected_gradient_table(ensemble, x, y, num_samples, batch_size=250):
  """Expected gradients for several n over many inputs, in input batches.

  Returns:
    dict n -> `[B, *input_shape]` array of E_{first n}[grad_x L].
  """
  parts = {n: [] for n in num_samples}
  for start in range(0, len(x), batch_size):
    result = gradients.expected_gradients_by_num_samples(
        ensemble, x[start:start + batch_size], y[start:start + batch_size],
        num_samples)
    for n in num_samples:
      parts[n].append(result[n])
  return {n: np.concatenate(parts[n], 0) for n in num_samples}


def _attack_inputs(config, method, workdir, num_points):
  """A saved ensemble cut to the attack's samples, and its test points."""
  ensemble, extra = load_trained(config, method, workdir)
  ensemble = ensemble.evenly_spaced(min(int(config.attack.num_samples),
                                        ensemble.num_samples))
  dataset = load_dataset_for(config, method)
  return (ensemble, extra, dataset.x_test[:num_points],
          dataset.y_test[:num_points])


def attack_saved(config, methods, workdir: str):
  """Attacks each saved ensemble; returns (all rows, summary) DataFrames."""
  import pandas as pd
  rows = []
  for method in methods:
    ensemble, extra, x, y = _attack_inputs(config, method, workdir,
                                           int(config.attack.num_points))
    rows += attack_rows(
        ensemble, x, y, config.attack, seed=int(config.seed),
        labels={'dataset': config.dataset, 'method': method,
                'full_test_accuracy': extra.get('test_accuracy', float('nan'))})
  return pd.DataFrame(rows), summary_table(rows)


def gradient_figures(config, methods, workdir: str):
  """Figures 2 and 3 and a table of expected-gradient magnitude per n."""
  import pandas as pd
  from tfp_robust import plots
  out = os.path.join(workdir, config.dataset)
  settings = config.gradients
  rows = []
  for method in methods:
    ensemble, _ = load_trained(config, method, workdir)
    dataset = load_dataset_for(config, method)
    points = int(settings.num_points)
    x, y = dataset.x_test[:points], dataset.y_test[:points]
    wanted = sorted({n for n in list(settings.num_samples) +
                     list(settings.heatmap_samples)
                     if n <= ensemble.num_samples})
    start = time.time()
    grads = expected_gradient_table(ensemble, x, y, wanted)
    seconds = time.time() - start
    for n in wanted:
      magnitude = np.abs(grads[n])
      rows.append({'dataset': config.dataset, 'method': method,
                   'num_samples': n, 'num_points': points,
                   'mean_abs': float(magnitude.mean()),
                   'median_abs': float(np.median(magnitude)),
                   'p99_abs': float(np.percentile(magnitude, 99)),
                   'max_abs': float(magnitude.max()),
                   'seconds_all_n': seconds})
    images = int(settings.num_images)
    heatmap_n = [n for n in settings.heatmap_samples if n in grads]
    save_figure(plots.gradient_heatmaps(
        x[:images], {n: grads[n][:images] for n in heatmap_n},
        f'{config.dataset} {method}: expected loss gradients'),
        os.path.join(out, f'figure2_{method}.png'))
    save_figure(plots.gradient_strips(
        {n: grads[n] for n in settings.num_samples if n in grads},
        f'{config.dataset} {method}: {points} images x '
        f'{int(np.prod(x.shape[1:]))} components'),
        os.path.join(out, f'figure3_{method}.png'))
  table = pd.DataFrame(rows)
  write_table(table, os.path.join(out, 'gradient_magnitudes'))
  return table


def check_saved(config, methods, workdir: str, num_points: int = 100) -> str:
  """Runs `checks.run_checks` on each saved ensemble; returns a report."""
  from tfp_robust import checks
  sections = []
  for method in methods:
    ensemble, _, x, y = _attack_inputs(config, method, workdir, num_points)
    findings = checks.run_checks(
        ensemble, x, y, float(config.attack.eps[0]), seed=int(config.seed),
        pgd_steps=int(config.attack.pgd_steps),
        strong_steps=int(config.attack.strong_steps),
        strong_restarts=int(config.attack.strong_restarts))
    sections.append(f'## {config.dataset} / {method} ({ensemble.num_samples} '
                    f'samples, {num_points} test points)\n\n```\n'
                    f'{checks.format_findings(findings)}\n```\n')
  return '\n'.join(sections)


write_text = files.write_text_atomically


def load_config_file(path: str, variant: str):
  """`get_config(variant)` of a config file, as `config_flags` would load it."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      'config_' + os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


def ablation_saved(config, methods, workdir: str):
  """`ablations.ablation_rows` for each saved ensemble, as a DataFrame."""
  import pandas as pd
  from tfp_robust import ablations
  rows = []
  for method in methods:
    ensemble, _, x, y = _attack_inputs(config, method, workdir,
                                       int(config.attack.num_points))
    for row in ablations.ablation_rows(
        ensemble, x, y, float(config.attack.eps[0]),
        int(config.attack.pgd_steps)):
      rows.append(dict(dataset=config.dataset, method=method, **row))
      logging.info('%s', rows[-1])
  return pd.DataFrame(rows)


def ensure_trained(config, methods, workdir: str) -> None:
  """Trains (and saves) each method that has no saved ensemble yet."""
  for method in methods:
    path = ensemble_dir(workdir, config.dataset, method)
    if not (os.path.exists(path) or os.path.exists(path + '.old')):
      logging.info('No saved %s ensemble in %s: training it.', method, path)
      train_and_save(config, method, workdir)
