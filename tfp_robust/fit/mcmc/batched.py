"""Fixed-step HMC for several cells at once, one momentum stream per cell.

`fixed_step_chain` runs K cells (same target, e.g. one network on one data
set; each with its own step size and seed) as one batch of K * C chains in
one compiled call. Cell k's chains are the rows `k * C ... (k + 1) * C - 1`
of every state part.

TFP's `HamiltonianMonteCarlo` draws the momenta of all its chains from one
seed, so the chains of a cell batched with other cells would not be the
chains of that cell run alone. Here every random draw is made per cell, with
the cell's own seed and the lone run's shapes, along the seed path of
`tfp.mcmc.sample_chain` over `MetropolisHastings(UncalibratedHMC)`: per
iteration, the sample_chain seed splits into a step seed and the next seed;
the step seed into a proposal and an acceptance seed; the proposal seed into
one seed per state part, each drawing a `[C, ...]` standard normal momentum;
the acceptance seed draws a `[C]` uniform. The leapfrog integrator, the
acceptance correction and the accept/reject choice are TFP's own functions,
given per-chain step sizes.

With `per_cell_target=True` (the default) the target is also evaluated cell
by cell, on the lone run's shapes, so cell k's chains are a function of its
own seed and step size only, and its samples, log-densities and acceptances
are those of the driver's plain sampler (`mcmc.driver`,
`tfp.mcmc.sample_chain` over `HamiltonianMonteCarlo`) run on that cell alone
to float rounding. They are often bit for bit (a 6-5-3 net on 40 points, a
784-32-10 net on 1,000 points for 6 iterations: XLA on CPU, TF 2.21, TFP
0.25), but not always: XLA compiles the batched and the lone program
separately and may fuse (and so round) an operation differently; a
784-4-10 net on 50 points showed one weight 1.9e-9 (1 ulp) apart after 2
iterations, whether the leapfrog steps ran batched or cell by cell. With
`per_cell_target=False` the target sees all K * C chains at once (larger
matrix products, which round differently): about 3e-8 apart after 6
iterations of the 784-32-10 net.

Measured on 2 CPU cores (BUILD_NOTES, "Figure 4's grids"): batching the
chains does not make the sampling itself faster here, so the grid does not
use this module; `benchmarks.hmc_step_size_batching` measures it.
"""

from typing import Callable, List, Optional, Sequence

import tensorflow as tf
# TFP's own pieces, so that the arithmetic is the lone sampler's.
from tensorflow_probability.python.internal import samplers
from tensorflow_probability.python.mcmc import hmc as tfp_hmc
from tensorflow_probability.python.mcmc.internal import leapfrog_integrator
from tensorflow_probability.python.mcmc.internal import util as mcmc_util

from tfp_robust.core import validate
from tfp_robust.core import xla

# The acceptance correction of TFP's HMC (the kinetic energy change).
_log_acceptance_correction = (
    tfp_hmc._compute_log_acceptance_correction)  # pylint: disable=protected-access
# `tfp.mcmc.sample_chain` salts its seed with this name.
_SAMPLE_CHAIN_SALT = 'mcmc.sample_chain'


def cellwise_target(target_log_prob_fn: Callable, num_cells: int) -> Callable:
  """The target of K * C stacked chains, evaluated cell by cell.

  Args:
    target_log_prob_fn: `f(*state) -> [C]` for one cell's C chains.
    num_cells: K.

  Returns:
    `f(*state) -> [K * C]` for state parts with a leading axis K * C; each
    cell's values (and gradients) are computed on `[C, ...]` slices, as in a
    lone run.
  """
  def target(*parts):
    pieces = [tf.split(part, num_cells) for part in parts]
    return tf.concat([target_log_prob_fn(*[p[k] for p in pieces])
                      for k in range(num_cells)], axis=0)
  return target


