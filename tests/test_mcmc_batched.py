"""Cells batched by step size give the chains of each cell run alone."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust.fit import hmc
from tfp_robust import networks
from tfp_robust.core import validate
from tfp_robust.fit.mcmc import batched
from tfp_robust.fit.mcmc import driver

STEP_SIZES = (0.05, 0.01, 0.002)
SEEDS = (3, 4, 5)
CHAINS = 2


def _problem():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(40, 6)).astype(np.float32)
  y = rng.integers(0, 3, size=40)
  architecture = networks.Architecture.mlp(6, [5], 3, 'tanh')
  return architecture, x, y


def _lone(architecture, x, y, step_size, seed, num_results, thinning):
  """The cell alone, through `hmc.fit` (the grid's path): one segment."""
  config = hmc.HMCConfig(num_results=num_results, num_burnin_steps=0,
                         num_leapfrog_steps=3, step_size=step_size,
                         num_chains=CHAINS, seed=seed,
                         segment_size=num_results, thinning=thinning)
  _, result = hmc.fit(architecture, x, y, config)
  return result


def _batched(architecture, x, y, num_results, thinning, per_cell_target):
  target = hmc.network_log_joint(architecture, x, y)
  # `hmc.fit`'s start and first segment's seed, cell by cell.
  starts = [hmc.initial_network_state(
      architecture, CHAINS, driver.phase_seed(seed, 1 << 20))
            for seed in SEEDS]
  state = [tf.concat(parts, 0) for parts in zip(*starts)]
  run = batched.fixed_step_chain(target, len(SEEDS), CHAINS, 3, num_results,
                                 thinning, per_cell_target)
  return run(state, tf.constant(STEP_SIZES, tf.float32),
             tf.stack([driver.phase_seed(seed, 1) for seed in SEEDS]))


@pytest.mark.parametrize('thinning', [1, 2])
def test_each_batched_cell_is_the_cell_run_alone(thinning):
  architecture, x, y = _problem()
  samples, log_prob, accepted = _batched(architecture, x, y, 5, thinning,
                                         per_cell_target=True)
  rates = []
  for k, (step_size, seed) in enumerate(zip(STEP_SIZES, SEEDS)):
    lone = _lone(architecture, x, y, step_size, seed, 5, thinning)
    rows = slice(k * CHAINS, (k + 1) * CHAINS)
    # Both compiled alike (without XLA in the suite, with it in runs: the
    # default follows $TFP_ROBUST_JIT_COMPILE); bit for bit here, in general
    # equal to float rounding (module docstring).
    # Another cell's momenta would move the chains by about the step size.
    for part, lone_part in zip(samples, lone.samples):
      np.testing.assert_allclose(part[:, rows].numpy(), lone_part, rtol=0,
                                 atol=1e-6)
    np.testing.assert_allclose(log_prob[:, rows].numpy(), lone.log_prob,
                               rtol=1e-6)
    np.testing.assert_array_equal(accepted[:, rows].numpy(),
                                  lone.is_accepted)
    rates.append(float(np.mean(lone.is_accepted)))
  # The chains moved, and the cells differ.
  assert not np.array_equal(samples[0][-1, :CHAINS].numpy(),
                            samples[0][0, :CHAINS].numpy())
  assert len({tuple(np.ravel(samples[0][-1, k * CHAINS].numpy()))
              for k in range(len(SEEDS))}) == len(SEEDS)
  assert max(rates) > 0


def test_all_chains_in_one_target_call_agree_to_float_rounding():
  architecture, x, y = _problem()
  cellwise = _batched(architecture, x, y, 5, 1, per_cell_target=True)
  stacked = _batched(architecture, x, y, 5, 1, per_cell_target=False)
  for a, b in zip(cellwise[0], stacked[0]):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5)
  np.testing.assert_array_equal(cellwise[2].numpy(), stacked[2].numpy())


def test_state_of_the_wrong_size_is_refused():
  architecture, x, y = _problem()
  target = hmc.network_log_joint(architecture, x, y)
  state = hmc.initial_network_state(architecture, 3, tf.constant([0, 0]))
  run = batched.fixed_step_chain(target, 2, CHAINS, 3, 2)
  with pytest.raises(ValueError, match='2 cells of 2 chains need 4'):
    run(state, tf.constant([0.1, 0.2]), tf.constant([[0, 1], [0, 2]]))
  state = hmc.initial_network_state(architecture, 4, tf.constant([0, 0]))
  with pytest.raises(ValueError, match=r'step_sizes has shape \[3\]; 2 cells'):
    run(state, tf.constant([0.1, 0.2, 0.3]), tf.constant([[0, 1], [0, 2]]))
  with pytest.raises(validate.InvalidArgument, match='num_cells=0'):
    batched.fixed_step_chain(target, 0, CHAINS, 3, 2)
