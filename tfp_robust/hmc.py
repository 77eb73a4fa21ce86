"""Hamiltonian Monte Carlo over network weights with `tfp.mcmc`.

The target is the log-joint on the **full** training set (never a
mini-batch): a Gaussian prior on every weight plus the categorical
log-likelihood of all N training points. Several chains run at once: the
chain axis is the sample axis of `networks.forward`, so one compiled call
evaluates all chains.

Sampling runs in two phases. Warm-up adapts the step size with
`DualAveragingStepSizeAdaptation`; the kept samples then come in segments
with the adapted step size held fixed. After every warm-up chunk and every
segment the state is checkpointed (written to a temporary directory and renamed), and
each phase has a seed derived from the run's seed and the phase's index, so a
run killed at any point resumes where it stopped and ends with the same
samples as an uninterrupted run.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import time
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_robust import ensemble as ensemble_lib
from tfp_robust import files
from tfp_robust import networks
from tfp_robust import seeds
from tfp_robust import summaries
from tfp_robust import validate


@dataclasses.dataclass
class HMCConfig:
  """HMC settings.

  Attributes:
    num_results: kept samples per chain.
    num_burnin_steps: warm-up steps, during which the step size adapts.
    num_leapfrog_steps: leapfrog steps per proposal.
    step_size: initial step size for the adaptation.
    thinning: keep every `thinning`-th state after warm-up.
    num_chains: independent chains, run at once.
    target_accept_prob: acceptance rate the adaptation aims for.
    prior_scale: standard deviation of the Gaussian prior on every weight.
    seed: the run's seed; phases derive theirs from it.
    segment_size: kept samples per checkpointed segment.
    warm_up_checkpoint_every: checkpoint (and log) warm-up every this many
      steps; 0 runs warm-up as one compiled loop, checkpointed at its end.
    jit_compile: compile the chain with XLA.
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
  jit_compile: bool = True

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


@dataclasses.dataclass
class HMCResult:
  """Kept states `[K, C, ...]` per parameter, traces `[K, C]`, diagnostics."""
  samples: List[np.ndarray]
  log_prob: np.ndarray
  is_accepted: np.ndarray
  step_size: float
  diagnostics: Dict[str, float]


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


def initial_network_state(architecture: networks.Architecture,
                          num_chains: int, seed) -> List[tf.Tensor]:
  """He-normal weights and zero biases, one draw per chain."""
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


def _phase_seed(seed, phase):
  return tf.random.experimental.stateless_fold_in(seeds.stateless_seed(seed),
                                                  phase)


_RUN_FILE = 'run.json'


def _is_checkpoint_name(name: str) -> bool:
  """Whether `name` is one of the checkpoints `_Checkpoints` writes."""
  base = name[:-len('.old')] if name.endswith('.old') else name
  return base in ('state', 'warm_up', 'warm_up_trace') or (
      base.startswith('segment_') and base[len('segment_'):].isdigit())


