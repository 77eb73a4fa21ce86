"""HMC cells that differ only in step size: batched against one by one.

The Figure 4 grid's HMC rows hold cells that share everything but the step
size. `hmc_step_size_batching` times them sampled one after another (as the
grid runner trains cells), through one compiled chain reused, and batched
into one compiled call (`fit.mcmc.batched`), and checks that each batched
cell's chains are its lone run's.
"""

import dataclasses
import time
from typing import Callable, Dict, List, Sequence

import numpy as np
import tensorflow as tf

from tfp_robust import networks
from tfp_robust.fit import hmc
from tfp_robust.fit.mcmc import batched
from tfp_robust.fit.mcmc import driver

STEP_SIZES = (0.005, 0.001, 0.0005, 0.0001, 0.00005, 0.00001)


@dataclasses.dataclass
class _Cells:
  """K cells of one problem: target, step sizes, seeds and starts."""
  target: Callable
  step_sizes: Sequence[float]
  seeds: List[int]
  starts: List[list]
  config: hmc.HMCConfig
  num_segments: int

  @property
  def num_chains(self) -> int:
    return self.config.num_chains


def _cells(num_cells, num_train, hidden, activation, num_chains,
           num_leapfrog_steps, num_results, num_segments, seed) -> _Cells:
  """One MNIST-shaped problem (random pixels and labels: the cost does not
  depend on the values) and its K cells, seeds `seed + k`."""
  if not 1 <= num_cells <= len(STEP_SIZES):
    raise ValueError(f'num_cells={num_cells} is invalid: it must be in [1, '
                     f'{len(STEP_SIZES)}]. Use e.g. 4 (the paper\'s step '
                     'sizes per grid row).')
  rng = np.random.default_rng(seed)
  x = rng.uniform(size=(int(num_train), 784)).astype(np.float32)
  y = rng.integers(0, 10, size=int(num_train))
  architecture = networks.Architecture.mlp(784, list(hidden), 10, activation)
  seeds = [seed + k for k in range(num_cells)]
  return _Cells(
      target=hmc.network_log_joint(architecture, x, y),
      step_sizes=STEP_SIZES[:num_cells], seeds=seeds,
      starts=[hmc.initial_network_state(architecture, num_chains,
                                        driver.phase_seed(s, 1 << 20))
              for s in seeds],
      config=hmc.HMCConfig(num_results=num_results, num_burnin_steps=0,
                           num_leapfrog_steps=num_leapfrog_steps,
                           num_chains=num_chains, seed=seed),
      num_segments=int(num_segments))


def _one_by_one(cells: _Cells, chains) -> List[List[np.ndarray]]:
  """Each cell's segments through its own compiled chain; its last samples."""
  samples = []
  for k, (step_size, cell_seed) in enumerate(zip(cells.step_sizes,
                                                 cells.seeds)):
    state = cells.starts[k]
    for segment in range(cells.num_segments):
      out = chains[k](state, tf.constant(step_size, tf.float32),
                      cells.config.num_results,
                      driver.phase_seed(cell_seed, segment + 1))[0]
      state = [s[-1] for s in out]
    samples.append([s.numpy() for s in out])
  return samples


def _batched(cells: _Cells, run) -> List[np.ndarray]:
  """Every cell's chains in one compiled call per segment; the last samples,
  the K cells' chains side by side on the chain axis."""
  state = [tf.concat(parts, 0) for parts in zip(*cells.starts)]
  for segment in range(cells.num_segments):
    out = run(state, tf.constant(cells.step_sizes, tf.float32), tf.stack(
        [driver.phase_seed(s, segment + 1) for s in cells.seeds]))[0]
    state = [s[-1] for s in out]
  return [s.numpy() for s in out]


def _ways(cells: _Cells) -> Dict[str, Callable]:
  """The four ways, each with its compiled calls built (compiled by its
  first pass)."""
  num_cells, config = len(cells.step_sizes), cells.config
  fresh = [driver.fixed_step_chain(cells.target, config)
           for _ in cells.step_sizes]
  shared = driver.fixed_step_chain(cells.target, config)
  settings = (num_cells, config.num_chains, config.num_leapfrog_steps,
              config.num_results)
  cellwise = batched.fixed_step_chain(cells.target, *settings)
  stacked = batched.fixed_step_chain(cells.target, *settings,
                                     per_cell_target=False)
  return {
      'one_after_another': lambda: _one_by_one(cells, fresh),
      'one_compiled_chain': lambda: _one_by_one(cells, [shared] * num_cells),
      'batched': lambda: _batched(cells, cellwise),
      'batched_stacked': lambda: _batched(cells, stacked),
  }


