"""Hamiltonian Monte Carlo over network weights with `tfp.mcmc`.

The target is the log-joint on the **full** training set (never a
mini-batch): a Gaussian prior on every weight plus the categorical
log-likelihood of all N training points. Several chains run at once: the
chain axis is the sample axis of `networks.forward`, so one compiled call
evaluates all chains.

This module holds the settings (`HMCConfig`), the network target and `fit`;
the sampler kernels are in `mcmc.kernels`, the checkpointed warm-up and
sampling driver in `mcmc.driver` (re-exported here as `sample`), and ESS and
R-hat in `mcmc.diagnostics`. Given a `tf.distribute` strategy, `fit` sums
the same target across devices (`mcmc.distributed.sharded_log_joint`).
"""

import dataclasses
import hashlib
import json
import os
from typing import Callable, List, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_robust import ensemble as ensemble_lib
from tfp_robust import networks
from tfp_robust.core import validate
from tfp_robust.core import xla
from tfp_robust.fit.mcmc import distributed
from tfp_robust.fit.mcmc import driver
from tfp_robust.fit.mcmc import kernels


@dataclasses.dataclass
class HMCConfig:
  """HMC settings.

  Attributes:
    num_results: kept samples per chain.
    num_burnin_steps: warm-up steps, during which the step size adapts.
    num_leapfrog_steps: leapfrog steps per proposal.
    step_size: initial step size for the adaptation.
    thinning: keep every `thinning`-th state after warm-up. A jittered or
      adapted trajectory then holds every state of a segment in memory
      (thinning times a kept segment's), so that the leapfrog count is
      taken over every iteration, not over the kept ones' share of the
      jitter sequence.
    num_chains: independent chains, run at once.
    target_accept_prob: acceptance rate the adaptation aims for.
    prior_scale: standard deviation of the Gaussian prior on every weight.
    seed: the run's seed; phases derive theirs from it.
    segment_size: kept samples per checkpointed segment.
    warm_up_checkpoint_every: checkpoint (and log) warm-up every this many
      steps; 0 runs warm-up as one compiled loop, checkpointed at its end.
    jit_compile: compile the chain with XLA (default: `core.xla.default()`,
      True unless $TFP_ROBUST_JIT_COMPILE=0).
    kernel: `'hmc'` or `'nuts'` (see `mcmc.kernels`).
    mass_matrix: `'identity'`, or `'diagonal'`, adapted during warm-up.
    mass_matrix_adaptation: how a diagonal mass matrix is adapted:
      `'windowed'` (TFP's windowed schedule, as Stan's: a fast window
      adapting the step size only, four doubling slow windows each
      re-estimating the mass matrix from its own states and restarting the
      step-size adaptation, a last fast window tuning the step size to the
      final mass matrix), or `'single'`: one estimation window over the
      first `mass_matrix_window` of warm-up, the step-size adaptation never
      restarted (session 4's rows; under-adapts the step size).
    mass_matrix_window: `'single'` only: the fraction of warm-up whose
      states estimate the diagonal mass matrix.
    trajectory: HMC only: `'fixed'` (`num_leapfrog_steps` per proposal),
      `'jittered'` or `'adapted'` (ChEES) trajectory length.
    trajectory_length: the (starting) trajectory length in time; 0 means
      `num_leapfrog_steps * step_size`.
    jitter: each jittered proposal integrates for `u * length`, with `u`
      in `[1 - jitter, 1]` from a Halton sequence over the iterations (TFP's
      default: deterministic, spread evenly, shared by all chains).
    max_tree_depth: NUTS only: at most `2**max_tree_depth - 1` leapfrog steps
      per proposal.
    max_leapfrog_steps: jittered and adapted trajectories: at most this
      many leapfrog steps per proposal, warm-up included (ChEES may ask for
      very long trajectories, and a step size collapsing in warm-up makes
      any trajectory of fixed length long; the default is the library's).
    cap_leapfrogs: whether `max_leapfrog_steps` caps every jittered or
      adapted proposal (warm-up included); False is TFP's own behaviour,
      which clips only an adapted length, at the step size of the moment.
      Runs started before the field existed are read as False and resume
      with the kernel they started with.
  """
  num_results: int = 250
  num_burnin_steps: int = 200
  num_leapfrog_steps: int = 10
  step_size: float = 0.01
  thinning: int = 1
  num_chains: int = 2
  target_accept_prob: float = 0.75
  prior_scale: float = 1.0
  seed: int = 0
  segment_size: int = 50
  warm_up_checkpoint_every: int = 0
  jit_compile: bool = dataclasses.field(default_factory=xla.default)
  # Sampler settings (`mcmc.kernels`); the defaults are the plain sampler
  # every earlier run used, so their run descriptions still match.
  kernel: str = 'hmc'
  mass_matrix: str = 'identity'
  mass_matrix_adaptation: str = 'windowed'
  mass_matrix_window: float = 0.6
  trajectory: str = 'fixed'
  trajectory_length: float = 0.0
  jitter: float = 1.0
  max_tree_depth: int = 6
  max_leapfrog_steps: int = 1000
  cap_leapfrogs: bool = True

  @staticmethod
  def legacy_values(saved: dict) -> dict:
    """Values of fields a run description from older code lacks.

    A field added after runs were started is read as its default, unless
    its default changed what such a run did: a diagonal mass matrix was
    adapted in one window before `mass_matrix_adaptation` existed, and
    leapfrog counts were not capped before `cap_leapfrogs` (see
    `mcmc.checkpoints`).
    """
    legacy = {'cap_leapfrogs': False}
    if saved.get('mass_matrix') == 'diagonal':
      legacy['mass_matrix_adaptation'] = 'single'
    return legacy

  def validate(self):
    for name in ('num_results', 'num_leapfrog_steps', 'thinning', 'num_chains',
                 'segment_size'):
      validate.integer(f'HMCConfig.{name}', getattr(self, name), 1)
    for name in ('num_burnin_steps', 'warm_up_checkpoint_every'):
      validate.integer(f'HMCConfig.{name}', getattr(self, name), 0)
    validate.positive('HMCConfig.step_size', self.step_size,
                      'The initial step size must be positive, e.g. 0.01.')
    validate.positive('HMCConfig.prior_scale', self.prior_scale,
                      'The prior standard deviation, e.g. 1.0.')
    validate.open_probability('HMCConfig.target_accept_prob',
                              self.target_accept_prob, 'e.g. 0.75.')
    validate.seed('HMCConfig.seed', self.seed)
    validate.one_of('HMCConfig.kernel', self.kernel, kernels.KERNELS)
    validate.one_of('HMCConfig.mass_matrix', self.mass_matrix,
                    kernels.MASS_MATRICES)
    validate.one_of('HMCConfig.trajectory', self.trajectory,
                    kernels.TRAJECTORIES)
    if self.kernel == 'nuts' and self.trajectory != 'fixed':
      validate.fail('HMCConfig.trajectory', self.trajectory,
                    "NUTS chooses its own trajectory, so it must be 'fixed'",
                    "Drop the trajectory setting, or use kernel='hmc'.")
    validate.one_of('HMCConfig.mass_matrix_adaptation',
                    self.mass_matrix_adaptation,
                    kernels.MASS_MATRIX_ADAPTATIONS)
    validate.number('HMCConfig.mass_matrix_window', self.mass_matrix_window,
                    0.0, 1.0, exclusive_minimum=True, exclusive_maximum=True,
                    fix='e.g. 0.6: the first 60% of warm-up, the rest tunes '
                    'the step size to the new mass matrix.')
    if self.mass_matrix == 'diagonal' and self.num_burnin_steps < 20:
      # A variance estimated from a handful of states can be 0, which
      # freezes the chain (zero precision).
      validate.fail('HMCConfig.num_burnin_steps', self.num_burnin_steps,
                    'a diagonal mass matrix is estimated during warm-up, '
                    'which needs at least 20 steps',
                    "Use num_burnin_steps >= 20, or mass_matrix='identity'.")
    if (self.mass_matrix == 'diagonal' and
        self.mass_matrix_adaptation == 'windowed' and
        self.num_burnin_steps < kernels.MIN_WINDOWED_BURNIN_STEPS):
      # TFP's first mass-matrix window is a twentieth of warm-up: with 1 or
      # 2 states its variance is 0 or nearly, the step size collapses and a
      # jittered trajectory takes millions of leapfrog steps (seen: 20
      # warm-up steps never finished on a 3-d Gaussian).
      validate.fail('HMCConfig.num_burnin_steps', self.num_burnin_steps,
                    'the windowed mass-matrix adaptation needs at least '
                    f'{kernels.MIN_WINDOWED_BURNIN_STEPS} warm-up steps (its '
                    'first window holds a twentieth of them)',
                    f'Use num_burnin_steps >= '
                    f'{kernels.MIN_WINDOWED_BURNIN_STEPS}, or '
                    "mass_matrix_adaptation='single'.")
    validate.number('HMCConfig.trajectory_length', self.trajectory_length,
                    0.0, fix='0 means num_leapfrog_steps * step_size.')
    validate.number('HMCConfig.jitter', self.jitter, 0.0, 1.0,
                    fix='e.g. 1.0 (uniform in [0, L]) or 0 (no jitter).')
    validate.integer('HMCConfig.max_tree_depth', self.max_tree_depth, 1, 12,
                     "e.g. 6: at most 63 leapfrog steps per proposal.")
    validate.integer('HMCConfig.max_leapfrog_steps', self.max_leapfrog_steps,
                     1, fix='e.g. 100.')


