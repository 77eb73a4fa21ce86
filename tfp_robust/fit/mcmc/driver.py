"""The checkpointed sampling driver: warm-up, then kept segments.

Sampling runs in two phases. Warm-up adapts the sampler (step size, and for
the adaptive samplers of `kernels` the mass matrix or trajectory length);
the kept samples then come in segments. After every warm-up chunk and every
segment the state is checkpointed (`checkpoints`), and each phase has a seed
derived from the run's seed and the phase's index, so a run killed at any
point resumes where it stopped and ends with the same samples as an
uninterrupted run. The driver knows nothing about networks: it samples any
`target_log_prob_fn(*state) -> [C]` with a leading chain axis C.
"""

import dataclasses
import time
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_robust.core import files
from tfp_robust.core import seeds
from tfp_robust.reports import summaries
from tfp_robust.fit.mcmc import checkpoints as checkpoints_lib
from tfp_robust.fit.mcmc import diagnostics as diagnostics_lib
from tfp_robust.fit.mcmc import kernels


@dataclasses.dataclass
class SampleResult:
  """Kept states `[K, C, ...]` per parameter, traces `[K, C]`, diagnostics."""
  samples: List[np.ndarray]
  log_prob: np.ndarray
  is_accepted: np.ndarray
  step_size: float
  diagnostics: Dict[str, float]


def phase_seed(seed, phase):
  """The seed of phase `phase` (0 is warm-up, k > 0 is segment k - 1)."""
  return tf.random.experimental.stateless_fold_in(seeds.stateless_seed(seed),
                                                  phase)


def sample(target_log_prob_fn: Callable, initial_state: Sequence[tf.Tensor],
           config, checkpoint_dir: Optional[str] = None,
           target_identity: str = '', log_dir: Optional[str] = None,
           stop_after_phases: Optional[int] = None,
           stop_after_warm_up_steps: Optional[int] = None,
           data_digest: str = '') -> Optional[SampleResult]:
  """Runs adaptive warm-up, then kept segments, with checkpoints.

  Args:
    target_log_prob_fn: `f(*state) -> [C]` log-density, one value per chain.
    initial_state: tensors with a leading chain axis C.
    config: an `HMCConfig` (its sampler settings: see `kernels`).
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
    A `SampleResult`, or None when stopped early.

  Raises:
    files.WorkdirBusy: another process (or another call in this one) is
      writing to `checkpoint_dir`: one writer per checkpoint directory, as
      for the binaries' work directories (`files.one_writer`).
  """
  config.validate()
  with files.one_writer(checkpoint_dir, 'checkpoint_dir'):
    return _sample(target_log_prob_fn, initial_state, config, checkpoint_dir,
                   target_identity, log_dir, stop_after_phases,
                   stop_after_warm_up_steps, data_digest)


