"""Compiled chains of kept samples: one `tf.function` per segment length.

`fixed_step_chain` runs plain HMC at a given step size (an argument of the
compiled call, so one chain serves every step size); `carried_chain` runs an
adaptive kernel whose results come in from warm-up or the previous segment
and go out with the samples.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_robust.fit.mcmc import kernels


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


def carried_chain(kernel, config):
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
