"""Speed against a peer (issue 24, item 6): ESS per hour, ours and NumPyro's.

One run samples one target twice, side by side: our best sampler through
the package's own path (`fit.hmc.fit`: the checkpointed driver and the
kernels of `fit.mcmc.kernels`, NUTS with a windowed diagonal mass matrix)
and NumPyro's NUTS (`experiments.peer_numpyro`, `dense_mass=False`), with
the same data subset, net, prior, depth, target acceptance, initial step
size, chains, warm-up and kept counts, from the same starts (SGD solutions
trained once, fed to both). Before anything samples,
`peer_numpyro.same_target` evaluates both log-joints and their gradients at
the same weights (the starts, and the starts moved), with a float64 NumPy
evaluation as a third reading.

Both are judged by the same ArviZ functions (`fit.mcmc.mixing.report`):
bulk ESS of the class probabilities at `diagnostic_points` test images and
of the log-joint, per hour of wall time (warm-up, sampling and compiling
included; and the kept phase alone, compiling excluded), beside gradient
evaluations per second and leapfrog steps per draw. `explain` splits the
kept phase's ESS-per-hour ratio into its factors: ESS per draw, leapfrog
steps per draw, seconds per leapfrog step (the gradient alone, timed
interleaved, times the sampler's overhead on it).

Chains run in lockstep on both sides (TFP's batch of chains; NumPyro's
`'vectorized'` chains, one `vmap`ped program): an iteration costs the
longest chain's tree, so "leapfrog steps per draw" is that lockstep count.
"""

import json
import os
import platform
import tempfile
import time
from typing import Dict, List

import numpy as np

from tfp_robust.core import config_checks
from tfp_robust.core import validate
from tfp_robust.experiments import peer_numpyro

CHAIN_METHODS = ('vectorized', 'sequential')
_PEER_FIELDS = ('chain_method', 'cpu_threads', 'gradient_repeats')
# The ESS figures compared, from `mixing.report`.
ESS_KEYS = ('fn_bulk_ess_min', 'fn_bulk_ess_median', 'logjoint_bulk_ess')