def fixed_step_chain(target_log_prob_fn: Callable, num_cells: int,
                     num_chains: int, num_leapfrog_steps: int,
                     num_results: int, thinning: int = 1,
                     per_cell_target: bool = True,
                     jit_compile: Optional[bool] = None) -> Callable:
  """A compiled `run(state, step_sizes, seeds)` for K cells of C chains.

  Args:
    target_log_prob_fn: `f(*state) -> [C]`, one cell's log-density with a
      leading chain axis (e.g. `hmc.network_log_joint`).
    num_cells: K, the cells run together.
    num_chains: C, chains per cell.
    num_leapfrog_steps: leapfrog steps per proposal (shared by the cells).
    num_results: kept samples per chain.
    thinning: keep every `thinning`-th state (the driver's meaning: the
      first kept state is the first iteration's).
    per_cell_target: evaluate the target cell by cell, on a lone run's
      shapes (often bit for bit a lone run's numbers), or on all chains at
      once (larger products; equal to float rounding).
    jit_compile: compile with XLA; None: as the driver does by default
      (`core.xla.default()`).

  Returns:
    `run(state, step_sizes, seeds) -> (samples, log_prob, is_accepted)`:
    `state` a list of parts `[K * C, ...]`, `step_sizes` `[K]` float32,
    `seeds` `[K, 2]` int32 (cell k's stateless seed, as the driver passes
    one segment's seed to `tfp.mcmc.sample_chain`); `samples` parts
    `[num_results, K * C, ...]`, `log_prob` and `is_accepted`
    `[num_results, K * C]`.

  Raises:
    validate.InvalidArgument: for a count below 1.
  """
  num_cells = validate.integer('num_cells', num_cells, 1)
  num_chains = validate.integer('num_chains', num_chains, 1)
  num_leapfrog_steps = validate.integer('num_leapfrog_steps',
                                        num_leapfrog_steps, 1)
  num_results = validate.integer('num_results', num_results, 1)
  thinning = validate.integer('thinning', thinning, 1)
  target = (cellwise_target(target_log_prob_fn, num_cells)
            if per_cell_target else target_log_prob_fn)

  @tf.function(jit_compile=xla.default() if jit_compile is None else
               bool(jit_compile))
  def run(state, step_sizes, seeds):
    state = [tf.convert_to_tensor(s) for s in state]
    _check_shapes(state, step_sizes, seeds, num_cells, num_chains)
    seeds = [samplers.sanitize_seed(seeds[k], salt=_SAMPLE_CHAIN_SALT)
             for k in range(num_cells)]
    per_chain = tf.repeat(tf.cast(step_sizes, state[0].dtype), num_chains)
    step_size_parts = [
        tf.reshape(per_chain, [-1] + [1] * (part.shape.rank - 1))
        for part in state]
    integrator = leapfrog_integrator.SimpleLeapfrogIntegrator(
        target, step_size_parts, num_leapfrog_steps)
    log_prob, grads = mcmc_util.maybe_call_fn_and_grads(target, state)
    return _chain(_transition(integrator, num_chains), seeds, state,
                  log_prob, grads, num_results, thinning)

  return run


def _check_shapes(state, step_sizes, seeds, num_cells: int,
                  num_chains: int) -> None:
  """K cells of C chains on every state part, a step size and a seed each."""
  expected = num_cells * num_chains
  for index, part in enumerate(state):
    if part.shape[0] != expected:
      raise ValueError(
          f'state[{index}] has {part.shape[0]} chains on its leading axis; '
          f'{num_cells} cells of {num_chains} chains need {expected}. Stack '
          'the cells\' states along axis 0.')
  for name, value, shape in (('step_sizes', step_sizes, [num_cells]),
                             ('seeds', seeds, [num_cells, 2])):
    if value.shape.as_list() != shape:
      raise ValueError(
          f'{name} has shape {value.shape.as_list()}; {num_cells} cells '
          f'need {shape}: one {"step size" if len(shape) == 1 else "seed"} '
          'per cell, in the order of the stacked states.')


