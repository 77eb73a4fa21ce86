"""The paper's experiments on saved ensembles: load, evaluate, tabulate.

Wiring only: each function loads what `fitting` saved, runs `evaluation`
(or `checks`, `ablations`, `gradients`) and returns tables for `reports`.
"""

import contextlib
import json
import os
import time

from absl import logging
import numpy as np

from tfp_robust.core import config_lib
from tfp_robust.evaluation import rows as evaluation
from tfp_robust.core import files
from tfp_robust.fit import fitting
from tfp_robust.reports import tables as reports
from tfp_robust.reports import summaries

def _attack_inputs(config, method, workdir, num_points):
  """A saved ensemble cut to the attack's samples, and its test points."""
  ensemble, extra = fitting.load_trained(config, method, workdir)
  # HMC's chains are interleaved step by step: thinning keeps every chain.
  chains = (extra or {}).get('num_chains') or (
      config.hmc.num_chains if method == 'hmc' else 1)
  ensemble = ensemble.evenly_spaced(
      min(int(config.attack.num_samples), ensemble.num_samples),
      num_chains=int(chains))
  dataset = fitting.load_dataset_for(config, method)
  return (ensemble, extra, dataset.x_test[:num_points],
          dataset.y_test[:num_points])

def surrogate_for(config, workdir: str):
  """The deterministic net of the strong protocol's transfer attack.

  Trained (config section `sgd`) if the work directory has none yet; None
  under the paper protocol.
  """
  if config.attack.get('protocol', 'paper') != 'strong':
    return None
  fitting.ensure_trained(config, ['sgd'], workdir)
  return fitting.load_trained(config, 'sgd', workdir)[0]


def write_evaluation_summaries(log_dir: str, ensemble, rows, x, y,
                               attack_config, seed: int = 0) -> None:
  """An evaluation's rows and a few adversarial examples, to TensorBoard.

  The run directory starts afresh, so a rerun replaces the series.
  """
  writer = summaries.open_writer(log_dir)
  summaries.attack_rows(writer, rows)
  if summaries.as_images(x[:1], ensemble.input_shape) is not None:
    clean, adversarial, name, eps = evaluation.adversarial_examples(
        ensemble, x, y, attack_config, seed=seed)
    summaries.adversarial_images(writer, clean, adversarial,
                                 ensemble.input_shape, name, eps)
  writer.close()


# Part of the rows' digest: bump it when a change to the evaluation changes
# what rows hold, so rows saved by older code are evaluated again.
ROWS_VERSION = 1


def rows_path(workdir: str, dataset: str, method: str, stage: str,
              protocol: str) -> str:
  """Where `attack_saved` keeps one method's finished rows."""
  return os.path.join(workdir, dataset, method, f'{stage}_{protocol}.json')


def _rows_digest(config, method: str, stage: str, workdir: str,
                 surrogate_used: bool) -> str:
  """What produced a method's rows: the config, the method, the stage, and
  the saved ensembles (the method's and the transfer surrogate's)."""
  return files.sha256_json({
      'rows_version': ROWS_VERSION,
      'config': config_lib.digest_view(
          json.loads(config.to_json_best_effort())),
      'method': method, 'stage': stage,
      'ensemble': fitting.saved_fingerprint(config, method, workdir),
      'surrogate': (fitting.saved_fingerprint(config, 'sgd', workdir)
                    if surrogate_used else None)})


def _plain(value):
  """A NumPy scalar as the Python number it holds (for `json.dumps`)."""
  if hasattr(value, 'item'):
    return value.item()
  raise TypeError(f'{type(value).__name__} is not JSON serialisable')


def _finished_rows(path: str, digest: str):
  """The rows saved in `path` by the same settings, or None (missing,
  unreadable or stale: the method is evaluated again)."""
  redo = 'it is evaluated again'
  saved = files.read_finished(path, 'the rows of a finished evaluation',
                              digest, redo)
  if saved is None:
    return None
  if not isinstance(saved.get('rows'), list) or not all(
      isinstance(r, dict) for r in saved['rows']):
    logging.warning('%s holds no list of rows (edited); %s.', path, redo)
    return None
  if saved.get('code_version') != files.code_version():
    logging.warning('%s was written by %s (this is %s); its rows are kept. '
                    'Delete it if the change affects the evaluation.', path,
                    saved.get('code_version'), files.code_version())
  return saved['rows']