def check(config, deep: bool = True):
  """The comparison's config (configs/peer.py), before any work."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  if 'peer' not in config:
    validate.fail('--config', sorted(config.keys()), 'it has no `peer` '
                  'section', 'Use configs/peer.py.')
  peer = config.peer
  unknown = sorted(set(peer.keys()) - set(_PEER_FIELDS))
  if unknown:
    validate.fail(f'--config.peer.{unknown[0]}', peer[unknown[0]],
                  f"the peer section has no field {unknown[0]!r}",
                  f'Known fields: {", ".join(_PEER_FIELDS)}.')
  validate.one_of('--config.peer.chain_method', peer.chain_method,
                  CHAIN_METHODS)
  validate.integer('--config.peer.cpu_threads', peer.cpu_threads, 0,
                   fix='0 leaves the process on every core it has.')
  validate.integer('--config.peer.gradient_repeats', peer.gradient_repeats,
                   1)
  rest = ml_collections.ConfigDict(
      {k: v for k, v in config.to_dict().items() if k != 'peer'})
  if deep:  # The fit layer's rules too (imports TensorFlow).
    from tfp_robust.fit import fitting  # pylint: disable=g-import-not-at-top
    fitting.check_config(rest, ['hmc'])
  else:
    config_checks.check(rest, ['hmc'])
  hmc = config.hmc
  for key, wanted in (('kernel', 'nuts'), ('mass_matrix', 'diagonal'),
                      ('mass_matrix_adaptation', 'windowed')):
    if hmc.get(key, 'windowed' if key.endswith('adaptation') else None) != (
        wanted):
      validate.fail(f'--config.hmc.{key}', hmc.get(key), 'the peer is '
                    "NumPyro's NUTS, its diagonal mass matrix adapted in "
                    'windows: ours must be the same sampler',
                    f'Set --config.hmc.{key}={wanted}.')
  validate.integer('--config.hmc.num_chains', hmc.num_chains, 2,
                   fix='Split R-hat and ESS compare at least 2 chains.')
  validate.integer('--config.hmc.num_results', hmc.num_results, 4,
                   fix='ESS needs at least 4 kept draws per chain.')
  if hmc.get('layers'):
    validate.fail('--config.hmc.layers', hmc.layers, 'the NumPyro side ports '
                  'dense nets only', "Use --config.hmc.hidden='(128,)' and "
                  '--config.hmc.layers=().')
  return config


def pin_cores(count: int) -> List[int]:
  """Keeps this process on its first `count` allowed cores (0: all), so
  that TensorFlow and JAX compute on the same cores; returns them."""
  allowed = sorted(os.sched_getaffinity(0))
  if count and count < len(allowed):
    os.sched_setaffinity(0, allowed[:count])
  return sorted(os.sched_getaffinity(0))


def load_target(config):
  """`(architecture, x, y, x_test)`: the data subset and the net."""
  from tfp_robust.fit import fitting  # pylint: disable=g-import-not-at-top
  dataset = fitting.load_dataset_for(config, 'hmc')
  architecture = fitting.architecture_from_config(
      config.hmc, dataset.input_shape, dataset.num_classes)
  peer_numpyro.check_architecture(architecture)
  return (architecture, dataset.x_train, dataset.y_train,
          dataset.x_test[:int(config.diagnostic_points)])


def starts(architecture, x, y, config) -> List[np.ndarray]:
  """One start per chain `[C, ...]`, as `fitting.fit` makes them: SGD
  solutions (`init='sgd'`) or He-normal draws."""
  from tfp_robust.fit import hmc  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import models  # pylint: disable=g-import-not-at-top
  chains, seed = int(config.hmc.num_chains), int(config.seed)
  if config.hmc.get('init', 'prior') == 'sgd':
    sgd = config.hmc.init_sgd
    params = models.train_deep_ensemble(
        architecture, x, y, models.TrainConfig(
            epochs=int(sgd.epochs), batch_size=int(sgd.batch_size),
            learning_rate=float(sgd.learning_rate), seed=seed), chains).params
  else:
    params = hmc.initial_network_state(
        architecture, chains, hmc.driver.phase_seed(seed, 1 << 20))
  return [np.asarray(p, np.float32) for p in params]


def run_ours(architecture, x, y, start, config) -> Dict:
  """Our sampler through `fit.hmc.fit` (driver, kernels, checkpoints in a
  temporary directory); its draws, log-joint and costs."""
  from tfp_robust.fit import fitting  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import hmc  # pylint: disable=g-import-not-at-top
  settings = fitting.hmc_config(config.hmc, config.seed)
  with tempfile.TemporaryDirectory(prefix='peer_ours_') as checkpoint_dir:
    _, result = hmc.fit(architecture, x, y, settings,
                        checkpoint_dir=checkpoint_dir, initial_state=start,
                        init_description='peer comparison: '
                        f"{config.hmc.get('init', 'prior')} starts")
    with open(os.path.join(checkpoint_dir, 'timings.json')) as f:
      timings = json.load(f)
  segments = [timings['segments'][k]['seconds']
              for k in sorted(timings['segments'], key=int)]
  # The first kept segment traces and compiles the sampling chain; the
  # others (same size) reuse it.
  compile_seconds = (max(0.0, segments[0] - float(np.median(segments[1:])))
                     if len(segments) > 1 else None)
  report = result.diagnostics
  return {
      'samples': result.samples, 'log_joint': result.log_prob,
      'lockstep_leapfrogs': float(report['leapfrog_steps_per_iteration']),
      'acceptance': float(report['acceptance_rate']),
      'step_size': [float(result.step_size)],
      'warm_up_seconds': float(timings['warm_up_seconds']),
      'sampling_seconds': float(sum(segments)),
      'warm_up_compile_seconds': None,  # Inside warm-up, not timed apart.
      'sampling_compile_seconds': compile_seconds,
  }


def run_numpyro(architecture, x, y, start, config) -> Dict:
  """NumPyro's NUTS with the same settings, from the same starts."""
  settings = dict(config.hmc.to_dict(), seed=int(config.seed),
                  chain_method=config.peer.chain_method)
  draws = peer_numpyro.sample(architecture, x, y, start, settings)
  steps = draws['leapfrogs']
  lockstep = (steps.max(axis=1) if config.peer.chain_method == 'vectorized'
              else steps)
  draws.update(lockstep_leapfrogs=float(np.mean(lockstep)),
               mean_chain_leapfrogs=float(np.mean(steps)),
               warm_up_lockstep_leapfrogs=float(np.mean(
                   draws['warm_up_leapfrogs'].max(axis=1))),
               acceptance=float(np.mean(draws['accept_prob'])))
  return draws


