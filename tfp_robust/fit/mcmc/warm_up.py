"""Warm-up: the adaptive phase of the driver, compiled, checkpointed in chunks.

Warm-up states are not posterior samples, so none is stored; the per-step
trace of log-joint, acceptance and step size is, for TensorBoard. With
`config.warm_up_checkpoint_every` = k > 0 the loop runs in chunks of k steps
and the state, the kernel's results and the seed are checkpointed after
each, so a long warm-up resumes where it stopped and logs its progress;
k = 0 runs one loop with no host round trips.
"""

import time

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_robust.fit.mcmc import kernels
from tfp_robust.reports import summaries


def _body(kernel):
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


class _Trace:
  """The whole warm-up's trace (rows [0, done) filled), saved with the
  checkpoints and written to TensorBoard as chunks finish."""

  def __init__(self, config, checkpoints, writer):
    total, chains = config.num_burnin_steps, config.num_chains
    self.rows = [np.zeros((total, chains), np.float32),
                 np.zeros((total, chains), np.float32),
                 np.zeros((total,), np.float32)]
    self._checkpoints, self._writer = checkpoints, writer

  def record(self, first, chunk_trace):
    rows = int(chunk_trace[0].shape[0])
    for full, part in zip(self.rows, chunk_trace):
      full[first:first + rows] = part.numpy()
    self._checkpoints.save_warm_up_trace(self.rows)
    self._write(first, first + rows)

  def restore(self, saved, done):
    # Rows past `done` may come from a chunk whose state was not saved;
    # that chunk runs again and writes the same values.
    for full, part in zip(self.rows, saved):
      full[:done] = part[:done]
    self._write(0, done)

  def _write(self, first, stop):
    if self._writer:
      summaries.hmc_trace(self._writer, self.rows[0][first:stop],
                          self.rows[1][first:stop], self.rows[2][first:stop],
                          first)


def warm_up(target_log_prob_fn, state, step_size, config, checkpoints,
            timings, seed, stop_after_steps=None, writer=None):
  """Adapts the sampler; returns the last state, step size, acceptance and
  the kernel's results.

  A compiled loop over `one_step` from the phase seed `seed`, in one piece
  or in checkpointed chunks (see the module). Returns None when stopped
  after `stop_after_steps` steps (to test resumption). The wall time is
  added to `timings` (saved after each chunk).
  """
  kernel = kernels.warm_up_kernel(target_log_prob_fn, config, step_size,
                                  state)
  if config.num_burnin_steps == 0:
    return state, step_size, float('nan'), kernels.bootstrap(kernel, state,
                                                             config)
  trace = _Trace(config, checkpoints, writer)
  if not config.warm_up_checkpoint_every:
    return _in_one_loop(kernel, state, config, timings, seed, trace)
  return _in_chunks(kernel, state, config, checkpoints, timings, seed, trace,
                    stop_after_steps)


def _in_one_loop(kernel, state, config, timings, seed, trace):
  """The whole warm-up in one compiled loop, timed."""
  body, total = _body(kernel), config.num_burnin_steps

  @tf.function(jit_compile=config.jit_compile)
  def run_all(state, seed):
    _, state, results, accepted, _, steps = tf.while_loop(
        lambda step, *_: step < total, body,
        (0, state, kernels.bootstrap(kernel, state, config), 0.0, seed,
         _empty_trace(total, config.num_chains)))
    return (state, accepted / total, results, [t.stack() for t in steps])

  start = time.time()
  last, accept, results, steps = run_all(state, seed)
  timings.update(warm_up_seconds=time.time() - start, warm_up_steps=total)
  trace.record(0, steps)
  return last, float(kernels.step_size(results)), float(accept), results


def _restore(kernel, state, config, checkpoints, timings, seed, trace):
  """`(state, results, seed, accepted, done)` where a checkpointed warm-up
  stopped, or the start; the timings and trace brought in line with it."""
  restored = checkpoints.load_warm_up(
      state, kernels.bootstrap(kernel, state, config),
      seed) if checkpoints.directory else None
  if restored is None:
    timings.update(warm_up_seconds=0.0, warm_up_steps=0)
    return state, None, seed, 0.0, 0
  state, results, seed, accepted, done = restored
  logging.info('HMC warm-up: resuming after %d of %d steps.', done,
               config.num_burnin_steps)
  # Chunks done but not timed (a run from before timings were saved, or
  # a kill between the two saves) stay untimed: the total is then NaN.
  # Timings ahead of the checkpoint belong to another run: none count.
  if timings['warm_up_steps'] > done:
    timings.update(warm_up_seconds=0.0, warm_up_steps=0)
  saved = checkpoints.load_warm_up_trace(config)
  if saved is not None:
    trace.restore(saved, done)
  return state, results, seed, accepted, done


def _chunk_runner(kernel, config):
  """`run(state, results, seed, num_steps)`: one compiled chunk per length
  (and for the first chunk, which bootstraps the kernel inside the call);
  one seed stream runs through all chunks."""
  body, compiled = _body(kernel), {}

  def run(state, results, seed, num_steps):
    key = (num_steps, results is None)
    if key not in compiled:
      @tf.function(jit_compile=config.jit_compile)
      def chunk(state, results, seed):
        if results is None:
          results = kernels.bootstrap(kernel, state, config)
        _, state, results, accepted, seed, steps = tf.while_loop(
            lambda step, *_: step < num_steps, body,
            (0, state, results, 0.0, seed,
             _empty_trace(num_steps, config.num_chains)))
        return state, results, accepted, seed, [t.stack() for t in steps]
      compiled[key] = chunk
    return compiled[key](state, results, seed)

  return run


def _in_chunks(kernel, state, config, checkpoints, timings, seed, trace,
               stop_after_steps):
  """Warm-up in chunks of `config.warm_up_checkpoint_every` steps, each
  checkpointed, timed and logged; resumes a stopped one."""
  total = config.num_burnin_steps
  state, results, seed, accepted, done = _restore(
      kernel, state, config, checkpoints, timings, seed, trace)
  run_chunk = _chunk_runner(kernel, config)
  while done < total:
    num_steps = min(config.warm_up_checkpoint_every, total - done)
    start = time.time()
    state, results, chunk_accepted, seed, steps = run_chunk(
        state, results, seed, num_steps)
    elapsed = time.time() - start
    accepted += float(chunk_accepted)
    # The trace first: a kill between the two saves repeats this chunk.
    trace.record(done, steps)
    done += num_steps
    checkpoints.save_warm_up(state, results, seed, accepted, done)
    timings['warm_up_seconds'] += elapsed
    timings['warm_up_steps'] += num_steps  # Steps timed, not steps done.
    checkpoints.save_timings(timings)
    _log_chunk(config, done, num_steps, elapsed, chunk_accepted, results)
    if stop_after_steps is not None and done >= stop_after_steps:
      return None
  return state, float(kernels.step_size(results)), accepted / done, results


def _log_chunk(config, done, num_steps, elapsed, chunk_accepted, results):
  if kernels.is_plain(config):
    timing = '%.1f ms per leapfrog step' % (
        1e3 * elapsed / (num_steps * config.num_leapfrog_steps))
  else:  # The leapfrog count varies (jitter, NUTS): per iteration.
    timing = '%.1f s per iteration' % (elapsed / num_steps)
  logging.info('HMC warm-up %d/%d: %s, acceptance %.3f, step size %.3g',
               done, config.num_burnin_steps, timing,
               float(chunk_accepted) / num_steps,
               float(kernels.step_size(results)))
