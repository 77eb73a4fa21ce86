"""Sampler kernels, built from `tfp.mcmc` and `tfp.experimental.mcmc` pieces.

A sampler is named by four settings of the run's config:

- `kernel`: `'hmc'` (a fixed trajectory per proposal) or `'nuts'`
  (`tfp.mcmc.NoUTurnSampler`, the trajectory chosen by the U-turn rule, at
  most `2**max_tree_depth - 1` leapfrog steps).
- `mass_matrix`: `'identity'`, or `'diagonal'`: a per-weight, per-chain
  diagonal mass matrix estimated from the chain's own states during warm-up
  (`DiagonalMassMatrixAdaptation` around
  `PreconditionedHamiltonianMonteCarlo` / `PreconditionedNoUTurnSampler`).
  `mass_matrix_adaptation='windowed'` (the default) runs TFP's windowed
  schedule (`WindowedAdaptation`, the kernel of
  `tfp.experimental.mcmc.windowed_adaptive_hmc`): 15% of warm-up adapting
  the step size only, four doubling windows (75%) each estimating the mass
  matrix afresh and restarting the step-size adaptation, and a last 10%
  tuning the step size to the final mass matrix. `'single'` estimates it
  once over the first `mass_matrix_window` of warm-up and never restarts
  the step-size adaptation (session 4's rows).
- `trajectory` (HMC only): `'fixed'` (`num_leapfrog_steps` every proposal;
  fixed-length trajectories can resonate), `'jittered'` (a trajectory length
  `L` in time, each proposal integrating for `u L`, with `u` in
  `[1 - jitter, 1]` from a Halton sequence over the iterations (TFP's
  default: deterministic, evenly spread, shared by all chains), so the
  leapfrog count follows the adapted step size) or
  `'adapted'` (`L` adapted during warm-up by the ChEES criterion,
  `GradientBasedTrajectoryLengthAdaptation`, and jittered as above).
  `L` starts at `trajectory_length`, or at `num_leapfrog_steps * step_size`
  when that is 0.
- every sampler adapts its step size by dual averaging during warm-up
  (`DualAveragingStepSizeAdaptation`) towards `target_accept_prob`.

Known limits (BUILD_NOTES): with `'single'`, the dual averaging is not
restarted when the diagonal mass matrix is set, so its averaged step size
still remembers the steps taken before; the step size after warm-up is
then smaller than the target acceptance asks for (on the test Gaussian
with a jittered trajectory: step 0.63-0.69 against 0.87-1.07 windowed, and
a tenth of the ESS). With a fixed trajectory the windowed step size can
make it resonate (about half a period: antithetic draws, the ESS of the
mean capped at the number of draws while the second moment's is 18-454;
`diagnostics` reports both). Jittered and adapted trajectories take at
most `max_leapfrog_steps` per proposal, in warm-up too (`cap_leapfrogs`):
TFP clips only an adapted trajectory's length, at the step size of the
time, so a jittered one met a collapsing step size during warm-up with an
unbounded count. With the cap, ChEES's averaged length can still exceed
`step size x max_leapfrog_steps` (TFP averages the unclipped iterate), so
some sampling proposals stop at the cap; the count never depends on the
state, so the chain stays valid.

`kernel='hmc', mass_matrix='identity', trajectory='fixed'` is the plain
sampler: the driver then samples with a fresh fixed-step
`HamiltonianMonteCarlo` (as every run before these settings did, bit for
bit). Every other sampler carries its kernel results from warm-up through
sampling, its adaptation switched off by step count, so the adapted step
size, mass matrix and trajectory length stay in force.
"""

from typing import Callable, Sequence

import tensorflow as tf
import tensorflow_probability as tfp
# The kernel of TFP's windowed adaptive samplers; the public entry points
# (`windowed_adaptive_hmc` / `_nuts`) take a JointDistribution and run the
# whole chain, so they cannot drive our checkpointed segments.
from tensorflow_probability.python.experimental.mcmc.windowed_sampling import WindowedAdaptation
# Its default leapfrog-count setter, which `_capped_leapfrog_setter` wraps.
from tensorflow_probability.python.experimental.mcmc import gradient_based_trajectory_length_adaptation as _TFP_GBTLA