def summarize(draws: Dict, architecture, x_test, criteria) -> Dict:
  """ESS (ArviZ, via `mixing.report`), per hour, and the costs of a run."""
  from tfp_robust.fit.mcmc import mixing  # pylint: disable=g-import-not-at-top
  probs = mixing.class_probabilities(architecture, draws['samples'], x_test)
  figures = mixing.report(probs, draws['log_joint'], criteria)
  num_draws, chains = np.asarray(draws['log_joint']).shape
  kept = draws['sampling_seconds'] - (draws['sampling_compile_seconds'] or
                                      0.0)
  total = draws['warm_up_seconds'] + draws['sampling_seconds']
  out = {key: draws[key] for key in (
      'warm_up_seconds', 'sampling_seconds', 'warm_up_compile_seconds',
      'sampling_compile_seconds', 'lockstep_leapfrogs', 'acceptance',
      'step_size', 'mean_chain_leapfrogs', 'warm_up_lockstep_leapfrogs',
      'diverging') if key in draws}
  out.update({key: figures[key] for key in (
      'fn_split_rhat_max', 'fn_split_rhat_median', 'logjoint_split_rhat',
      'fn_tail_ess_min', 'fn_fraction_varying', 'num_draws', 'num_chains')})
  out.update(total_seconds=total, kept_seconds=kept,
             mean_log_joint=float(np.mean(draws['log_joint'])),
             leapfrogs_per_draw=draws['lockstep_leapfrogs'],
             seconds_per_leapfrog=kept / (num_draws *
                                          draws['lockstep_leapfrogs']),
             gradient_evaluations_per_second=(
                 num_draws * draws['lockstep_leapfrogs'] * chains / kept))
  for key in ESS_KEYS:
    out[key] = figures[key]
    out[key + '_per_draw'] = figures[key] / (num_draws * chains)
    out[key + '_per_hour'] = figures[key] / (total / 3600.0)
    out[key + '_per_kept_hour'] = figures[key] / (kept / 3600.0)
  return out


def explain(ours: Dict, theirs: Dict, gradient: Dict) -> Dict:
  """Ours over NumPyro's, and the kept phase's ESS-per-hour ratio as the
  product of its factors (each > 1 favours ours):

    ESS per draw  x  NumPyro's / our leapfrog steps per draw
                  x  NumPyro's / our seconds per leapfrog step,

  the last the product of the gradient alone (NumPyro's / ours, medians)
  and the sampler's overhead on it (NumPyro's seconds per leapfrog over its
  gradient, against ours)."""
  out = {}
  for key in ESS_KEYS:
    for suffix in ('_per_hour', '_per_kept_hour', '_per_draw'):
      out[key + suffix] = ours[key + suffix] / theirs[key + suffix]
  out['gradient_evaluations_per_second'] = (
      ours['gradient_evaluations_per_second'] /
      theirs['gradient_evaluations_per_second'])
  out['leapfrogs_per_draw'] = (theirs['leapfrogs_per_draw'] /
                               ours['leapfrogs_per_draw'])
  out['seconds_per_leapfrog'] = (theirs['seconds_per_leapfrog'] /
                                 ours['seconds_per_leapfrog'])
  out['gradient_alone'] = gradient['numpyro_median'] / gradient['ours_median']
  for name, side in (('ours', ours), ('numpyro', theirs)):
    out[f'{name}_overhead'] = side['seconds_per_leapfrog'] / gradient[
        f'{name}_median']
  out['sampler_overhead'] = out['numpyro_overhead'] / out['ours_overhead']
  key = 'fn_bulk_ess_median'
  out['product'] = (out[key + '_per_draw'] * out['leapfrogs_per_draw'] *
                    out['seconds_per_leapfrog'])
  return out


