"""One HMC target across devices: the full-batch log-joint, data-parallel.

`sharded_log_joint` gives what `hmc.network_log_joint` gives, an ordinary
`log_joint(*params) -> [C]` that `tfp.mcmc` (and `mcmc.driver`) sample, but
the log-likelihood of the N training points is computed by the replicas of a
`tf.distribute` strategy, each on its own contiguous shard of the data:

- the shards are cut once (`shard_bounds`: the first `N mod R` replicas hold
  one point more) and placed once on their replica's device
  (`place_shards`); every call sends the weights, never the data;
- every call runs one `strategy.run`: each replica computes its shard's
  log-likelihood per chain and, with a `GradientTape`, its gradient; the
  values and gradients are summed across replicas (`strategy.reduce`, SUM)
  in cross-replica context;
- the summed value goes out through `tf.custom_gradient`, whose gradient is
  the summed gradient (scaled by the incoming per-chain cotangent), so
  `tfp.math.value_and_gradient` inside the sampler sees the exact full-data
  gradient after one forward and one backward pass per replica;
- the Gaussian prior is added once, outside the replicas, with ordinary
  autodiff.

This is the pattern of TFP's own cross-device log-prob example
(`discussion/examples/cross_gpu_logprob.ipynb`: `strategy.run` inside a
`tf.custom_gradient` target, the kernel in cross-replica context). TFP's
other route, `tfp.experimental.distribute` (`Sharded` distributions,
`make_sharded_log_prob_parts`) with kernels' `experimental_shard_axis_names`,
runs the *whole* sampler inside `strategy.run` (every replica steps the same
chain, psum inside the log-prob); that would move `strategy.run` into the
checkpointed driver, so it is not used here: the driver samples this target
unchanged.

The custom gradient assumes what `tfp.mcmc` assumes of a batch of chains:
chain c's value depends only on chain c's weights (so the gradient of the
sum over chains is each chain's gradient). It is a first derivative only.

XLA: `tf.function(jit_compile=True)` compiles a function into one program
for one device, so the replicas would silently be folded into a single
device. The target refuses to be traced under XLA (a `ValueError` saying to
use `jit_compile=False`); `hmc.fit(..., strategy=...)` turns XLA off by
itself and logs it.
"""

import functools
from typing import Callable, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_robust import ensemble as ensemble_lib
from tfp_robust import networks


def shard_bounds(num_points: int, num_shards: int) -> List[Tuple[int, int]]:
  """Contiguous `[start, stop)` per shard; the first `N mod R` get one more."""
  if num_shards < 1:
    raise ValueError(f'num_shards must be at least 1, got {num_shards}.')
  if num_points < num_shards:
    raise ValueError(
        f'{num_points} training points cannot be split over {num_shards} '
        'replicas (each needs at least one): use fewer devices.')
  base, extra = divmod(num_points, num_shards)
  bounds, start = [], 0
  for shard in range(num_shards):
    stop = start + base + (1 if shard < extra else 0)
    bounds.append((start, stop))
    start = stop
  return bounds


def place_shards(strategy: tf.distribute.Strategy,
                 arrays: Sequence[np.ndarray]) -> list:
  """Each replica's contiguous slice of every array, on its device, once.

  Returns one distributed value per array (`PerReplica` for a multi-device
  strategy), whose component for replica r is rows `shard_bounds(N, R)[r]`
  placed on r's device. With a multi-worker strategy every worker passes
  the whole arrays and places its own replicas' slices.
  """
  num_points = len(arrays[0])
  bounds = shard_bounds(num_points, strategy.num_replicas_in_sync)
  try:
    devices = list(strategy.extended.worker_devices)
  except RuntimeError:  # The default strategy: one replica, current device.
    devices = [None]

  def value_fn(array, context):
    replica = context.replica_id_in_sync_group
    start, stop = bounds[replica]
    # Global replica r is local replica r mod (replicas per worker).
    with tf.device(devices[replica % len(devices)]):
      return tf.identity(tf.convert_to_tensor(array[start:stop]))

  return [strategy.experimental_distribute_values_from_function(
      functools.partial(value_fn, array)) for array in arrays]


def in_xla_context() -> bool:
  """Whether the graph being traced is compiled with XLA (`jit_compile`)."""
  try:
    # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
    from tensorflow.python.ops import control_flow_util
  except ImportError:  # pragma: no cover
    return False
  if tf.executing_eagerly():
    return False
  return control_flow_util.GraphOrParentsInXlaContext(
      tf.compat.v1.get_default_graph())


