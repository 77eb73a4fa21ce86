"""Costs of HMC and of the paper-scale fits, measured and projected.

A leapfrog step against one forward and backward pass (full batch), and
the wall time of a config's fits or of a Figure 1 grid projected from unit
costs measured here.
"""

import time
from typing import Dict

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_robust import networks
from tfp_robust.experiments.benchmarks.timing import best_time
from tfp_robust.experiments.benchmarks.timing import dense_forward_flops
from tfp_robust.experiments.benchmarks.timing import matmul_gflops
from tfp_robust.fit import hmc


def hmc_leapfrog_cost(x, y, hidden=(512,), num_chains=1, num_leapfrog_steps=10,
                      seed=0, num_classes=10, activation='relu',
                      repeats=3) -> Dict[str, float]:
  """Seconds per HMC leapfrog step vs one forward+backward pass, full batch."""
  architecture = networks.Architecture.mlp(x.shape[1], list(hidden),
                                           num_classes, activation)
  target = hmc.network_log_joint(architecture, x, y)
  state = hmc.initial_network_state(architecture, num_chains,
                                    tf.constant([seed, 0]))

  @tf.function(jit_compile=True)
  def value_and_gradient(state):
    with tf.GradientTape() as tape:
      tape.watch(state)
      value = target(*state)
    return value, tape.gradient(value, state)

  kernel = tfp.mcmc.HamiltonianMonteCarlo(target, 1e-4, num_leapfrog_steps)

  @tf.function(jit_compile=True)
  def one_step(state, results, seed):
    return kernel.one_step(state, results, seed=seed)

  results = kernel.bootstrap_results(state)
  gradient_seconds = best_time(
      lambda: [t.numpy() for t in value_and_gradient(state)[1]], repeats)
  step_seconds = best_time(lambda: one_step(
      state, results, tf.constant([seed, 1]))[0][0].numpy(), repeats)
  per_leapfrog = step_seconds / num_leapfrog_steps
  # Forward and backward to the weights: about three times the forward's
  # matmul FLOPs (the first layer's input gradient is not needed but XLA
  # may not skip all of it; counted as 3x, the usual estimate).
  gradient_flops = 3.0 * dense_forward_flops(architecture, int(x.shape[0]),
                                             num_chains)
  peak = matmul_gflops()
  return {'forward_backward_seconds': gradient_seconds,
          'gradient_gflops': gradient_flops / gradient_seconds / 1e9,
          'matmul_gflops': peak,
          'gradient_fraction_of_matmul_peak': (
              gradient_flops / gradient_seconds / 1e9 / peak),
          'hmc_step_seconds': step_seconds,
          'leapfrog_seconds': per_leapfrog,
          'leapfrog_over_forward_backward': per_leapfrog / gradient_seconds,
          'num_train': int(x.shape[0]), 'num_chains': num_chains}


def projected_costs(config, dataset, fraction_for_epochs: float = 0.1):
  """Measured unit costs of a config's fits, and projected wall times.

  HMC: seconds per leapfrog step on the full training set with the config's
  net and chains, times the leapfrog steps of warm-up and sampling.
  VI / SGD: seconds for one epoch on `fraction_for_epochs` of the training
  set, scaled to the full set, times epochs (and members for ensembles).

  Args:
    config: an experiment config (e.g. `configs/table1.py:paper`).
    dataset: the full `Dataset` (flat); conv nets get the image layout.
    fraction_for_epochs: share of the training set one timed epoch uses.

  Returns:
    A dict per method with the unit cost and the projected hours.
  """
  # pylint: disable=g-import-not-at-top  # Heavy, and only here.
  from tfp_robust.fit import fitting
  from tfp_robust.fit import models
  from tfp_robust.fit import vi
  results = {}
  for method in config.methods:
    section = fitting.method_section(config, method)
    is_conv = bool(section.get('layers', None))
    x = dataset.x_train.reshape((-1, 28, 28, 1)) if is_conv else dataset.x_train
    architecture = fitting.architecture_from_config(section, x.shape[1:], 10)
    if method == 'hmc':
      settings = fitting.hmc_config(section, 0)
      # Two leapfrog steps per timed proposal: the cost per step is what is
      # projected, and paper-scale steps take seconds each.
      cost = hmc_leapfrog_cost(x, dataset.y_train, hidden=tuple(section.hidden),
                               num_chains=settings.num_chains,
                               num_leapfrog_steps=2, repeats=1)
      steps = settings.num_leapfrog_steps * (
          settings.num_burnin_steps + settings.num_results * settings.thinning)
      results[method] = dict(cost, leapfrog_steps=steps,
                             projected_hours=cost['leapfrog_seconds'] * steps /
                             3600)
      continue
    count = max(1, int(len(x) * fraction_for_epochs))
    train = fitting._train_config(section, 0)
    train.epochs = 1
    start = time.perf_counter()
    if method == 'vi':
      vi.train(architecture, x[:count], dataset.y_train[:count], train)
    else:
      models.train_deterministic(architecture, x[:count],
                                 dataset.y_train[:count], train)
    epoch_seconds = (time.perf_counter() - start) * len(x) / count
    fits = int(config.ensemble.num_members) if method == 'ensemble' else 1
    results[method] = dict(
        epoch_seconds=epoch_seconds, epochs=int(section.epochs),
        members=fits,
        projected_hours=epoch_seconds * int(section.epochs) * fits / 3600)
  return results


def halfmoons_grid_projection(config) -> Dict[str, float]:
  """Projected wall time of a Figure 1 grid from measured leapfrog costs.

  The leapfrog cost is measured once per width on the largest training set
  and scaled linearly to the smaller ones (the log-joint is a sum over
  points).
  """
  from tfp_robust import data
  largest = max(config.num_train)
  moons = data.half_moons(largest, 10, config.noise, seed=0)
  chains = int(config.hmc.num_chains)
  leapfrogs = int(config.hmc.num_leapfrog_steps)
  per_width = {}
  total_seconds = 0.0
  for width in config.hidden:
    cost = hmc_leapfrog_cost(moons.x_train, moons.y_train,
                             hidden=(width,) * int(config.num_layers),
                             num_chains=chains, num_leapfrog_steps=2,
                             num_classes=2, activation=config.activation,
                             repeats=1)
    per_width[f'leapfrog_seconds_hidden{width}_train{largest}'] = (
        cost['leapfrog_seconds'])
    for num_train in config.num_train:
      for warmup in config.warmup:
        steps = leapfrogs * (warmup + int(config.hmc.num_results) *
                             int(config.hmc.thinning))
        total_seconds += cost['leapfrog_seconds'] * steps * num_train / largest
  return dict(per_width, projected_hours=total_seconds / 3600)