def _draw(seeds: List[tf.Tensor], state: Sequence[tf.Tensor], dtype,
          num_chains: int):
  """One iteration's momenta and uniforms, each cell from its own seed."""
  momenta = [[] for _ in state]
  uniforms, next_seeds = [], []
  for seed in seeds:
    # `sample_chain`, then `MetropolisHastings`, then the HMC proposal.
    step_seed, next_seed = samplers.split_seed(seed)
    proposal_seed, acceptance_seed = samplers.split_seed(step_seed)
    part_seeds = samplers.split_seed(proposal_seed, n=len(state))
    for index, (part_seed, part) in enumerate(zip(part_seeds, state)):
      momenta[index].append(samplers.normal(
          [num_chains] + part.shape[1:].as_list(), dtype=part.dtype,
          seed=part_seed))
    uniforms.append(samplers.uniform([num_chains], dtype=dtype,
                                     seed=acceptance_seed))
    next_seeds.append(next_seed)
  return ([tf.concat(m, axis=0) for m in momenta], tf.concat(uniforms, 0),
          next_seeds)


def _transition(integrator, num_chains: int) -> Callable:
  """One HMC iteration of every chain: `step(seeds, state, log_prob, grads)
  -> (seeds, state, log_prob, grads, accepted)`, with TFP's integrator,
  acceptance correction and choice."""
  def step(seeds, state, log_prob, grads):
    momenta, uniforms, seeds = _draw(seeds, state, log_prob.dtype, num_chains)
    next_momenta, proposed, proposed_log_prob, proposed_grads = integrator(
        momenta, state, log_prob, grads)
    correction = _log_acceptance_correction(momenta, next_momenta, 1)
    log_accept_ratio = mcmc_util.safe_sum(
        [proposed_log_prob, -log_prob, correction])
    accepted = tf.math.log(uniforms) < log_accept_ratio
    return (seeds, mcmc_util.choose(accepted, proposed, state),
            mcmc_util.choose(accepted, proposed_log_prob, log_prob),
            mcmc_util.choose(accepted, proposed_grads, grads), accepted)
  return step


def _chain(step: Callable, seeds, state, log_prob, grads, num_results: int,
           thinning: int):
  """`num_results` kept iterations of `step` (every `thinning`-th, the first
  one iteration in) as one `tf.while_loop`; `(samples, log_prob,
  is_accepted)` stacked over them."""
  chains = int(log_prob.shape[0])

  def body(result, seeds, state, log_prob, grads, traces):
    if thinning == 1:
      seeds, state, log_prob, grads, accepted = step(seeds, state, log_prob,
                                                     grads)
    else:
      # The first kept state is one iteration in, the others `thinning`.
      def inner(i, seeds, state, log_prob, grads, accepted):
        return (i + 1,) + step(seeds, state, log_prob, grads)
      _, seeds, state, log_prob, grads, accepted = tf.while_loop(
          lambda i, *_: i < tf.where(result == 0, 1, thinning), inner,
          (0, seeds, state, log_prob, grads, tf.zeros([chains], tf.bool)))
    traces = [t.write(result, v) for t, v in zip(
        traces, list(state) + [log_prob, accepted])]
    return result + 1, seeds, state, log_prob, grads, traces

  traces = [tf.TensorArray(s.dtype, num_results, element_shape=s.shape)
            for s in state] + [
                tf.TensorArray(log_prob.dtype, num_results,
                               element_shape=[chains]),
                tf.TensorArray(tf.bool, num_results,
                               element_shape=[chains])]
  *_, traces = tf.while_loop(lambda result, *_: result < num_results, body,
                             (0, seeds, state, log_prob, grads, traces))
  stacked = [t.stack() for t in traces]
  return stacked[:-2], stacked[-2], stacked[-1]