# The driver's result, under the name this module has always used.
HMCResult = driver.SampleResult
sample = driver.sample
_phase_seed = driver.phase_seed


def network_log_joint(architecture: networks.Architecture, x, y,
                      prior_scale: float = 1.0) -> Callable:
  """The log-joint of weights given the full training set.

  Args:
    architecture: the network description.
    x: all training inputs `[N, *input_shape]`.
    y: all training labels `[N]`.
    prior_scale: standard deviation of the Gaussian prior.

  Returns:
    `log_joint(*params) -> [C]`, for weights with a leading chain axis C.
  """
  x, y = ensemble_lib.check_inputs(x, architecture.input_shape, y,
                                   architecture.num_classes)
  one_hot = tf.one_hot(y, architecture.num_classes)
  prior = tfp.distributions.Normal(0.0, float(prior_scale))

  def log_joint(*params):
    log_likelihood = tf.reduce_sum(
        networks.log_probs(architecture, params, x) * one_hot, axis=[-2, -1])
    log_prior = tf.add_n([
        tf.reduce_sum(prior.log_prob(p), axis=list(range(1, len(p.shape))))
        for p in params])
    return log_likelihood + log_prior

  return log_joint


# Chain starts `initial_network_state` draws.
INITS = ('he_normal', 'uniform')