def _sample(target_log_prob_fn, initial_state, config, checkpoint_dir,
            target_identity, log_dir, stop_after_phases,
            stop_after_warm_up_steps, data_digest):
  """`sample`, with `checkpoint_dir` held."""
  checkpoints = checkpoints_lib.Checkpoints(checkpoint_dir, config, target_identity,
                            data_digest)
  state = [tf.convert_to_tensor(s, tf.float32) for s in initial_state]
  num_segments = -(-config.num_results // config.segment_size)
  step_size, phases_done = config.step_size, 0
  plain = kernels.is_plain(config)
  # Adaptive samplers carry their kernel results from segment to segment.
  kernel = None if plain else kernels.warm_up_kernel(
      target_log_prob_fn, config, step_size, state)
  results = None
  restored = checkpoints.load_state(
      state, None if plain else kernels.bootstrap(kernel, state, config))
  if restored is not None:
    state, step_size, phases_done, results = restored
    logging.info('HMC: resuming from %s after %d of %d phases.',
                 checkpoint_dir, phases_done, num_segments + 1)
  timings = checkpoints.load_timings()
  if stop_after_phases is not None and phases_done >= stop_after_phases:
    return None
  writer = summaries.open_writer(log_dir) if log_dir else None

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
                         checkpoints, timings, stop_after_warm_up_steps,
                         writer)
    if warmed_up is None:
      return None
    state, step_size, accept, results = warmed_up
    elapsed = time.time() - start
    logging.info('HMC warm-up done in %.1fs: acceptance %.3f, step size '
                 '%.3g', elapsed, accept, step_size)
    if not plain:
      results = kernels.end_warm_up(results, config)
      length = kernels.trajectory_length(results)
      text = 'n/a' if length is None else f'{float(length):.3g}'
      if length is not None and config.cap_leapfrogs and (
          float(length) > step_size * config.max_leapfrog_steps):
        text += (f' (proposals stop at {config.max_leapfrog_steps} leapfrog '
                 f'steps, {step_size * config.max_leapfrog_steps:.3g})')
      logging.info('Sampler %s: trajectory length %s',
                   kernels.describe(config), text)
    else:
      results = None
    phases_done = 1
    checkpoints.save_state(state, step_size, phases_done, results)
    checkpoints.save_timings(timings)
    if stop_after_phases is not None and phases_done >= stop_after_phases:
      return None

  run_segment = (fixed_step_chain(target_log_prob_fn, config) if plain else
                 _carried_chain(kernel, config))
  segments = {}
  for segment in range(phases_done - 1, num_segments):
    size = min(config.segment_size,
               config.num_results - segment * config.segment_size)
    start = time.time()
    if plain:
      samples, log_prob, accepted = run_segment(
          state, tf.constant(step_size, tf.float32), size,
          phase_seed(config.seed, segment + 1))
      mean_leapfrogs = float(config.num_leapfrog_steps)
    else:
      samples, log_prob, accepted, step_leapfrogs, results = run_segment(
          state, results, size, phase_seed(config.seed, segment + 1))
      mean_leapfrogs = float(tf.reduce_mean(step_leapfrogs))
    elapsed = time.time() - start
    state = [s[-1] for s in samples]
    segments[segment] = list(samples) + [log_prob, accepted]
    checkpoints.save_segment(segment, samples, log_prob, accepted)
    phases_done = segment + 2
    checkpoints.save_state(state, step_size, phases_done, results)
    # After the state: a kill in between loses this segment's time, never
    # counts a segment twice.
    timings['segments'][segment] = {
        'seconds': elapsed, 'iterations': size * config.thinning,
        'leapfrogs': mean_leapfrogs}
    checkpoints.save_timings(timings)
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
  report = diagnostics_lib.diagnostics(samples, log_prob, accepted)
  report['step_size'] = step_size
  report.update(timing_report(timings, config, num_segments))
  mean_leapfrogs = report['leapfrog_steps_per_iteration']
  report['seconds_per_kept_sample'] = (report['seconds_per_leapfrog_step'] *
                                       mean_leapfrogs * config.thinning)
  logging.info('HMC diagnostics: %s', report)
  if writer:
    summaries.scalars(writer, report, first_iteration(num_segments) -
                      config.thinning, prefix='hmc/diagnostics/')
    writer.flush()
  return SampleResult(samples, log_prob, accepted, step_size, report)


def timing_report(timings: Dict, config, num_segments: int) -> Dict:
  """The run's cost from its phase timings (`Checkpoints.save_timings`).

  Segments timed by any process count, so a resumed run reports the whole
  run's cost; a phase whose time was lost (a kill between its checkpoint
  and its timing, or a run from before timings were saved) makes the totals
  NaN while the per-step rates come from the phases that were timed.

  Returns `seconds_per_leapfrog_step` (median over timed segments),
  `leapfrog_steps_per_iteration` (known in advance for fixed trajectories;
  else the mean over timed segments), `warm_up_seconds`, `sampling_seconds`
  (the kept segments) and `sampler_seconds` (both), each NaN when unknown.
  """
  nan = float('nan')
  timed = [timings['segments'][k] for k in sorted(timings['segments'])
           if k < num_segments]
  per_step = [t['seconds'] / max(t['iterations'] * max(t['leapfrogs'], 1.0),
                                 1.0) for t in timed]
  iterations = sum(t['iterations'] for t in timed)
  fixed = config.kernel == 'hmc' and config.trajectory == 'fixed'
  warm_up = (timings['warm_up_seconds'] if config.num_burnin_steps == 0 or (
      timings['warm_up_steps'] >= config.num_burnin_steps and
      timings['warm_up_seconds'] > 0) else nan)
  sampling = (sum(t['seconds'] for t in timed)
              if len(timed) == num_segments else nan)
  return {
      'seconds_per_leapfrog_step': (float(np.median(per_step)) if per_step
                                    else nan),
      'leapfrog_steps_per_iteration': (
          float(config.num_leapfrog_steps) if fixed else
          sum(t['leapfrogs'] * t['iterations'] for t in timed) / iterations
          if iterations else nan),
      'warm_up_seconds': float(warm_up),
      'sampling_seconds': float(sampling),
      'sampler_seconds': float(warm_up + sampling),
  }


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
    used_step_size = kernels.step_size(results)
    state, results = kernel.one_step(state, results, seed=step_seed)
    log_prob, is_accepted = kernels.log_prob_and_accepted(results)
    is_accepted = tf.cast(is_accepted, tf.float32)
    accepted += tf.reduce_mean(is_accepted)
    trace = (
        trace[0].write(step, log_prob),
        trace[1].write(step, is_accepted),
        trace[2].write(step, used_step_size))
    return step + 1, state, results, accepted, seed, trace
  return body


def _empty_trace(num_steps, num_chains):
  return (tf.TensorArray(tf.float32, num_steps, element_shape=[num_chains]),
          tf.TensorArray(tf.float32, num_steps, element_shape=[num_chains]),
          tf.TensorArray(tf.float32, num_steps, element_shape=[]))


