"""The checkpointed sampling driver: warm-up, then kept segments.

Sampling runs in two phases. Warm-up adapts the sampler (step size, and for
the adaptive samplers of `kernels` the mass matrix or trajectory length);
the kept samples then come in segments. After every warm-up chunk and every
segment the state is checkpointed (`checkpoints`), and each phase has a seed
derived from the run's seed and the phase's index, so a run killed at any
point resumes where it stopped and ends with the same samples as an
uninterrupted run. The driver knows nothing about networks: it samples any
`target_log_prob_fn(*state) -> [C]` with a leading chain axis C.

`sample` strings the phases together: resuming (`_start`), writing again
the TensorBoard series of a resumed run (`_replay`), warm-up (`warm_up`),
the kept segments (`_segments`, their compiled chains in `chains`), and the
samples, diagnostics and timings at the end (`_result`).
"""

import dataclasses
import time
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from tfp_robust.core import files

from tfp_robust.core import locks
from tfp_robust.core import seeds
from tfp_robust.fit.mcmc import checkpoints as checkpoints_lib
from tfp_robust.fit.mcmc import diagnostics as diagnostics_lib
from tfp_robust.fit.mcmc import kernels
from tfp_robust.fit.mcmc import warm_up as warm_up_lib
from tfp_robust.fit.mcmc.chains import carried_chain
from tfp_robust.fit.mcmc.chains import fixed_step_chain  # Re-exported.
from tfp_robust.reports import summaries


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
      for the binaries' work directories (`locks.one_writer`).
  """
  config.validate()
  with locks.one_writer(checkpoint_dir, 'checkpoint_dir'):
    return _sample(target_log_prob_fn, initial_state, config, checkpoint_dir,
                   target_identity, log_dir, stop_after_phases,
                   stop_after_warm_up_steps, data_digest)


@dataclasses.dataclass
class _Run:
  """Where a run stands: its settings, checkpoints, writer and progress."""
  config: object
  checkpoints: checkpoints_lib.Checkpoints
  state: List[tf.Tensor]
  step_size: float
  phases_done: int
  results: object  # The adaptive kernels' results; None for plain HMC.
  kernel: object  # The adaptive kernel; None for plain HMC.
  timings: Dict
  writer: object = None
  stop_after_phases: Optional[int] = None

  @property
  def plain(self) -> bool:
    return self.kernel is None

  @property
  def num_segments(self) -> int:
    return -(-self.config.num_results // self.config.segment_size)

  def stopped(self) -> bool:
    """Whether the test-only stop after `stop_after_phases` phases is due."""
    return (self.stop_after_phases is not None and
            self.phases_done >= self.stop_after_phases)

  def first_iteration(self, segment: int) -> int:
    """The MCMC iteration of a segment's first kept sample (warm-up is
    0..B-1)."""
    config = self.config
    return (config.num_burnin_steps + segment * config.segment_size *
            config.thinning + config.thinning - 1)

  def write_segment(self, segment, log_prob, accepted, step_size) -> None:
    if self.writer:
      summaries.hmc_trace(self.writer, log_prob, accepted, step_size,
                          self.first_iteration(segment), self.config.thinning)


def _sample(target_log_prob_fn, initial_state, config, checkpoint_dir,
            target_identity, log_dir, stop_after_phases,
            stop_after_warm_up_steps, data_digest):
  """`sample`, with `checkpoint_dir` held."""
  run = _start(target_log_prob_fn, initial_state, config,
               checkpoints_lib.Checkpoints(checkpoint_dir, config,
                                           target_identity, data_digest))
  run.stop_after_phases = stop_after_phases
  if run.stopped():
    return None
  run.writer = summaries.open_writer(log_dir) if log_dir else None
  if run.writer and run.phases_done >= 1:
    _replay(run)
  if run.phases_done == 0:
    if not _warm_up(run, target_log_prob_fn, stop_after_warm_up_steps):
      return None
    if run.stopped():
      return None
  segments = _segments(run, target_log_prob_fn)
  if segments is None:
    return None
  return _result(run, segments)


def _start(target_log_prob_fn, initial_state, config, checkpoints) -> _Run:
  """A new run, or the one checkpointed in `checkpoints` resumed."""
  state = [tf.convert_to_tensor(s, tf.float32) for s in initial_state]
  # Adaptive samplers carry their kernel results from segment to segment.
  kernel = None if kernels.is_plain(config) else kernels.warm_up_kernel(
      target_log_prob_fn, config, config.step_size, state)
  run = _Run(config, checkpoints, state, config.step_size, 0, None, kernel,
             checkpoints.load_timings())
  restored = checkpoints.load_state(
      state, None if run.plain else kernels.bootstrap(kernel, state, config))
  if restored is not None:
    run.state, run.step_size, run.phases_done, run.results = restored
    logging.info('HMC: resuming from %s after %d of %d phases.',
                 checkpoints.directory, run.phases_done, run.num_segments + 1)
  return run


def _replay(run: _Run) -> None:
  """A resumed run writes again what the killed run had written (its event
  files were dropped by `open_writer`), so no series is duplicated."""
  trace = run.checkpoints.load_warm_up_trace(run.config)
  if trace is not None:
    summaries.hmc_trace(run.writer, trace[0], trace[1], trace[2], 0)
  for segment in range(run.phases_done - 1):
    values = run.checkpoints.load_segment(segment, _segment_templates(
        run.config, run.state, segment))
    if values is not None:
      run.write_segment(segment, values[-2].numpy(), values[-1].numpy(),
                        run.step_size)


def _warm_up(run: _Run, target_log_prob_fn, stop_after_steps) -> bool:
  """Runs warm-up and checkpoints its end; False when stopped inside it."""
  config = run.config
  start = time.time()
  warmed_up = warm_up_lib.warm_up(
      target_log_prob_fn, run.state, run.step_size, config, run.checkpoints,
      run.timings, phase_seed(config.seed, 0), stop_after_steps, run.writer)
  if warmed_up is None:
    return False
  run.state, run.step_size, accept, results = warmed_up
  logging.info('HMC warm-up done in %.1fs: acceptance %.3f, step size '
               '%.3g', time.time() - start, accept, run.step_size)
  if run.plain:
    run.results = None
  else:
    run.results = kernels.end_warm_up(results, config)
    _log_trajectory(config, run.results, run.step_size)
  run.phases_done = 1
  run.checkpoints.save_state(run.state, run.step_size, run.phases_done,
                             run.results)
  run.checkpoints.save_timings(run.timings)
  return True


def _log_trajectory(config, results, step_size) -> None:
  length = kernels.trajectory_length(results)
  text = 'n/a' if length is None else f'{float(length):.3g}'
  if length is not None and config.cap_leapfrogs and (
      float(length) > step_size * config.max_leapfrog_steps):
    text += (f' (proposals stop at {config.max_leapfrog_steps} leapfrog '
             f'steps, {step_size * config.max_leapfrog_steps:.3g})')
  logging.info('Sampler %s: trajectory length %s', kernels.describe(config),
               text)


def _segments(run: _Run, target_log_prob_fn) -> Optional[Dict[int, list]]:
  """The kept segments not done yet, each checkpointed, timed and logged;
  `{segment: [*samples, log_prob, accepted]}`, or None when stopped."""
  config = run.config
  chain = (fixed_step_chain(target_log_prob_fn, config) if run.plain else
           carried_chain(run.kernel, config))
  segments = {}
  for segment in range(run.phases_done - 1, run.num_segments):
    size = min(config.segment_size,
               config.num_results - segment * config.segment_size)
    start = time.time()
    seed = phase_seed(config.seed, segment + 1)
    if run.plain:
      samples, log_prob, accepted = chain(
          run.state, tf.constant(run.step_size, tf.float32), size, seed)
      mean_leapfrogs = float(config.num_leapfrog_steps)
    else:
      samples, log_prob, accepted, step_leapfrogs, run.results = chain(
          run.state, run.results, size, seed)
      mean_leapfrogs = float(tf.reduce_mean(step_leapfrogs))
    elapsed = time.time() - start
    run.state = [s[-1] for s in samples]
    segments[segment] = list(samples) + [log_prob, accepted]
    run.checkpoints.save_segment(segment, samples, log_prob, accepted)
    run.phases_done = segment + 2
    run.checkpoints.save_state(run.state, run.step_size, run.phases_done,
                               run.results)
    # After the state: a kill in between loses this segment's time, never
    # counts a segment twice.
    run.timings['segments'][segment] = {
        'seconds': elapsed, 'iterations': size * config.thinning,
        'leapfrogs': mean_leapfrogs}
    run.checkpoints.save_timings(run.timings)
    logging.info('HMC segment %d/%d: %d samples x %d chains in %.1fs '
                 '(%.1f samples/min per chain), acceptance %.3f, '
                 'mean log-joint %.1f', segment + 1, run.num_segments, size,
                 config.num_chains, elapsed, 60 * size / max(elapsed, 1e-9),
                 float(tf.reduce_mean(tf.cast(accepted, tf.float32))),
                 float(tf.reduce_mean(log_prob)))
    run.write_segment(segment, log_prob.numpy(), accepted.numpy(),
                      run.step_size)
    if run.stopped():
      return None
  return segments


def _result(run: _Run, segments: Dict[int, list]) -> SampleResult:
  """Every segment's samples (those of earlier runs from the checkpoints),
  their diagnostics and the run's timings."""
  config, num_segments = run.config, run.num_segments
  parts = []
  for segment in range(num_segments):
    # Move each segment out of `segments` so that one copy is alive.
    if segment not in segments:
      segments[segment] = run.checkpoints.load_segment(
          segment, _segment_templates(config, run.state, segment))
      if segments[segment] is None:
        raise ValueError(f'Segment {segment} is missing from the HMC '
                         f'checkpoint in {run.checkpoints.directory!r}; '
                         'delete the directory to start afresh.')
    parts.append([t.numpy() for t in segments.pop(segment)])
  columns = [np.concatenate(column, axis=0) for column in zip(*parts)]
  samples, log_prob, accepted = columns[:-2], columns[-2], columns[-1]
  report = diagnostics_lib.diagnostics(samples, log_prob, accepted)
  report['step_size'] = run.step_size
  report.update(timing_report(run.timings, config, num_segments))
  mean_leapfrogs = report['leapfrog_steps_per_iteration']
  report['seconds_per_kept_sample'] = (report['seconds_per_leapfrog_step'] *
                                       mean_leapfrogs * config.thinning)
  logging.info('HMC diagnostics: %s', report)
  if run.writer:
    summaries.scalars(run.writer, report, run.first_iteration(num_segments) -
                      config.thinning, prefix='hmc/diagnostics/')
    run.writer.flush()
  return SampleResult(samples, log_prob, accepted, run.step_size, report)


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