def environment(cores: List[int]) -> Dict:
  """Versions, CPU and load: what the seconds were measured on."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpyro  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  cpu = platform.processor()
  if os.path.exists('/proc/cpuinfo'):
    with open('/proc/cpuinfo') as f:
      cpu = next((line.split(':', 1)[1].strip() for line in f
                  if line.startswith('model name')), cpu)
  return dict(tensorflow=tf.__version__, tfp=tfp.__version__,
              jax=jax.__version__, numpyro=numpyro.__version__, cpu=cpu,
              cores_used=cores, cores_on_machine=os.cpu_count(),
              load_average=list(os.getloadavg()))


def run(config) -> Dict:
  """The whole comparison (see the module): the report as a dict."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  check(config)
  peer_numpyro.require()
  cores = pin_cores(int(config.peer.cpu_threads))
  architecture, x, y, x_test = load_target(config)
  start = starts(architecture, x, y, config)
  prior_scale = float(config.hmc.prior_scale)
  rng = np.random.default_rng(int(config.seed))
  moved = [p + 0.1 * rng.standard_normal(p.shape).astype(np.float32)
           for p in start]
  target = peer_numpyro.same_target(architecture, x, y, prior_scale,
                                    [start, moved])
  logging.info('Peer: the same target? %s', target)
  gradient = peer_numpyro.gradient_seconds(
      architecture, x, y, prior_scale, start,
      int(config.peer.gradient_repeats), bool(config.hmc.jit_compile))
  logging.info('Peer: one gradient over %d chains alone: %s',
               len(start[0]), gradient)
  before = environment(cores)
  sides = {}
  for name, sampler in (('ours', run_ours), ('numpyro', run_numpyro)):
    begin = time.perf_counter()
    draws = sampler(architecture, x, y, start, config)
    logging.info('Peer: %s sampled in %.1fs.', name,
                 time.perf_counter() - begin)
    sides[name] = summarize(draws, architecture, x_test, dict(config.mixing))
  return {
      'target': dict(dataset=config.dataset, num_train=int(len(x)),
                     architecture=json.loads(architecture.to_json()),
                     num_params=int(architecture.num_params()),
                     prior_scale=prior_scale, test_points=int(len(x_test)),
                     init=config.hmc.get('init', 'prior')),
      'same_target': target, 'gradient_alone_seconds': gradient,
      'ours': sides['ours'], 'numpyro': sides['numpyro'],
      'ours_over_numpyro': explain(sides['ours'], sides['numpyro'],
                                   gradient),
      'environment': dict(before, load_average_after=list(os.getloadavg())),
  }


def _cell(value, digits=3):
  if isinstance(value, (list, tuple)):
    return ', '.join(_cell(v, digits) for v in value)
  if value is None or (isinstance(value, float) and np.isnan(value)):
    return 'n/a'
  if isinstance(value, float):
    return f'{value:,.{digits}g}' if abs(value) < 1e4 else f'{value:,.0f}'
  return str(value)


# Rows of the side-by-side table: (label, key of each side's summary).
_ROWS = (
    ('bulk ESS, class probabilities, min', 'fn_bulk_ess_min'),
    ('bulk ESS, class probabilities, median', 'fn_bulk_ess_median'),
    ('bulk ESS, log-joint', 'logjoint_bulk_ess'),
    ('ESS per hour, class prob. min (all wall time)',
     'fn_bulk_ess_min_per_hour'),
    ('ESS per hour, class prob. median (all wall time)',
     'fn_bulk_ess_median_per_hour'),
    ('ESS per hour, log-joint (all wall time)', 'logjoint_bulk_ess_per_hour'),
    ('ESS per hour, class prob. median (kept phase, no compile)',
     'fn_bulk_ess_median_per_kept_hour'),
    ('ESS per draw, class prob. median', 'fn_bulk_ess_median_per_draw'),
    ('leapfrog steps per draw (lockstep over chains)', 'leapfrogs_per_draw'),
    ('gradient evaluations per second (per chain, kept phase)',
     'gradient_evaluations_per_second'),
    ('seconds per leapfrog step (all chains)', 'seconds_per_leapfrog'),
    ('warm-up seconds (compile included)', 'warm_up_seconds'),
    ('kept-phase seconds (compile included)', 'sampling_seconds'),
    ('compile seconds, kept phase', 'sampling_compile_seconds'),
    ('acceptance: ours moved share, NumPyro mean accept_prob', 'acceptance'),
    ('adapted step size', 'step_size'),
    ('split R-hat, class prob. max', 'fn_split_rhat_max'),
    ('split R-hat, log-joint', 'logjoint_split_rhat'),
    ('mean log-joint (kept)', 'mean_log_joint'),
)