class _Checkpoints:
  """State after each phase, and each segment's samples, in `directory`.

  `run.json` describes the run: `config` and `target` (what produced the
  checkpoints; a resume must match both), plus, for runs started by this
  version, `data_sha256` (a SHA-256 of the training data, checked on resume
  when present) and `code_version` (a different one is logged). A directory
  holding checkpoints but no readable `run.json` is refused: nothing would
  say which run they belong to.
  """

  def __init__(self, directory: Optional[str], config: HMCConfig,
               identity: str, data_digest: str = ''):
    self.directory = directory
    if not directory:
      return
    os.makedirs(directory, exist_ok=True)
    description = json.loads(json.dumps(
        {'config': dataclasses.asdict(config), 'target': identity}))
    path = os.path.join(directory, _RUN_FILE)
    fresh = ('Delete the directory to start afresh, or use another '
             'checkpoint directory.')
    if not os.path.exists(path):
      started = sorted(name for name in os.listdir(directory)
                       if _is_checkpoint_name(name))
      if started:
        files.invalid(path, 'it is missing, but the directory holds HMC '
                      f'checkpoints ({", ".join(started[:4])}'
                      f'{", ..." if len(started) > 4 else ""}), so nothing '
                      'says which configuration and data produced them', fresh)
      files.write_text_atomically(path, json.dumps(dict(
          description, data_sha256=data_digest,
          code_version=files.code_version()), indent=2))
      return
    saved = files.read_json(path, 'an HMC run description')
    if not (isinstance(saved, dict) and 'config' in saved and
            'target' in saved):
      files.invalid(path, 'it should be a JSON object with the run\'s '
                    '"config" and "target"', fresh)
    recorded = {'config': saved['config'], 'target': saved['target']}
    if recorded != description:
      files.invalid(path, 'the HMC checkpoint in this directory was written '
                    f'by a different configuration or target ({recorded})',
                    fresh)
    if data_digest and saved.get('data_sha256') and (
        saved['data_sha256'] != data_digest):
      files.invalid(path, 'the HMC checkpoint in this directory was written '
                    'for different training data (data SHA-256 '
                    f'{saved["data_sha256"][:12]}..., now '
                    f'{data_digest[:12]}...)', fresh)
    if saved.get('code_version') not in (None, files.code_version()):
      logging.warning('HMC: resuming %s, started by %s, with %s.', directory,
                      saved['code_version'], files.code_version())

  def _write(self, name, tensors):
    if not self.directory:
      return
    final = os.path.join(self.directory, name)
    staging = files.staging_dir(self.directory, name)
    try:
      variables = {f't{i}': tf.Variable(t) for i, t in enumerate(tensors)}
      tf.train.Checkpoint(**variables).write(os.path.join(staging, 'ckpt'))
    except BaseException:
      shutil.rmtree(staging, ignore_errors=True)
      raise
    # The previous version stays readable (as .old) until the new one is in.
    old = final + '.old'
    if os.path.exists(final):
      shutil.rmtree(old, ignore_errors=True)
      os.rename(final, old)
    os.rename(staging, final)
    shutil.rmtree(old, ignore_errors=True)

  def _read(self, name, templates):
    path = os.path.join(self.directory or '', name)
    if self.directory and not os.path.isdir(path) and os.path.isdir(
        path + '.old'):
      path += '.old'  # Killed between the two renames of `_write`.
    if not self.directory or not os.path.isdir(path):
      return None
    variables = {f't{i}': tf.Variable(tf.zeros_like(t))
                 for i, t in enumerate(templates)}
    try:
      tf.train.Checkpoint(**variables).read(
          os.path.join(path, 'ckpt')).assert_existing_objects_matched()
    except (AssertionError, ValueError, IndexError, OSError,
            tf.errors.OpError) as error:
      files.invalid(path, 'the HMC checkpoint cannot be read '
                    f'({type(error).__name__}: {error}); it is truncated, '
                    'corrupt or from another run',
                    f'Delete {self.directory!r} to start the run afresh.')
    return [variables[f't{i}'].read_value() for i in range(len(templates))]

  def save_state(self, state, step_size, phases_done):
    self._write('state', list(state) + [tf.constant(step_size, tf.float32),
                                        tf.constant(phases_done, tf.int64)])

  def load_state(self, template_state):
    values = self._read('state', list(template_state) +
                        [tf.constant(0.0), tf.constant(0, tf.int64)])
    if values is None:
      return None
    return values[:-2], float(values[-2]), int(values[-1])

  def save_warm_up(self, state, results, seed, accepted, steps_done):
    self._write('warm_up', list(state) + [
        tf.convert_to_tensor(t) for t in tf.nest.flatten(results)] + [
            seed, tf.constant(accepted, tf.float32),
            tf.constant(steps_done, tf.int64)])

  def load_warm_up(self, template_state, template_results, template_seed):
    flat_results = [tf.convert_to_tensor(t)
                    for t in tf.nest.flatten(template_results)]
    values = self._read('warm_up', list(template_state) + flat_results + [
        template_seed, tf.constant(0.0), tf.constant(0, tf.int64)])
    if values is None:
      return None
    count = len(template_state)
    results = tf.nest.pack_sequence_as(template_results,
                                       values[count:count + len(flat_results)])
    return (values[:count], results, values[-3], float(values[-2]),
            int(values[-1]))

  def save_warm_up_trace(self, trace):
    self._write('warm_up_trace', [tf.convert_to_tensor(t) for t in trace])

  def load_warm_up_trace(self, config):
    """The warm-up trace, or None (none yet, or an older run's checkpoint)."""
    templates = [tf.zeros((config.num_burnin_steps, config.num_chains)),
                 tf.zeros((config.num_burnin_steps, config.num_chains)),
                 tf.zeros((config.num_burnin_steps,))]
    try:
      values = self._read('warm_up_trace', templates)
    except (AssertionError, ValueError, tf.errors.OpError) as error:
      logging.warning('HMC: the warm-up trace in %s is unreadable (%s); '
                      'TensorBoard will lack the warm-up.', self.directory,
                      error)
      return None
    return None if values is None else [v.numpy() for v in values]

  def save_segment(self, index, samples, log_prob, is_accepted):
    self._write(f'segment_{index:05d}', list(samples) + [log_prob, is_accepted])

  def load_segment(self, index, templates):
    return self._read(f'segment_{index:05d}', templates)


