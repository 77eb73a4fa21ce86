"""Speed and memory measurements, each a ratio taken within one run.

Absolute seconds depend on the machine and on what else runs on it; ratios
of two measurements taken side by side in one process do much less, so the
targets are stated as ratios (see `binaries/benchmark.py`).

- `timing`: best-of timing, the `tf.matmul` peak, random ensembles, FLOPs.
- `gradient_speed`: the expected loss gradient vectorised against loops,
  and the forms of computing it.
- `hmc_costs`: a leapfrog step against a forward and backward pass; the
  paper-scale fits and the Figure 1 grid projected from measured costs.
- `step_sizes`: HMC cells that differ only in step size, batched.
- `attack_speed`: PGD's compiled loop, a repeated call against another
  library's eager PGD, and PGD's peak memory.
"""

from tfp_robust.experiments.benchmarks.attack_speed import eager_pgd
from tfp_robust.experiments.benchmarks.attack_speed import keras_predictive_model
from tfp_robust.experiments.benchmarks.attack_speed import pgd_peak_memory
from tfp_robust.experiments.benchmarks.attack_speed import pgd_repeated_call
from tfp_robust.experiments.benchmarks.attack_speed import pgd_step_overhead
from tfp_robust.experiments.benchmarks.attack_speed import reference_pgd
from tfp_robust.experiments.benchmarks.gradient_speed import expected_gradient_forms
from tfp_robust.experiments.benchmarks.gradient_speed import expected_gradient_speed
from tfp_robust.experiments.benchmarks.gradient_speed import halfmoons_gradient_speed
from tfp_robust.experiments.benchmarks.gradient_speed import looped_expected_gradient
from tfp_robust.experiments.benchmarks.gradient_speed import looped_over_samples_gradient
from tfp_robust.experiments.benchmarks.hmc_costs import halfmoons_grid_projection
from tfp_robust.experiments.benchmarks.hmc_costs import hmc_leapfrog_cost
from tfp_robust.experiments.benchmarks.hmc_costs import projected_costs
from tfp_robust.experiments.benchmarks.step_sizes import hmc_step_size_batching
from tfp_robust.experiments.benchmarks.timing import best_time
from tfp_robust.experiments.benchmarks.timing import dense_forward_flops
from tfp_robust.experiments.benchmarks.timing import matmul_gflops
from tfp_robust.experiments.benchmarks.timing import random_ensemble