def markdown(report: Dict) -> str:
  """The report as Markdown: the target, the check, the table, the why."""
  target, same = report['target'], report['same_target']
  ours, theirs, ratio = (report['ours'], report['numpyro'],
                         report['ours_over_numpyro'])
  gradient, env = report['gradient_alone_seconds'], report['environment']
  hidden = [layer.get('units') for layer in target['architecture']['hidden']]
  lines = [
      '# Speed against a peer: our NUTS (TFP) and NumPyro\'s, one target', '',
      f"Target: {target['dataset']}, the first {target['num_train']:,} "
      f"training images (full batch), a {'-'.join(map(str, [784] + hidden))}"
      f"-10 {target['architecture']['activation']} net, N(0, "
      f"{target['prior_scale']:g}) on all {target['num_params']:,} weights; "
      f"{ours['num_chains']} chains from {target['init']} starts, "
      f"{ours['num_draws']} kept draws each; ESS of the class probabilities "
      f"at {target['test_points']} test images. CPU: {env['cpu']}, "
      f"{len(env['cores_used'])} core(s) used of {env['cores_on_machine']}; "
      f"load average {_cell(env['load_average'][0])} before sampling, "
      f"{_cell(env['load_average_after'][0])} after; TensorFlow "
      f"{env['tensorflow']}, TFP {env['tfp']}, JAX {env['jax']}, NumPyro "
      f"{env['numpyro']}.", '',
      f"Same target: at {same['points']} points (the starts, and the starts "
      'moved) the log-joints differ by at most '
      f"{same['value_rel_gap']:.2g} (relative; each against float64: ours "
      f"{same['ours_vs_float64']:.2g}, NumPyro's "
      f"{same['numpyro_vs_float64']:.2g}), the gradients by "
      f"{same['gradient_rel_gap']:.2g} of their largest entry.", '',
      '| | ours (TFP) | NumPyro | ours / NumPyro |', '|---|---|---|---|']
  for label, key in _ROWS:
    mine, other = ours.get(key), theirs.get(key)
    shown = (mine / other if isinstance(mine, float) and
             isinstance(other, float) and other else None)
    digits = 6 if key == 'mean_log_joint' else 3
    lines.append(f'| {label} | {_cell(mine, digits)} | '
                 f'{_cell(other, digits)} | {_cell(shown)} |')
  lines.append(f"| one gradient alone, all chains (median s) | "
               f"{_cell(gradient['ours_median'])} | "
               f"{_cell(gradient['numpyro_median'])} | "
               f"{_cell(1.0 / ratio['gradient_alone'])} |")
  lines.append(f"| sampler overhead (s per leapfrog / gradient alone) | "
               f"{_cell(ratio['ours_overhead'])} | "
               f"{_cell(ratio['numpyro_overhead'])} | "
               f"{_cell(1.0 / ratio['sampler_overhead'])} |")
  key = 'fn_bulk_ess_median'
  lines += [
      '', '## Where the difference comes from', '',
      'Kept phase, compile excluded: our ESS per hour (class probabilities, '
      f"median) is {_cell(ratio[key + '_per_kept_hour'])} times NumPyro's = "
      f"ESS per draw {_cell(ratio[key + '_per_draw'])} x fewer leapfrog "
      f"steps per draw {_cell(ratio['leapfrogs_per_draw'])} x faster "
      f"leapfrog steps {_cell(ratio['seconds_per_leapfrog'])} (product "
      f"{_cell(ratio['product'])}); the leapfrog factor is the gradient "
      f"alone {_cell(ratio['gradient_alone'])} x the sampler's overhead "
      f"{_cell(ratio['sampler_overhead'])} (factors above 1 favour ours).",
      f"Over all wall time (warm-up, compiling) the ratio is "
      f"{_cell(ratio[key + '_per_hour'])}: warm-up took "
      f"{_cell(ours['warm_up_seconds'])} s ours, "
      f"{_cell(theirs['warm_up_seconds'])} s NumPyro's (of which compiling "
      f"{_cell(theirs['warm_up_compile_seconds'])} s; ours compiles inside "
      'its warm-up loop, not timed apart). NumPyro warmed up at '
      f"{_cell(theirs['warm_up_lockstep_leapfrogs'])} lockstep leapfrog "
      f"steps per iteration and sampled at {_cell(theirs['leapfrogs_per_draw'])}"
      f" ({_cell(theirs['mean_chain_leapfrogs'])} per chain on average).", '']
  return '\n'.join(lines)