def initial_network_state(architecture: networks.Architecture,
                          num_chains: int, seed,
                          init: str = 'he_normal') -> List[tf.Tensor]:
  """One start per chain: `'he_normal'` weights and zero biases, or
  `'uniform'`: every parameter uniform in [-2, 2], Pyro's `init_to_uniform`,
  from which the original code's chains started (it saturates the softmax
  of a wide net; see `original_hmc`)."""
  validate.one_of('init', init, INITS)
  if init == 'uniform':
    return [tf.random.stateless_uniform(
        (num_chains,) + shape,
        tf.random.experimental.stateless_fold_in(seed, index), -2.0, 2.0)
            for index, (_, shape) in enumerate(architecture.param_shapes())]
  state = []
  for index, (name, shape) in enumerate(architecture.param_shapes()):
    if name.endswith('bias'):
      state.append(tf.zeros((num_chains,) + shape))
      continue
    fan_in = int(np.prod(shape[:-1]))
    state.append(tf.random.stateless_normal(
        (num_chains,) + shape,
        tf.random.experimental.stateless_fold_in(seed, index),
        stddev=np.sqrt(2.0 / fan_in)))
  return state


def has_checkpoint(checkpoint_dir: Optional[str]) -> bool:
  """Whether `checkpoint_dir` holds a started run (so no start state needed).

  A run is started once warm-up has checkpointed (`warm_up`, written every
  `warm_up_checkpoint_every` steps) or finished (`state`).
  """
  return bool(checkpoint_dir) and any(
      os.path.isdir(os.path.join(checkpoint_dir, name + suffix))
      for name in ('state', 'warm_up') for suffix in ('', '.old'))