def attack_saved(config, methods, workdir: str, stage: str = 'attacks'):
  """Attacks each saved ensemble; returns (all rows, summary) DataFrames.

  Each method's rows are kept in `rows_path(...)` once finished, keyed by a
  digest of the config and the saved ensembles, and each radius's rows as
  soon as that radius is done (`_eps_path`), so a run killed part-way
  resumes with the next radius and gives the same table; a method whose
  settings or ensemble changed is evaluated again. TensorBoard: each
  method's rows under the run `<dataset>/<method>/<stage>_<protocol>`.
  """
  import pandas as pd
  surrogate = surrogate_for(config, workdir)
  protocol = config.attack.get('protocol', 'paper')
  rows = []
  for method in methods:
    use_surrogate = surrogate is not None and method != 'sgd'
    path = rows_path(workdir, config.dataset, method, stage, protocol)
    digest = _rows_digest(config, method, stage, workdir, use_surrogate)
    method_rows = _finished_rows(path, digest)
    if method_rows is not None:
      logging.info('%s: %d %s rows (%s protocol) finished earlier, read from '
                   '%s; delete it to evaluate again.', method,
                   len(method_rows), stage, protocol, path)
      rows += method_rows
      continue
    method_rows, loaded = _rows_by_eps(config, method, workdir, path, digest,
                                       surrogate if use_surrogate else None)
    ensemble, _, x, y = loaded or _attack_inputs(
        config, method, workdir, int(config.attack.num_points))
    write_evaluation_summaries(
        summaries.run_dir(workdir, config.dataset, method,
                          f'{stage}_{protocol}'),
        ensemble, method_rows, x, y, config.attack, seed=int(config.seed))
    files.write_text_atomically(path, json.dumps(
        {'digest': digest, 'code_version': files.code_version(),
         'rows': method_rows}))  # Row keys keep their column order.
    for eps in config.attack.eps:
      with contextlib.suppress(FileNotFoundError):
        os.remove(_eps_path(path, eps))
    rows += method_rows
  return pd.DataFrame(rows), reports.summary_table(rows)


def _eps_path(path: str, eps) -> str:
  """Where one radius's rows wait until the method's file is written."""
  return f'{path[:-len(".json")]}.eps_{float(eps)!r}.json'


def _rows_by_eps(config, method, workdir, path, digest, surrogate):
  """A method's rows, one radius at a time, each kept as soon as it is done.

  Every radius is evaluated alone, with the protocol's seed and (for an
  ensemble that resamples on every call) a freshly loaded ensemble, so a
  radius gives the same rows whether the run before it was interrupted.

  Returns:
    `(rows, loaded)`: `loaded` is the `(ensemble, extra, x, y)` last used,
    None when every radius was read from its file.
  """
  radii = list(config.attack.eps)
  rows, loaded = [], None
  for index, eps in enumerate(radii):
    eps_path = _eps_path(path, eps)
    eps_digest = files.sha256_json({'method': digest, 'eps': float(eps)})
    eps_rows = _finished_rows(eps_path, eps_digest)
    if eps_rows is None:
      start = time.time()
      if loaded is None or loaded[0].resamples:
        loaded = _attack_inputs(config, method, workdir,
                                int(config.attack.num_points))
      ensemble, extra, x, y = loaded
      one = config.attack.copy_and_resolve_references()
      one.eps = (eps,)
      eps_rows = evaluation.attack_rows(
          ensemble, x, y, one, seed=int(config.seed),
          labels={'dataset': config.dataset, 'method': method,
                  'full_test_accuracy': extra.get('test_accuracy',
                                                  float('nan'))},
          surrogate=surrogate)
      # Through JSON, so a fresh and a resumed run hold the same values.
      eps_rows = json.loads(json.dumps(eps_rows, default=_plain))
      files.write_text_atomically(eps_path, json.dumps(
          {'digest': eps_digest, 'code_version': files.code_version(),
           'rows': eps_rows}))
      logging.info('%s: eps %g done (%d/%d radii) in %.0fs; kept in %s.',
                   method, eps, index + 1, len(radii), time.time() - start,
                   eps_path)
    else:
      logging.info('%s: eps %g finished earlier, read from %s.', method, eps,
                   eps_path)
    rows += eps_rows
  return rows, loaded