def sharded_sum(local_fn: Callable, strategy: tf.distribute.Strategy,
                shards: Sequence) -> Callable:
  """`f(*params) -> [C]`: `local_fn` summed over the replicas' shards.

  Args:
    local_fn: `local_fn(params, *shard) -> [C]`, one replica's share (e.g. its
      shard's log-likelihood per chain); differentiable in `params`, and chain
      c's value depends only on chain c's parameters.
    strategy: the `tf.distribute` strategy whose replicas hold `shards`.
    shards: distributed values from `place_shards`.

  Returns:
    `f(*params)`, the sum over replicas, with the summed gradient as its
    `tf.custom_gradient`. Refuses XLA (see the module docstring).
  """
  shards = list(shards)

  def replica_value_and_gradient(params, *shard):
    with tf.GradientTape() as tape:
      tape.watch(params)
      value = local_fn(params, *shard)
      total = tf.reduce_sum(value)
    return value, tape.gradient(total, params)

  @tf.function(autograph=False)
  def value_and_gradient(params):
    per_replica = strategy.run(replica_value_and_gradient,
                               args=(params,) + tuple(shards))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

  @tf.custom_gradient
  def summed(*params):
    # Checked here, at every trace of the caller: the inner function's trace
    # may be reused inside an XLA-compiled caller.
    if in_xla_context():
      raise ValueError(
          'A sharded target cannot be compiled with XLA: jit_compile=True '
          'would compile every replica into one single-device program. Run '
          'the sampler with jit_compile=False (HMCConfig(jit_compile=False)); '
          'hmc.fit(..., strategy=...) does so by itself.')
    params = [tf.convert_to_tensor(p) for p in params]
    value, gradients = value_and_gradient(params)

    def grad_fn(upstream):
      # upstream is [C] (one cotangent per chain); each chain's gradient
      # only involves its own weights.
      return [tf.reshape(upstream, [-1] + [1] * (len(g.shape) - 1)) * g
              for g in gradients]

    return value, grad_fn

  return summed


def sharded_log_joint(architecture: networks.Architecture, x, y,
                      prior_scale: float,
                      strategy: tf.distribute.Strategy) -> Callable:
  """`hmc.network_log_joint`, the likelihood summed across replicas.

  Args:
    architecture: the network description.
    x: all training inputs `[N, *input_shape]`.
    y: all training labels `[N]`.
    prior_scale: standard deviation of the Gaussian prior.
    strategy: a `tf.distribute.Strategy` (e.g. `MirroredStrategy` over the
      local devices); each of its R replicas holds about N / R points.

  Returns:
    `log_joint(*params) -> [C]`, for weights with a leading chain axis C,
    equal within float rounding to `hmc.network_log_joint`'s, with the same
    gradient. Not XLA-compilable (a clear `ValueError` if tried).
  """
  if not isinstance(strategy, tf.distribute.Strategy):
    raise TypeError('strategy must be a tf.distribute.Strategy (e.g. '
                    'tf.distribute.MirroredStrategy()), got '
                    f'{type(strategy).__name__}.')
  x, y = ensemble_lib.check_inputs(x, architecture.input_shape, y,
                                   architecture.num_classes)
  x = np.asarray(x, np.float32)
  one_hot = np.eye(architecture.num_classes, dtype=np.float32)[np.asarray(y)]
  shards = place_shards(strategy, [x, one_hot])
  logging.info('Sharded log-joint: %d training points over %d replicas (%s).',
               len(x), strategy.num_replicas_in_sync,
               ', '.join(f'{stop - start}' for start, stop in shard_bounds(
                   len(x), strategy.num_replicas_in_sync)))

  def local_log_likelihood(params, x_shard, one_hot_shard):
    return tf.reduce_sum(
        networks.log_probs(architecture, params, x_shard) * one_hot_shard,
        axis=[-2, -1])

  log_likelihood = sharded_sum(local_log_likelihood, strategy, shards)
  prior = tfp.distributions.Normal(0.0, float(prior_scale))

  def log_joint(*params):
    log_prior = tf.add_n([
        tf.reduce_sum(prior.log_prob(p), axis=list(range(1, len(p.shape))))
        for p in params])
    return log_likelihood(*params) + log_prior

  return log_joint


def cpu_strategy(num_devices: int,
                 devices: Optional[Sequence[str]] = None
                 ) -> tf.distribute.MirroredStrategy:
  """A `MirroredStrategy` over `num_devices` logical CPU devices.

  Splits the first physical CPU into `num_devices` logical devices, which
  must happen before TensorFlow initialises its devices (first op, first
  `list_logical_devices`): call it first in a process. On 2 cores this
  tests the sharded code path; it does not add compute.
  """
  if devices is None:
    cpu = tf.config.list_physical_devices('CPU')[0]
    current = tf.config.get_logical_device_configuration(cpu)
    wanted = [tf.config.LogicalDeviceConfiguration()] * num_devices
    if current is None or len(current) != num_devices:
      try:
        tf.config.set_logical_device_configuration(cpu, wanted)
      except RuntimeError as error:
        raise RuntimeError(
            f'Cannot split the CPU into {num_devices} logical devices: '
            'TensorFlow has already initialised its devices. Call '
            'cpu_strategy first in the process (the tests run it in a '
            'subprocess).') from error
    devices = [d.name for d in tf.config.list_logical_devices('CPU')]
  return tf.distribute.MirroredStrategy(list(devices)[:num_devices])