def sample(target_log_prob_fn: Callable, initial_state: Sequence[tf.Tensor],
           config: HMCConfig, checkpoint_dir: Optional[str] = None,
           target_identity: str = '', log_dir: Optional[str] = None,
           stop_after_phases: Optional[int] = None,
           stop_after_warm_up_steps: Optional[int] = None,
           data_digest: str = '') -> Optional[HMCResult]:
  """Runs adaptive warm-up, then kept segments, with checkpoints.

  Args:
    target_log_prob_fn: `f(*state) -> [C]` log-density, one value per chain.
    initial_state: tensors with a leading chain axis C.
    config: an `HMCConfig`.
    checkpoint_dir: where to checkpoint; a run there resumes.
    target_identity: a string naming the target (data, architecture), kept
      with the checkpoint so that a mismatched resume is refused.
    log_dir: optional TensorBoard directory.
    stop_after_phases: stop (returning None) once this many phases (warm-up
      counts as one) are done in total; used to test resumption.
    stop_after_warm_up_steps: likewise, stop inside warm-up once this many
      warm-up steps (a multiple of `warm_up_checkpoint_every`) are done.
    data_digest: optional SHA-256 of the target's data, kept with the
      checkpoint (a resume on other data is refused).

  Returns:
    An `HMCResult`, or None when stopped early.
  """
  config.validate()
  checkpoints = _Checkpoints(checkpoint_dir, config, target_identity,
                            data_digest)
  state = [tf.convert_to_tensor(s, tf.float32) for s in initial_state]
  num_segments = -(-config.num_results // config.segment_size)
  step_size, phases_done = config.step_size, 0
  restored = checkpoints.load_state(state)
  if restored is not None:
    state, step_size, phases_done = restored
    logging.info('HMC: resuming from %s after %d of %d phases.',
                 checkpoint_dir, phases_done, num_segments + 1)
  if stop_after_phases is not None and phases_done >= stop_after_phases:
    return None
  writer = summaries.open_writer(log_dir) if log_dir else None
  leapfrogs_per_result = config.num_leapfrog_steps * config.thinning

  def first_iteration(segment):
    # The MCMC iteration of a segment's first kept sample (warm-up is 0..B-1).
    return (config.num_burnin_steps + segment * config.segment_size *
            config.thinning + config.thinning - 1)

  def write_segment(segment, log_prob, accepted, segment_step_size):
    if writer:
      summaries.hmc_trace(writer, log_prob, accepted, segment_step_size,
                          first_iteration(segment), config.thinning)

  if writer and phases_done >= 1:
    # A resumed run: write again what the killed run had written (its event
    # files were dropped by `open_writer`), so no series is duplicated.
    trace = checkpoints.load_warm_up_trace(config)
    if trace is not None:
      summaries.hmc_trace(writer, trace[0], trace[1], trace[2], 0)
    for segment in range(phases_done - 1):
      values = checkpoints.load_segment(segment, _segment_templates(
          config, state, segment))
      if values is not None:
        write_segment(segment, values[-2].numpy(), values[-1].numpy(),
                      step_size)

  if phases_done == 0:
    start = time.time()
    warmed_up = _warm_up(target_log_prob_fn, state, step_size, config,
                         checkpoints, stop_after_warm_up_steps, writer)
    if warmed_up is None:
      return None
    state, step_size, accept = warmed_up
    elapsed = time.time() - start
    logging.info('HMC warm-up done in %.1fs: acceptance %.3f, step size '
                 '%.3g', elapsed, accept, step_size)
    phases_done = 1
    checkpoints.save_state(state, step_size, phases_done)
    if stop_after_phases is not None and phases_done >= stop_after_phases:
      return None

  run_segment = _fixed_step_chain(target_log_prob_fn, config)
  segment_seconds = []
  segments = {}
  for segment in range(phases_done - 1, num_segments):
    size = min(config.segment_size,
               config.num_results - segment * config.segment_size)
    start = time.time()
    samples, log_prob, accepted = run_segment(
        state, tf.constant(step_size, tf.float32), size,
        _phase_seed(config.seed, segment + 1))
    elapsed = time.time() - start
    segment_seconds.append(elapsed / (size * leapfrogs_per_result))
    state = [s[-1] for s in samples]
    segments[segment] = list(samples) + [log_prob, accepted]
    checkpoints.save_segment(segment, samples, log_prob, accepted)
    phases_done = segment + 2
    checkpoints.save_state(state, step_size, phases_done)
    rate = float(tf.reduce_mean(tf.cast(accepted, tf.float32)))
    logging.info('HMC segment %d/%d: %d samples x %d chains in %.1fs '
                 '(%.1f samples/min per chain), acceptance %.3f, '
                 'mean log-joint %.1f', segment + 1, num_segments, size,
                 config.num_chains, elapsed, 60 * size / max(elapsed, 1e-9),
                 rate, float(tf.reduce_mean(log_prob)))
    write_segment(segment, log_prob.numpy(), accepted.numpy(), step_size)
    if stop_after_phases is not None and phases_done >= stop_after_phases:
      return None

  parts = []
  for segment in range(num_segments):
    # Move each segment out of `segments` so that one copy is alive.
    if segment not in segments:
      segments[segment] = checkpoints.load_segment(
          segment, _segment_templates(config, state, segment))
      if segments[segment] is None:
        raise ValueError(f'Segment {segment} is missing from the HMC '
                         f'checkpoint in {checkpoint_dir!r}; delete the '
                         'directory to start afresh.')
    parts.append([t.numpy() for t in segments.pop(segment)])
  columns = [np.concatenate(column, axis=0) for column in zip(*parts)]
  samples, log_prob, accepted = columns[:-2], columns[-2], columns[-1]
  report = diagnostics(samples, log_prob, accepted)
  report['step_size'] = step_size
  # Timed on the segments this process ran; NaN when all were read back, so
  # a resumed run reports the same fields as an uninterrupted one.
  report['seconds_per_leapfrog_step'] = (
      float(np.median(segment_seconds)) if segment_seconds else float('nan'))
  report['seconds_per_kept_sample'] = (report['seconds_per_leapfrog_step'] *
                                       leapfrogs_per_result)
  logging.info('HMC diagnostics: %s', report)
  if writer:
    summaries.scalars(writer, report, first_iteration(num_segments) -
                      config.thinning, prefix='hmc/diagnostics/')
    writer.flush()
  return HMCResult(samples, log_prob, accepted, step_size, report)


def _segment_templates(config, state, segment):
  size = min(config.segment_size,
             config.num_results - segment * config.segment_size)
  return [tf.zeros((size,) + tuple(s.shape)) for s in state] + [
      tf.zeros((size, config.num_chains)),
      tf.zeros((size, config.num_chains), tf.bool)]


def _warm_up_body(kernel):
  """One adaptive step as a `tf.while_loop` body.

  It counts acceptances and traces, per step, each chain's log-joint and
  acceptance and the step size the step used, into TensorArrays.
  """
  def body(step, state, results, accepted, seed, trace):
    seed, step_seed = tfp.random.split_seed(seed)
    used_step_size = tf.cast(
        tf.reshape(tf.nest.flatten(results.new_step_size)[0], []), tf.float32)
    state, results = kernel.one_step(state, results, seed=step_seed)
    is_accepted = tf.cast(results.inner_results.is_accepted, tf.float32)
    accepted += tf.reduce_mean(is_accepted)
    trace = (
        trace[0].write(step,
                       results.inner_results.accepted_results.target_log_prob),
        trace[1].write(step, is_accepted),
        trace[2].write(step, used_step_size))
    return step + 1, state, results, accepted, seed, trace
  return body


def _empty_trace(num_steps, num_chains):
  return (tf.TensorArray(tf.float32, num_steps, element_shape=[num_chains]),
          tf.TensorArray(tf.float32, num_steps, element_shape=[num_chains]),
          tf.TensorArray(tf.float32, num_steps, element_shape=[]))


def _warm_up(target_log_prob_fn, state, step_size, config, checkpoints,
             stop_after_steps=None, writer=None):
  """Adapts the step size; returns the last state, step size and acceptance.

  A compiled loop over `one_step` (warm-up states are not posterior samples,
  so none is stored; the per-step trace of log-joint, acceptance and step
  size is, for TensorBoard). With `config.warm_up_checkpoint_every` = k > 0
  the loop runs in chunks of k steps and the state, the kernel's results and
  the seed are checkpointed after each, so a long warm-up resumes where it
  stopped and logs its progress; k = 0 runs one loop with no host round
  trips. Returns None when stopped after `stop_after_steps` steps (to test
  resumption).
  """
  if config.num_burnin_steps == 0:
    return state, step_size, float('nan')
  kernel = tfp.mcmc.DualAveragingStepSizeAdaptation(
      tfp.mcmc.HamiltonianMonteCarlo(target_log_prob_fn, step_size,
                                     config.num_leapfrog_steps),
      num_adaptation_steps=config.num_burnin_steps,
      target_accept_prob=config.target_accept_prob)
  body = _warm_up_body(kernel)
  seed = _phase_seed(config.seed, 0)
  total, chains = config.num_burnin_steps, config.num_chains
  # The whole warm-up's trace; rows [0, done) are filled.
  trace = [np.zeros((total, chains), np.float32),
           np.zeros((total, chains), np.float32),
           np.zeros((total,), np.float32)]

  def record(first, chunk_trace):
    rows = int(chunk_trace[0].shape[0])
    for full, part in zip(trace, chunk_trace):
      full[first:first + rows] = part.numpy()
    checkpoints.save_warm_up_trace(trace)
    if writer:
      summaries.hmc_trace(writer, trace[0][first:first + rows],
                          trace[1][first:first + rows],
                          trace[2][first:first + rows], first)

  if not config.warm_up_checkpoint_every:
    @tf.function(jit_compile=config.jit_compile)
    def run_all(state, seed):
      _, state, results, accepted, _, steps = tf.while_loop(
          lambda step, *_: step < total, body,
          (0, state, kernel.bootstrap_results(state), 0.0, seed,
           _empty_trace(total, chains)))
      return (state, accepted / total, results.new_step_size,
              [t.stack() for t in steps])

    last, accept, new_step_size, steps = run_all(state, seed)
    record(0, steps)
    return last, float(new_step_size), float(accept)

  results = None
  accepted, done = 0.0, 0
  restored = checkpoints.load_warm_up(state, kernel.bootstrap_results(state),
                                      seed) if checkpoints.directory else None
  if restored is not None:
    state, results, seed, accepted, done = restored
    logging.info('HMC warm-up: resuming after %d of %d steps.', done, total)
    saved = checkpoints.load_warm_up_trace(config)
    if saved is not None:
      # Rows past `done` may come from a chunk whose state was not saved;
      # that chunk runs again and writes the same values.
      for full, part in zip(trace, saved):
        full[:done] = part[:done]
      if writer:
        summaries.hmc_trace(writer, trace[0][:done], trace[1][:done],
                            trace[2][:done], 0)
  compiled = {}

  def run_chunk(state, results, seed, num_steps):
    # The first chunk bootstraps the kernel inside the compiled call; one
    # seed stream runs through all chunks.
    key = (num_steps, results is None)
    if key not in compiled:
      @tf.function(jit_compile=config.jit_compile)
      def chunk(state, results, seed):
        if results is None:
          results = kernel.bootstrap_results(state)
        _, state, results, accepted, seed, steps = tf.while_loop(
            lambda step, *_: step < num_steps, body,
            (0, state, results, 0.0, seed, _empty_trace(num_steps, chains)))
        return state, results, accepted, seed, [t.stack() for t in steps]
      compiled[key] = chunk
    return compiled[key](state, results, seed)

  while done < total:
    num_steps = min(config.warm_up_checkpoint_every, total - done)
    start = time.time()
    state, results, chunk_accepted, seed, steps = run_chunk(
        state, results, seed, num_steps)
    elapsed = time.time() - start
    accepted += float(chunk_accepted)
    # The trace first: a kill between the two saves repeats this chunk.
    record(done, steps)
    done += num_steps
    checkpoints.save_warm_up(state, results, seed, accepted, done)
    logging.info('HMC warm-up %d/%d: %.1f ms per leapfrog step, acceptance '
                 '%.3f, step size %.3g', done, total,
                 1e3 * elapsed / (num_steps * config.num_leapfrog_steps),
                 float(chunk_accepted) / num_steps,
                 float(results.new_step_size))
    if stop_after_steps is not None and done >= stop_after_steps:
      return None
  return state, float(results.new_step_size), accepted / done


def _fixed_step_chain(target_log_prob_fn, config):
  """A compiled `run(state, step_size, num_results, seed)` for kept samples."""
  compiled = {}

  def run(state, step_size, num_results, seed):
    if num_results not in compiled:
      @tf.function(jit_compile=config.jit_compile)
      def chain(state, step_size, seed):
        kernel = tfp.mcmc.HamiltonianMonteCarlo(
            target_log_prob_fn, step_size, config.num_leapfrog_steps)
        samples, (log_prob, accepted) = tfp.mcmc.sample_chain(
            num_results, state, kernel=kernel,
            num_steps_between_results=config.thinning - 1,
            trace_fn=lambda _, r: (r.accepted_results.target_log_prob,
                                   r.is_accepted),
            seed=seed)
        return samples, log_prob, accepted
      compiled[num_results] = chain
    return compiled[num_results](state, step_size, seed)

  return run


def diagnostics(samples: Sequence[np.ndarray], log_prob: np.ndarray,
                is_accepted: np.ndarray,
                max_coordinates: int = 10000) -> Dict[str, float]:
  """Acceptance, effective sample size and R-hat of kept samples `[K, C, ...]`.

  ESS is `tfp.mcmc.effective_sample_size` (cross-chain when there are several
  chains); R-hat is `tfp.mcmc.potential_scale_reduction` over chains, for
  C > 1. Weight-space figures use a fixed random subset of at most
  `max_coordinates` weights: FFT-based ESS over every weight of a paper-scale
  net would need tens of GB.
  """
  num_chains = log_prob.shape[1]
  cross_chain = 1 if num_chains > 1 else None
  sizes = [int(np.prod(s.shape[2:])) for s in samples]
  total = sum(sizes)
  chosen = np.sort(np.random.RandomState(0).choice(
      total, min(total, max_coordinates), replace=False))
  offsets = np.cumsum([0] + sizes)
  columns = []
  for index, s in enumerate(samples):
    inside = chosen[(chosen >= offsets[index]) & (chosen < offsets[index + 1])]
    if inside.size:
      columns.append(np.reshape(s, s.shape[:2] + (-1,))[:, :, inside -
                                                           offsets[index]])
  flat = tf.convert_to_tensor(np.concatenate(columns, axis=-1), tf.float32)
  ess = tfp.mcmc.effective_sample_size(flat, cross_chain_dims=cross_chain)
  if cross_chain is None:
    ess = ess * num_chains
  ess_log_prob = tfp.mcmc.effective_sample_size(
      tf.convert_to_tensor(log_prob), cross_chain_dims=cross_chain)
  result = {
      'acceptance_rate': float(np.mean(is_accepted)),
      'num_kept_samples': int(log_prob.shape[0] * num_chains),
      'ess_coordinates': int(flat.shape[-1]),
      'ess_min': float(tf.reduce_min(ess)),
      'ess_median': float(np.median(ess.numpy())),
      'ess_log_joint': float(tf.reduce_sum(ess_log_prob)) if cross_chain is None
                       else float(ess_log_prob),
  }
  if num_chains > 1 and log_prob.shape[0] > 1:
    rhat = tfp.mcmc.potential_scale_reduction(flat, independent_chain_ndims=1)
    rhat = rhat.numpy()
    rhat = rhat[np.isfinite(rhat)]
    # Chains that never moved have no finite R-hat at all.
    result['rhat_median'] = float(np.median(rhat)) if rhat.size else np.nan
    result['rhat_max'] = float(np.max(rhat)) if rhat.size else np.nan
    result['rhat_log_joint'] = float(tfp.mcmc.potential_scale_reduction(
        tf.convert_to_tensor(log_prob), independent_chain_ndims=1))
  return result


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
        stop_after_warm_up_steps: Optional[int] = None):
  """HMC over the weights of `architecture` on the full training set.

  Args:
    architecture: the network description.
    x: all training inputs `[N, *input_shape]` in [0, 1].
    y: all training labels `[N]`.
    config: an `HMCConfig`.
    checkpoint_dir: where to checkpoint and resume.
    log_dir: optional TensorBoard directory.
    stop_after_phases: see `sample`.
    stop_after_warm_up_steps: see `sample`.
    initial_state: weights with a leading chain axis to start from (e.g. SGD
      solutions, one per chain); He-normal draws if None. Not needed when
      resuming (see `has_checkpoint`).
    init_description: how `initial_state` was made, kept with the checkpoint
      so that resuming with another start is refused.

  Returns:
    `(ensemble, result)`: the kept samples as a `PosteriorEnsemble` (samples
    ordered step by step, chains interleaved) and the `HMCResult`; or None
    when stopped early.
  """
  x = validate.pixels('x', x)
  y = validate.labels('y', y, architecture.num_classes)
  target = network_log_joint(architecture, x, y, config.prior_scale)
  if initial_state is None:
    # Also the shape template when resuming a run started from elsewhere.
    initial = initial_network_state(architecture, config.num_chains,
                                    _phase_seed(config.seed, 1 << 20))
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
                                   else 'he_normal'),
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


