"""Deterministic nets and deep ensembles trained with tf_keras."""

import numpy as np
import pytest

from tfp_robust import data
from tfp_robust.fit import models
from tfp_robust import networks

SMALL = networks.Architecture.mlp(2, [16], 2)
QUICK = models.TrainConfig(epochs=5, batch_size=64, learning_rate=1e-2,
                           seed=3)


def _weights(ens):
  return [p.numpy() for p in ens.params]


@pytest.fixture(scope='module')
def quick_net(moons):
  return models.train_deterministic(SMALL, moons.x_train, moons.y_train, QUICK)


def test_trained_net_is_accurate(trained_net, moons):
  assert trained_net.method == 'sgd' and trained_net.num_samples == 1
  assert trained_net.accuracy(moons.x_train, moons.y_train) > 0.97
  assert trained_net.accuracy(moons.x_test, moons.y_test) > 0.97


def test_same_seed_gives_identical_weights(quick_net, moons):
  again = models.train_deterministic(SMALL, moons.x_train, moons.y_train,
                                     QUICK)
  for a, b in zip(_weights(quick_net), _weights(again)):
    np.testing.assert_array_equal(a, b)
  other = models.train_deterministic(
      SMALL, moons.x_train, moons.y_train,
      models.TrainConfig(epochs=5, batch_size=64, learning_rate=1e-2, seed=4))
  assert np.abs(_weights(other)[0] - _weights(quick_net)[0]).max() > 1e-2


def test_deep_ensemble_members_are_the_seeded_nets(quick_net, moons):
  ens = models.train_deep_ensemble(SMALL, moons.x_train, moons.y_train, QUICK,
                                   num_members=3)
  assert ens.num_samples == 3 and ens.method == 'ensemble'
  weights = _weights(ens)
  # Member 0 is the net trained with the config's own seed.
  for stacked, single in zip(weights, _weights(quick_net)):
    np.testing.assert_array_equal(stacked[:1], single)
  for i in range(3):
    for j in range(i + 1, 3):
      assert np.abs(weights[0][i] - weights[0][j]).max() > 1e-2
  log_probs = ens.log_probs(moons.x_test).numpy()
  assert np.abs(log_probs[0] - log_probs[1]).max() > 1e-3
  assert ens.accuracy(moons.x_test, moons.y_test) > 0.75


def test_deep_ensemble_needs_a_member(moons):
  with pytest.raises(ValueError, match='num_members=0 is invalid: it must be an integer >= 1'):
    models.train_deep_ensemble(SMALL, moons.x_train, moons.y_train, QUICK, 0)


def test_keras_builder_follows_the_architecture():
  arch = networks.Architecture(
      (8, 8, 1), 3,
      ({'kind': 'conv2d', 'filters': 4, 'kernel_size': 3},
       {'kind': 'max_pool', 'size': 2}, {'kind': 'flatten'},
       {'kind': 'dense', 'units': 5}),
      'tanh')
  model = models.deterministic_model(arch)
  layers = models.weighted_layers(model)
  shapes = []
  for layer in layers:
    shapes += [tuple(layer.kernel.shape), tuple(layer.bias.shape)]
  assert shapes == [shape for _, shape in arch.param_shapes()]
  assert model.output_shape == (None, 3)


def test_small_conv_net_learns_mnist():
  mnist = data.load_tfds('mnist', flat=False, num_train=2000, num_test=500)
  arch = networks.Architecture(
      (28, 28, 1), 10,
      ({'kind': 'conv2d', 'filters': 8, 'kernel_size': 3},
       {'kind': 'max_pool', 'size': 2},
       {'kind': 'conv2d', 'filters': 8, 'kernel_size': 3},
       {'kind': 'max_pool', 'size': 2}), 'relu')
  net = models.train_deterministic(
      arch, mnist.x_train, mnist.y_train,
      models.TrainConfig(epochs=5, batch_size=64, learning_rate=3e-3, seed=0))
  assert net.accuracy(mnist.x_test, mnist.y_test) > 0.85