KERNELS = ('hmc', 'nuts')
MASS_MATRICES = ('identity', 'diagonal')
MASS_MATRIX_ADAPTATIONS = ('windowed', 'single')
# Windowed adaptation's first mass-matrix window is a twentieth of warm-up;
# this gives it 5 states (60 worked on the test Gaussian, 20 never ended).
MIN_WINDOWED_BURNIN_STEPS = 100
TRAJECTORIES = ('fixed', 'jittered', 'adapted')


def is_plain(config) -> bool:
  """Whether `config` names the plain sampler (fixed-step HMC sampling)."""
  return (config.kernel == 'hmc' and config.mass_matrix == 'identity' and
          config.trajectory == 'fixed')


def is_jittered(config) -> bool:
  """Whether proposals integrate for a jittered fraction of a trajectory
  length (`'jittered'` and `'adapted'` HMC trajectories)."""
  return config.kernel == 'hmc' and config.trajectory != 'fixed'


def describe(config) -> str:
  """A short name of the sampler, e.g. `hmc/diagonal/jittered`.

  A diagonal mass matrix adapted in one window reads `diagonal-single`.
  """
  mass = config.mass_matrix
  if mass == 'diagonal' and config.mass_matrix_adaptation == 'single':
    mass += '-single'
  if config.kernel == 'nuts':
    return f'nuts/{mass}'
  return f'hmc/{mass}/{config.trajectory}'


def warm_up_kernel(target_log_prob_fn: Callable, config, step_size,
                   initial_state: Sequence[tf.Tensor]):
  """The kernel that adapts during warm-up (and, carried on, samples).

  Adaptation runs for `config.num_burnin_steps` steps of this kernel; after
  that every adaptive layer holds its adapted value.
  """
  steps = config.num_burnin_steps
  if is_plain(config):
    # Exactly the kernel of every run before the sampler settings existed.
    return tfp.mcmc.DualAveragingStepSizeAdaptation(
        tfp.mcmc.HamiltonianMonteCarlo(target_log_prob_fn, step_size,
                                       config.num_leapfrog_steps),
        num_adaptation_steps=steps,
        target_accept_prob=config.target_accept_prob)
  diagonal = config.mass_matrix == 'diagonal'
  if config.kernel == 'nuts':
    make = (tfp.experimental.mcmc.PreconditionedNoUTurnSampler if diagonal
            else tfp.mcmc.NoUTurnSampler)
    kernel = make(target_log_prob_fn, step_size,
                  max_tree_depth=config.max_tree_depth)
  else:
    make = (tfp.experimental.mcmc.PreconditionedHamiltonianMonteCarlo
            if diagonal else tfp.mcmc.HamiltonianMonteCarlo)
    kernel = make(target_log_prob_fn, step_size, config.num_leapfrog_steps,
                  store_parameters_in_results=True)
    if is_jittered(config):
      kernel = tfp.experimental.mcmc.GradientBasedTrajectoryLengthAdaptation(
          kernel,
          num_adaptation_steps=steps if config.trajectory == 'adapted' else 0,
          jitter_amount=config.jitter,
          max_leapfrog_steps=config.max_leapfrog_steps,
          **({'num_leapfrog_steps_setter_fn': _capped_leapfrog_setter(
              config.max_leapfrog_steps)} if config.cap_leapfrogs else {}))
  kernel = tfp.mcmc.DualAveragingStepSizeAdaptation(
      kernel, num_adaptation_steps=steps,
      target_accept_prob=config.target_accept_prob)
  if diagonal:
    kernel = tfp.experimental.mcmc.DiagonalMassMatrixAdaptation(
        kernel,
        initial_running_variance=[
            tfp.experimental.stats.RunningVariance.from_stats(
                num_samples=tf.zeros([]), mean=tf.zeros_like(part),
                variance=tf.ones_like(part)) for part in initial_state],
        num_estimation_steps=mass_matrix_steps(config))
    if config.mass_matrix_adaptation == 'windowed':
      # Sets the windows of both adaptations from its own step count.
      kernel = WindowedAdaptation(kernel, num_adaptation_steps=steps)
  return kernel


