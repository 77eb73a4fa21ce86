"""Timing and the shared pieces of the benchmarks.

Absolute seconds depend on the machine and on what else runs on it; ratios
of two measurements taken side by side in one process do much less, so the
benchmarks state their targets as ratios (see `binaries/benchmark.py`).
"""

import time
from typing import Callable

import numpy as np
import tensorflow as tf

from tfp_robust import ensemble as ensemble_lib


def best_time(fn: Callable, repeats: int = 3) -> float:
  """Best wall time of `fn()` over `repeats` runs, after one warm-up run."""
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def matmul_gflops(m: int = 4096, k: int = 1024, n: int = 1024,
                  repeats: int = 5) -> float:
  """GFLOP/s of one compiled float32 `tf.matmul` of `[m, k] x [k, n]`."""
  a = tf.random.stateless_normal([m, k], [1, 2])
  b = tf.random.stateless_normal([k, n], [3, 4])
  fn = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)),
                   jit_compile=True)
  seconds = best_time(lambda: fn(a, b).numpy(), repeats)
  return 2.0 * m * k * n / seconds / 1e9


def random_ensemble(architecture, num_samples, seed=0, **kwargs):
  params = []
  for index, (_, shape) in enumerate(architecture.param_shapes()):
    fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    params.append(tf.random.stateless_normal(
        (num_samples,) + shape, [seed, index],
        stddev=np.sqrt(2.0 / fan_in) if len(shape) > 1 else 0.01))
  return ensemble_lib.ArchitectureEnsemble(architecture, params, **kwargs)


def dense_forward_flops(architecture, batch, num_samples) -> float:
  return 2.0 * batch * num_samples * sum(
      int(np.prod(shape)) for name, shape in architecture.param_shapes()
      if name.endswith('kernel'))