def fit(architecture: networks.Architecture, x, y, config: HMCConfig,
        checkpoint_dir: Optional[str] = None, log_dir: Optional[str] = None,
        stop_after_phases: Optional[int] = None,
        initial_state: Optional[Sequence] = None, init_description: str = '',
        stop_after_warm_up_steps: Optional[int] = None,
        strategy: Optional[tf.distribute.Strategy] = None,
        init: str = 'he_normal'):
  """HMC over the weights of `architecture` on the full training set.

  Args:
    architecture: the network description.
    x: all training inputs `[N, *input_shape]` in [0, 1].
    y: all training labels `[N]`.
    config: an `HMCConfig`.
    checkpoint_dir: where to checkpoint and resume; one writer at a time
      (a second process, or call, on it raises `files.WorkdirBusy`).
    log_dir: optional TensorBoard directory.
    stop_after_phases: see `sample`.
    stop_after_warm_up_steps: see `sample`.
    initial_state: weights with a leading chain axis to start from (e.g. SGD
      solutions, one per chain); draws of `init` if None. Not needed when
      resuming (see `has_checkpoint`).
    init_description: how `initial_state` was made, kept with the checkpoint
      so that resuming with another start is refused.
    strategy: optional `tf.distribute.Strategy`: the log-joint and its
      gradient are then summed across its replicas, each holding a shard of
      the training data (`mcmc.distributed.sharded_log_joint`); the samples
      equal the one-device ones within float rounding. The sharded target
      cannot be XLA-compiled, so the chain runs with `jit_compile=False`
      (logged when the config asked for XLA; the checkpoint records the
      setting that ran).
    init: without `initial_state`, how each chain's start is drawn (a key
      of `INITS`, see `initial_network_state`); kept with the checkpoint.

  Returns:
    `(ensemble, result)`: the kept samples as a `PosteriorEnsemble` (samples
    ordered step by step, chains interleaved) and the `HMCResult`; or None
    when stopped early.
  """
  x = validate.pixels('x', x)
  y = validate.labels('y', y, architecture.num_classes)
  if strategy is None:
    target = network_log_joint(architecture, x, y, config.prior_scale)
  else:
    target = distributed.sharded_log_joint(architecture, x, y,
                                           config.prior_scale, strategy)
    if config.jit_compile:
      logging.info('HMC across %d replicas: running with jit_compile=False '
                   '(XLA would compile the replicas into one single-device '
                   'program).', strategy.num_replicas_in_sync)
      config = dataclasses.replace(config, jit_compile=False)
  if initial_state is None:
    # Also the shape template when resuming a run started from elsewhere.
    initial = initial_network_state(architecture, config.num_chains,
                                    _phase_seed(config.seed, 1 << 20), init)
  else:
    initial = [tf.convert_to_tensor(s, tf.float32) for s in initial_state]
    if int(initial[0].shape[0]) != config.num_chains:
      raise ValueError(f'initial_state has {initial[0].shape[0]} chains, the '
                       f'config {config.num_chains}.')
  identity = json.dumps({
      'architecture': json.loads(architecture.to_json()),
      'num_train': int(len(x)),
      'data_sum': round(float(np.sum(x, dtype=np.float64)), 3),
      'label_sum': int(np.sum(y, dtype=np.int64)),
      'init': init_description or ('given' if initial_state is not None
                                   else init),
  }, sort_keys=True)
  data_digest = hashlib.sha256(np.ascontiguousarray(x).tobytes() + b'|' +
                               np.ascontiguousarray(y).tobytes()).hexdigest()
  result = sample(target, initial, config, checkpoint_dir, identity, log_dir,
                  stop_after_phases,
                  stop_after_warm_up_steps=stop_after_warm_up_steps,
                  data_digest=data_digest)
  if result is None:
    return None
  params = [np.reshape(s, (-1,) + s.shape[2:]) for s in result.samples]
  ensemble = ensemble_lib.ArchitectureEnsemble(architecture, params, method='hmc')
  return ensemble, result