def _warm_up(target_log_prob_fn, state, step_size, config, checkpoints,
             timings, stop_after_steps=None, writer=None):
  """Adapts the step size; returns the last state, step size and acceptance.

  A compiled loop over `one_step` (warm-up states are not posterior samples,
  so none is stored; the per-step trace of log-joint, acceptance and step
  size is, for TensorBoard). With `config.warm_up_checkpoint_every` = k > 0
  the loop runs in chunks of k steps and the state, the kernel's results and
  the seed are checkpointed after each, so a long warm-up resumes where it
  stopped and logs its progress; k = 0 runs one loop with no host round
  trips. Returns None when stopped after `stop_after_steps` steps (to test
  resumption). Each saved chunk's wall time is added to `timings` (saved).
  """
  kernel = kernels.warm_up_kernel(target_log_prob_fn, config, step_size,
                                  state)
  if config.num_burnin_steps == 0:
    return state, step_size, float('nan'), kernels.bootstrap(kernel, state,
                                                             config)
  body = _warm_up_body(kernel)
  seed = phase_seed(config.seed, 0)
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
          (0, state, kernels.bootstrap(kernel, state, config), 0.0, seed,
           _empty_trace(total, chains)))
      return (state, accepted / total, results, [t.stack() for t in steps])

    start = time.time()
    last, accept, results, steps = run_all(state, seed)
    timings.update(warm_up_seconds=time.time() - start, warm_up_steps=total)
    record(0, steps)
    return last, float(kernels.step_size(results)), float(accept), results

  results = None
  accepted, done = 0.0, 0
  restored = checkpoints.load_warm_up(
      state, kernels.bootstrap(kernel, state, config),
      seed) if checkpoints.directory else None
  if restored is None:
    timings.update(warm_up_seconds=0.0, warm_up_steps=0)
  else:
    state, results, seed, accepted, done = restored
    logging.info('HMC warm-up: resuming after %d of %d steps.', done, total)
    # Chunks done but not timed (a run from before timings were saved, or
    # a kill between the two saves) stay untimed: the total is then NaN.
    # Timings ahead of the checkpoint belong to another run: none count.
    if timings['warm_up_steps'] > done:
      timings.update(warm_up_seconds=0.0, warm_up_steps=0)
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
          results = kernels.bootstrap(kernel, state, config)
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
    timings['warm_up_seconds'] += elapsed
    timings['warm_up_steps'] += num_steps  # Steps timed, not steps done.
    checkpoints.save_timings(timings)
    if kernels.is_plain(config):
      timing = '%.1f ms per leapfrog step' % (
          1e3 * elapsed / (num_steps * config.num_leapfrog_steps))
    else:  # The leapfrog count varies (jitter, NUTS): per iteration.
      timing = '%.1f s per iteration' % (elapsed / num_steps)
    logging.info('HMC warm-up %d/%d: %s, acceptance %.3f, step size %.3g',
                 done, total, timing, float(chunk_accepted) / num_steps,
                 float(kernels.step_size(results)))
    if stop_after_steps is not None and done >= stop_after_steps:
      return None
  return state, float(kernels.step_size(results)), accepted / done, results


def fixed_step_chain(target_log_prob_fn, config):
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


def _carried_chain(kernel, config):
  """A compiled `run(state, results, num_results, seed)` for adaptive kernels.

  The kernel results come in from warm-up (or the previous segment) and go
  out with the samples, so the adapted settings stay in force.
  """
  compiled = {}
  thinning = config.thinning
  # A jittered trajectory's length follows a Halton sequence over the
  # iterations, so with thinning the kept iterations fall on one part of
  # it (u below or above 1/2 for thinning 2) and their leapfrog counts are
  # not the run's: trace every iteration and thin the states here.
  every_iteration = thinning > 1 and kernels.is_jittered(config)

  def run(state, results, num_results, seed):
    if num_results not in compiled:
      @tf.function(jit_compile=config.jit_compile)
      def chain(state, results, seed):
        samples, (log_prob, accepted, steps), final = tfp.mcmc.sample_chain(
            num_results * thinning if every_iteration else num_results,
            state, previous_kernel_results=results, kernel=kernel,
            num_steps_between_results=0 if every_iteration else thinning - 1,
            trace_fn=lambda _, r: kernels.log_prob_and_accepted(r) + (
                kernels.leapfrogs(r),),
            return_final_kernel_results=True, seed=seed)
        if every_iteration:
          kept = slice(thinning - 1, None, thinning)
          samples = [part[kept] for part in samples]
          log_prob, accepted = log_prob[kept], accepted[kept]
          steps = tf.reduce_mean(tf.reshape(steps, [num_results, thinning]),
                                 axis=1)
        return samples, log_prob, accepted, steps, final
      compiled[num_results] = chain
    return compiled[num_results](state, results, seed)

  return run