def _capped_leapfrog_setter(max_leapfrog_steps: int) -> Callable:
  """TFP's leapfrog-count setter, the count capped at `max_leapfrog_steps`.

  The count is `ceil(u L / step size)`: TFP clips `L` only while it adapts
  it, so with a step size that collapses during warm-up (a mass-matrix
  window of a few states) a jittered trajectory would not end.
  """
  def setter(kernel_results, num_leapfrog_steps):
    capped = tf.minimum(num_leapfrog_steps,
                        tf.cast(max_leapfrog_steps, num_leapfrog_steps.dtype))
    return _TFP_GBTLA.hmc_like_num_leapfrog_steps_setter_fn(kernel_results,
                                                             capped)
  return setter


def mass_matrix_steps(config) -> int:
  """`'single'`: warm-up steps whose states estimate the mass matrix."""
  return max(1, int(round(config.mass_matrix_window *
                          config.num_burnin_steps)))


def bootstrap(kernel, state, config):
  """`kernel.bootstrap_results(state)`, with the trajectory length set.

  A jittered trajectory that is not adapted integrates for the length
  `GradientBasedTrajectoryLengthAdaptation` keeps as its averaged value,
  which starts at 0; it is set here to the run's trajectory length.
  """
  results = kernel.bootstrap_results(state)
  if not is_jittered(config):
    return results
  length = float(config.trajectory_length) or (
      config.num_leapfrog_steps * config.step_size)
  return _with_trajectory_length(results, length)


def _with_trajectory_length(results, length):
  """`results` with the trajectory length (current and averaged) set."""
  if hasattr(results, 'averaged_max_trajectory_length'):
    value = tf.cast(length, results.averaged_max_trajectory_length.dtype)
    return results._replace(max_trajectory_length=value,
                            averaged_max_trajectory_length=value)
  return results._replace(inner_results=_with_trajectory_length(
      results.inner_results, length))


def end_warm_up(results, config):
  """The results that sampling starts from, once warm-up has finished.

  A jittered trajectory given as a leapfrog count (`trajectory_length` 0)
  integrates, from here on, for `num_leapfrog_steps` times the adapted step
  size (jittered), so its mean leapfrog count does not depend on the step
  size the adaptation reached, nor on the units a mass matrix sets.
  """
  if is_plain(config) or config.kernel != 'hmc' or (
      config.trajectory != 'jittered') or config.trajectory_length:
    return results
  return _with_trajectory_length(
      results, config.num_leapfrog_steps * step_size(results))


def _find(results, attribute):
  while not hasattr(results, attribute):
    results = results.inner_results
  return results


def log_prob_and_accepted(results):
  """Each chain's log-density at the current state, and the acceptance."""
  inner = _find(results, 'is_accepted')
  if hasattr(inner, 'accepted_results'):
    log_prob = inner.accepted_results.target_log_prob
  else:
    log_prob = inner.target_log_prob
  return log_prob, inner.is_accepted


def step_size(results) -> tf.Tensor:
  """The step size the next proposal uses (a scalar)."""
  value = _find(results, 'new_step_size').new_step_size
  return tf.cast(tf.reshape(tf.nest.flatten(value)[0], []), tf.float32)


def leapfrogs(results) -> tf.Tensor:
  """Leapfrog steps the last iteration computed (NUTS: the longest chain)."""
  inner = _find(results, 'is_accepted')
  if hasattr(inner, 'leapfrogs_taken'):
    # NUTS runs all chains in lockstep while any still grows its tree: the
    # work of an iteration is the longest chain's.
    return tf.reduce_max(tf.cast(inner.leapfrogs_taken, tf.float32))
  accepted = getattr(inner, 'accepted_results', inner)
  return tf.cast(tf.reduce_mean(accepted.num_leapfrog_steps), tf.float32)


def trajectory_length(results):
  """The (averaged) trajectory length in force, or None without one."""
  try:
    inner = _find(results, 'averaged_max_trajectory_length')
  except AttributeError:
    return None
  return inner.averaged_max_trajectory_length