def gradient_figures(config, methods, workdir: str):
  """Figures 2 and 3 and a table of expected-gradient magnitude per n."""
  import pandas as pd
  from tfp_robust.reports import plots
  out = os.path.join(workdir, config.dataset)
  settings = config.gradients
  rows = []
  for method in methods:
    ensemble, _ = fitting.load_trained(config, method, workdir)
    dataset = fitting.load_dataset_for(config, method)
    points = int(settings.num_points)
    x, y = dataset.x_test[:points], dataset.y_test[:points]
    wanted = sorted({n for n in list(settings.num_samples) +
                     list(settings.heatmap_samples)
                     if n <= ensemble.num_samples})
    start = time.time()
    grads = evaluation.expected_gradient_table(ensemble, x, y, wanted)
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
    writer = summaries.open_writer(
        summaries.run_dir(workdir, config.dataset, method, 'gradients'))
    for row in rows[-len(wanted):]:
      summaries.scalars(writer, {'gradients/mean_abs': row['mean_abs']},
                        step=row['num_samples'])
    for n in heatmap_n:
      summaries.heatmaps(writer, f'gradients/expected/n={n}',
                         grads[n][:images], ensemble.input_shape, step=n)
    figures = {
        'figure2': plots.gradient_heatmaps(
            x[:images], {n: grads[n][:images] for n in heatmap_n},
            f'{config.dataset} {method}: expected loss gradients'),
        'figure3': plots.gradient_strips(
            {n: grads[n] for n in settings.num_samples if n in grads},
            f'{config.dataset} {method}: {points} images x '
            f'{int(np.prod(x.shape[1:]))} components')}
    for name, figure in figures.items():
      summaries.figure(writer, f'figures/{name}', figure)
      reports.save_figure(figure, os.path.join(out, f'{name}_{method}.png'))
    writer.close()
  table = pd.DataFrame(rows)
  reports.write_table(table, os.path.join(out, 'gradient_magnitudes'))
  return table

def check_saved(config, methods, workdir: str, num_points: int = 100) -> str:
  """Runs `checks.run_checks` on each saved ensemble; returns a report."""
  from tfp_robust.evaluation import checks
  sections = []
  for method in methods:
    ensemble, _, x, y = _attack_inputs(config, method, workdir, num_points)
    findings = checks.run_checks(
        ensemble, x, y, float(config.attack.eps[0]), seed=int(config.seed),
        pgd_steps=int(config.attack.pgd_steps),
        strong_steps=int(config.attack.apgd_steps),
        strong_restarts=int(config.attack.apgd_restarts),
        square_queries=int(config.attack.square_queries))
    sections.append(f'## {config.dataset} / {method} ({ensemble.num_samples} '
                    f'samples, {num_points} test points)\n\n```\n'
                    f'{checks.format_findings(findings)}\n```\n')
  return '\n'.join(sections)

def ablation_saved(config, methods, workdir: str):
  """`ablations.ablation_rows` for each saved ensemble, as a DataFrame."""
  import pandas as pd
  from tfp_robust.experiments import ablations
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


def survivors_saved(config, methods, workdir: str, num_steps: int,
                    restarts: int):
  """Which test images PGD leaves standing, per class, for each saved model.

  PGD on the predictive loss at the config's first eps, `num_steps` steps
  and `restarts` random restarts, on the attack's images and samples.

  Returns:
    A DataFrame of `metrics.per_class` rows with `method`, the attack and
    the overall adversarial accuracy.
  """
  import pandas as pd
  from tfp_robust.attacks import gradient as attacks
  from tfp_robust.evaluation import metrics
  frames = []
  eps = float(config.attack.eps[0])
  for method in methods:
    ensemble, _, x, y = _attack_inputs(config, method, workdir,
                                       int(config.attack.num_points))
    start = time.time()
    x_adv = attacks.pgd(ensemble, x, y, eps, num_steps=num_steps,
                        restarts=restarts, loss='predictive',
                        seed=int(config.seed))
    frame = metrics.per_class(ensemble, x, y, x_adv)
    overall = float((frame['adversarial_accuracy'] * frame['images']).sum()
                    / frame['images'].sum())
    logging.info('%s: PGD %d steps x %d restarts, eps %g: accuracy %.3f '
                 '(%.0fs)', method, num_steps, restarts, eps, overall,
                 time.time() - start)
    frame.insert(0, 'method', method)
    frame.insert(1, 'attack', f'pgd_{num_steps}x{restarts}_predictive')
    frame['overall_adversarial_accuracy'] = overall
    frames.append(frame)
  return pd.concat(frames, ignore_index=True)


def robustness_curves(config, methods, workdir: str):
  """Tables 1 and 2 at every eps of `config.attack.eps`, under each protocol.

  Returns:
    `(rows, findings)`: a DataFrame of every row of `attack_saved` for each
    protocol in `config.attack.protocols`, and the curve checks (accuracy
    falls with eps, about zero at eps = 1) per method and protocol.
  """
  import pandas as pd
  from tfp_robust.evaluation import checks
  frames, findings = [], []
  for protocol in config.attack.protocols:
    config.attack.protocol = protocol
    frame, _ = attack_saved(config, methods, workdir, stage='curves')
    frames.append(frame)
  rows = pd.concat(frames, ignore_index=True)
  attacked = rows[~rows['attack'].isin(['certified', 'random'])]
  for (method, protocol), group in attacked.groupby(['method', 'protocol'],
                                                    sort=False):
    strongest = group.groupby('eps')['adversarial_accuracy'].min().to_dict()
    findings += checks.curve_findings(strongest, int(group['num_points'].iloc[0]),
                                      f'{method}_{protocol}')
  return rows, findings