def _timed(ways: Dict[str, Callable], repeats: int):
  """`(first, steady, outputs)`: each way's first pass (compilation
  included), in order; then `repeats` passes interleaved, their medians."""
  first, outputs = {}, {}
  for name, fn in ways.items():
    start = time.perf_counter()
    outputs[name] = fn()
    first[name] = time.perf_counter() - start
  steady = {name: [] for name in ways}
  for _ in range(int(repeats)):
    for name, fn in ways.items():
      start = time.perf_counter()
      fn()
      steady[name].append(time.perf_counter() - start)
  return first, {name: float(np.median(times))
                 for name, times in steady.items()}, outputs


def _max_difference(cells: _Cells, batched_samples, lone) -> float:
  """Largest difference between a batched cell's samples and its lone run's."""
  chains = cells.num_chains
  return max(float(np.max(np.abs(
      batched_samples[p][:, k * chains:(k + 1) * chains] - lone[k][p])))
             for k in range(len(lone)) for p in range(len(lone[k])))


def hmc_step_size_batching(num_cells: int = 4, num_train: int = 5000,
                           hidden=(32,), activation: str = 'relu',
                           num_chains: int = 2, num_leapfrog_steps: int = 5,
                           num_results: int = 10, num_segments: int = 2,
                           repeats: int = 2, seed: int = 0
                           ) -> Dict[str, float]:
  """K HMC cells that differ only in step size: batched against one by one.

  One MNIST-shaped problem, K cells with step sizes 0.005, 0.001, ... and
  seeds `seed + k`, each sampled for `num_segments` calls of `num_results`
  iterations (the grid's segments), four ways:

  - `one_after_another`: as the grid runner trains cells, a fresh compiled
    chain of the driver's plain sampler per cell;
  - `one_compiled_chain`: one compiled driver chain reused by every cell
    (its step size is an argument of the compiled call);
  - `batched`: `mcmc.batched.fixed_step_chain`, the K * C chains in one
    compiled call, the target evaluated cell by cell (each cell bit for bit
    its lone run);
  - `batched_stacked`: the same with one target call on all K * C chains
    (equal to float rounding).

  The first pass of each (compilation included) runs once, in that order;
  then `repeats` passes of the compiled calls run interleaved, and their
  medians are the steady times.

  Returns:
    Seconds per way (`*_first_seconds`, `*_seconds`), `ratio`: one after
    another over batched, both compiled (above 1: batching samples faster),
    `ratio_with_compile`: the same for the first passes, the stacked and
    compiled-once ratios likewise, `max_abs_difference` between each
    batched cell's samples and its lone run's (0.0: bit for bit), and the
    shapes.
  """
  num_cells = int(num_cells)
  cells = _cells(num_cells, num_train, hidden, activation, num_chains,
                 num_leapfrog_steps, num_results, num_segments, seed)
  first, seconds, outputs = _timed(_ways(cells), repeats)
  lone = outputs['one_after_another']
  result = {f'{name}_first_seconds': value for name, value in first.items()}
  result.update({f'{name}_seconds': value for name, value in seconds.items()})
  result.update(
      ratio=seconds['one_after_another'] / seconds['batched'],
      ratio_with_compile=(first['one_after_another'] / first['batched']),
      ratio_stacked=seconds['one_after_another'] / seconds['batched_stacked'],
      ratio_stacked_with_compile=(first['one_after_another'] /
                                  first['batched_stacked']),
      compiled_once_over_batched_with_compile=(
          first['one_compiled_chain'] / first['batched']),
      max_abs_difference=_max_difference(cells, outputs['batched'], lone),
      max_abs_difference_stacked=_max_difference(
          cells, outputs['batched_stacked'], lone),
      num_cells=num_cells, num_train=int(num_train), num_chains=num_chains,
      num_leapfrog_steps=num_leapfrog_steps,
      iterations_per_cell=num_results * num_segments)
  return result
