"""Shared test setup: offline TFDS data, quiet TensorFlow, small fixtures.

The environment is set before any test module imports TensorFlow: offline
data, XLA off for the tiny runs (`tfp_robust.core.xla`). There is no
pytest.ini: the `slow` marker is registered here; CI runs every test, slow
ones included (`-m "not slow"` leaves them out of a quick local run).
"""

import os

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault(
    'TFDS_DATA_DIR',
    os.path.abspath(os.path.join(_REPO_ROOT, '..', 'shared',
                                 'tensorflow_datasets')))
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'
# Tiny chains and attacks run without XLA (compiling takes seconds that
# running them does not); one test per compiled path asks for jit_compile=True
# itself. `tfp_robust.core.xla`; set it to 1 to run the suite compiled.
os.environ.setdefault('TFP_ROBUST_JIT_COMPILE', '0')

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top


def pytest_configure(config):
  config.addinivalue_line(
      'markers', 'slow: a test of a minute or more; CI runs it too '
      '(-m "not slow" leaves it out locally).')
  config.addinivalue_line(
      'filterwarnings',
      'ignore:`layer.add_variable` is deprecated:UserWarning')
  config.addinivalue_line(
      'filterwarnings', 'ignore:The initializer RandomNormal is unseeded')
  config.addinivalue_line(
      'filterwarnings', 'ignore:distutils Version classes are deprecated')


@pytest.fixture(scope='session')
def moons():
  """Half moons, noise 0.1: 1000 training and 500 test points in [0, 1]^2."""
  from tfp_robust import data
  return data.half_moons(1000, 500, noise=0.1, seed=0)


@pytest.fixture(scope='session')
def moons_arch():
  from tfp_robust import networks
  return networks.Architecture.mlp(2, [32, 32], 2)


def _train_moons_net():
  from tfp_robust import data  # pylint: disable=g-import-not-at-top
  from tfp_robust import networks  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import models  # pylint: disable=g-import-not-at-top
  moons = data.half_moons(1000, 500, noise=0.1, seed=0)
  config = models.TrainConfig(epochs=100, batch_size=64, learning_rate=1e-2,
                              seed=0)
  net = models.train_deterministic(networks.Architecture.mlp(2, [32, 32], 2),
                                   moons.x_train, moons.y_train, config)
  return [p.numpy() for p in net.params]


@pytest.fixture(scope='session')
def trained_net(moons_arch):
  """A deterministic MLP trained to high accuracy on the half moons.

  Trained once for the whole suite (`disk_cache`: kept on disk, keyed by
  this code and the package's).
  """
  import disk_cache  # pylint: disable=g-import-not-at-top
  from tfp_robust import ensemble  # pylint: disable=g-import-not-at-top
  params = disk_cache.arrays('trained_net', _train_moons_net)
  return ensemble.ArchitectureEnsemble(moons_arch, params, method='sgd')


def _small_conv():
  from tfp_robust import networks
  return networks.Architecture(
      (8, 8, 1), 3,
      ({'kind': 'conv2d', 'filters': 4, 'kernel_size': 3},
       {'kind': 'max_pool', 'size': 2},
       {'kind': 'flatten'},
       {'kind': 'dense', 'units': 5}),
      'relu')


# A conv net on 8x8 images: conv, pool, flatten, dense, logits.
SMALL_CONV = _small_conv()


def random_params(architecture, num_samples, seed=0, scale=0.5):
  """Gaussian weights `[S, ...]` in `architecture.param_shapes()` order."""
  rng = np.random.RandomState(seed)
  return [(scale * rng.normal(size=(num_samples,) + shape)).astype(np.float32)
          for _, shape in architecture.param_shapes()]