def function_space_diagnostics(ensemble: ensemble_lib.PosteriorEnsemble,
                               num_chains: int, x) -> Dict[str, float]:
  """ESS and R-hat of the predicted class probabilities at inputs `x`.

  Weight-space R-hat of a neural network is dominated by its symmetries
  (chains in permuted modes never agree on a weight even when they agree on
  every prediction), so convergence is better judged on the function.

  Args:
    ensemble: an HMC ensemble as `fit` returns it (samples ordered step by
      step with chains interleaved).
    num_chains: the number of chains C.
    x: inputs `[B, *input_shape]`.

  Returns:
    Median and worst ESS and R-hat over all (input, class) probabilities.
  """
  probs = tf.exp(ensemble.log_probs(x))
  num_steps = ensemble.num_samples // num_chains
  probs = tf.reshape(probs, [num_steps, num_chains, -1])
  # Constant probabilities (saturated softmax) have no defined ESS or R-hat.
  varying = tf.math.reduce_std(probs, axis=[0, 1]) > 1e-6
  probs = tf.boolean_mask(probs, varying, axis=2)
  result = {'fn_fraction_varying': float(tf.reduce_mean(
      tf.cast(varying, tf.float32)))}
  if probs.shape[-1] == 0 or num_steps < 4:
    return result
  cross_chain = 1 if num_chains > 1 else None
  ess = tfp.mcmc.effective_sample_size(probs, cross_chain_dims=cross_chain)
  if cross_chain is None:
    ess = ess * num_chains
  ess = ess.numpy()
  result.update(fn_ess_median=float(np.median(ess)),
                fn_ess_min=float(np.min(ess)))
  if num_chains > 1:
    rhat = tfp.mcmc.potential_scale_reduction(
        probs, independent_chain_ndims=1).numpy()
    result.update(fn_rhat_median=float(np.median(rhat)),
                  fn_rhat_max=float(np.max(rhat)))
  return result
