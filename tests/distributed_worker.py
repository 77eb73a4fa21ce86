"""Two logical CPU devices against one, in a fresh process.

The CPU must be split into logical devices before TensorFlow initialises,
so this runs as `python tests/distributed_worker.py OUT_DIR`: it configures
two logical CPUs first, then computes every comparison of
`test_distributed.py` on one device and across both, and writes the arrays
to `OUT_DIR/<part>.npz` (a part that raised writes its traceback to
`OUT_DIR/<part>.error` instead, and the others still run).
"""

import dataclasses
import os
import sys
import time
import traceback
import warnings

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
warnings.filterwarnings('ignore')

from tfp_robust.fit.mcmc import distributed  # pylint: disable=g-import-not-at-top

STRATEGY = distributed.cpu_strategy(2)

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
import tf_keras  # pylint: disable=g-import-not-at-top

from tfp_robust.fit import hmc  # pylint: disable=g-import-not-at-top
from tfp_robust.fit import models  # pylint: disable=g-import-not-at-top
from tfp_robust import networks  # pylint: disable=g-import-not-at-top
from tfp_robust.fit import vi  # pylint: disable=g-import-not-at-top

MLP = networks.Architecture.mlp(2, [8], 3)
CONV = networks.Architecture(
    (8, 8, 1), 3,
    ({'kind': 'conv2d', 'filters': 4, 'kernel_size': 3},
     {'kind': 'max_pool', 'size': 2},
     {'kind': 'flatten'},
     {'kind': 'dense', 'units': 5}),
    'relu')


def _points(architecture, num_points, seed):
  rng = np.random.RandomState(seed)
  x = rng.uniform(size=(num_points,) + tuple(architecture.input_shape))
  y = rng.randint(0, architecture.num_classes, num_points)
  return x.astype(np.float32), y.astype(np.int64)


def _moons_like(num_points, seed=0):
  """Two classes in the unit square split by a curve (quick to learn)."""
  rng = np.random.RandomState(seed)
  x = rng.uniform(size=(num_points, 2)).astype(np.float32)
  y = (x[:, 1] > 0.5 + 0.3 * np.sin(6 * x[:, 0])).astype(np.int64)
  return x, y


def part_log_joint():
  """Value and gradient, one device and sharded (odd N: uneven shards)."""
  out = {}
  for name, architecture, num_points in (('mlp', MLP, 101),
                                         ('conv', CONV, 37)):
    x, y = _points(architecture, num_points, seed=1)
    params = hmc.initial_network_state(architecture, 3, tf.constant([3, 4]))
    one = hmc.network_log_joint(architecture, x, y, prior_scale=0.7)
    two = distributed.sharded_log_joint(architecture, x, y, 0.7, STRATEGY)
    value, grads = tfp.math.value_and_gradient(one, params)
    # As the driver calls it: inside a tf.function, without XLA.
    sharded = tf.function(
        lambda *p, f=two: tfp.math.value_and_gradient(f, list(p)),
        jit_compile=False)
    value2, grads2 = sharded(*params)
    out[f'{name}_value_one'] = value.numpy()
    out[f'{name}_value_two'] = value2.numpy()
    for index, (g1, g2) in enumerate(zip(grads, grads2)):
      out[f'{name}_grad{index}_one'] = g1.numpy()
      out[f'{name}_grad{index}_two'] = g2.numpy()
  shards = distributed.place_shards(STRATEGY, [np.arange(101)])[0]
  out['shard_sizes'] = np.array([int(v.shape[0]) for v in shards.values])
  out['shard_devices'] = np.array([v.device for v in shards.values])
  # Under XLA the target refuses, with a clear message.
  jitted = tf.function(
      lambda *p, f=two: tfp.math.value_and_gradient(f, list(p)),
      jit_compile=True)
  try:
    jitted(*params)
    out['xla_error'] = np.array('')
  except ValueError as error:
    out['xla_error'] = np.array(str(error))
  return out


def part_hmc():
  """A short HMC run, one device (no XLA) against two (XLA turned off)."""
  x, y = _moons_like(51)
  architecture = networks.Architecture.mlp(2, [4], 2)
  config = hmc.HMCConfig(num_results=6, num_burnin_steps=8,
                         num_leapfrog_steps=4, step_size=0.05, num_chains=2,
                         segment_size=3, seed=5, jit_compile=False)
  _, one = hmc.fit(architecture, x, y, config)
  # jit_compile=True is asked for: fit turns it off for the sharded target.
  _, two = hmc.fit(architecture, x, y,
                   dataclasses.replace(config, jit_compile=True),
                   strategy=STRATEGY)
  out = {}
  for name, result in (('one', one), ('two', two)):
    for index, samples in enumerate(result.samples):
      out[f'samples{index}_{name}'] = samples
    out[f'log_prob_{name}'] = result.log_prob
    out[f'accepted_{name}'] = result.is_accepted
    out[f'step_size_{name}'] = np.array(result.step_size)
  return out


def part_sgd():
  """Deterministic training, 3 epochs of global batch 64, 1 and 2 devices."""
  x, y = _moons_like(512)
  config = models.TrainConfig(epochs=3, batch_size=64, learning_rate=1e-2,
                              seed=3)
  out = {}
  for name, strategy in (('one', None), ('two', STRATEGY)):
    architecture = networks.Architecture.mlp(2, [16], 2)
    net = models.train_deterministic(architecture, x, y, config,
                                     strategy=strategy)
    for index, param in enumerate(net.params):
      out[f'param{index}_{name}'] = np.asarray(param)
  return out


class _FirstWeights(tf_keras.callbacks.Callback):
  """The variational parameters before the first step."""

  def on_train_begin(self, logs=None):
    self.weights = [w.numpy() for w in self.model.weights]


def part_vi():
  """VI, 10 epochs of global batch 64, 1 and 2 devices: ELBO per epoch."""
  x, y = _moons_like(512)
  architecture = networks.Architecture.mlp(2, [16], 2)
  config = models.TrainConfig(epochs=10, batch_size=64, learning_rate=2e-2,
                              seed=2)
  out = {}
  for name, strategy in (('one', None), ('two', STRATEGY)):
    first = _FirstWeights()
    result = vi.train(architecture, x, y, config, callbacks=[first],
                      strategy=strategy)
    out[f'elbo_{name}'] = np.array(result.elbo_per_example)
    for index, weight in enumerate(first.weights):
      out[f'initial{index}_{name}'] = weight
    posterior = vi.posterior_ensemble(result, architecture, 20, seed=0)
    out[f'accuracy_{name}'] = np.array(posterior.accuracy(x, y))
  return out


PARTS = {'log_joint': part_log_joint, 'hmc': part_hmc, 'sgd': part_sgd,
         'vi': part_vi}


def main(out_dir, names):
  os.makedirs(out_dir, exist_ok=True)
  assert len(tf.config.list_logical_devices('CPU')) == 2
  for name in names:
    start = time.time()
    try:
      arrays = PARTS[name]()
      arrays['seconds'] = np.array(time.time() - start)
      np.savez(os.path.join(out_dir, name + '.npz'), **arrays)
    except Exception:  # pylint: disable=broad-except
      with open(os.path.join(out_dir, name + '.error'), 'w') as f:
        f.write(traceback.format_exc())


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2:] or list(PARTS))
