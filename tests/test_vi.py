"""Variational inference with Flipout layers and its posterior ensemble."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_robust.fit import models
from tfp_robust import networks
from tfp_robust.fit import vi

CONFIG = models.TrainConfig(epochs=60, batch_size=64, learning_rate=3e-2,
                            seed=0)


@pytest.fixture(scope='module')
def fitted(moons, moons_arch):
  return vi.train(moons_arch, moons.x_train, moons.y_train, CONFIG)


def test_elbo_per_example_rises(fitted, moons):
  elbo = np.array(fitted.elbo_per_example)
  assert fitted.num_train == len(moons.x_train)
  assert len(elbo) == CONFIG.epochs and np.all(np.isfinite(elbo))
  assert np.all(elbo < 0)  # A log-likelihood minus a KL, per example.
  assert elbo[-1] > elbo[0] + 1.0
  # Mostly monotone: the last ten epochs beat the first ten.
  assert elbo[-10:].mean() > elbo[:10].mean() + 0.5


def test_kl_is_divided_by_the_training_set_size(fitted, moons):
  model = fitted.model
  model(moons.x_test[:4])
  kl = sum(float(tf.reduce_sum(tfp.distributions.kl_divergence(
      layer.kernel_posterior, layer.kernel_prior)))
           for layer in models.weighted_layers(model))
  assert kl > 1.0
  np.testing.assert_allclose(float(tf.add_n(model.losses)),
                             kl / len(moons.x_train), rtol=1e-4)


def test_posterior_ensemble_is_accurate(fitted, moons, moons_arch):
  ens = vi.posterior_ensemble(fitted, moons_arch, 20, seed=0)
  assert ens.num_samples == 20 and ens.method == 'vi'
  assert ens.architecture == moons_arch
  assert ens.accuracy(moons.x_test, moons.y_test) > 0.85
  # The draws differ, so this is a distribution over functions.
  log_probs = ens.log_probs(moons.x_test).numpy()
  assert np.abs(log_probs[0] - log_probs[1]).max() > 1e-3


def test_posterior_ensemble_seeds(fitted, moons_arch):
  a = vi.posterior_ensemble(fitted, moons_arch, 5, seed=1)
  b = vi.posterior_ensemble(fitted.model, moons_arch, 5, seed=1)
  c = vi.posterior_ensemble(fitted, moons_arch, 5, seed=2)
  for pa, pb in zip(a.params, b.params):
    np.testing.assert_array_equal(pa.numpy(), pb.numpy())
  assert np.abs(a.params[0].numpy() - c.params[0].numpy()).max() > 1e-3
  assert np.abs(a.params[2].numpy() - c.params[2].numpy()).max() > 1e-3


def test_posterior_draws_follow_the_variational_posterior(fitted, moons_arch):
  num_samples = 2000
  ens = vi.posterior_ensemble(fitted, moons_arch, num_samples, seed=3)
  for index, layer in enumerate(models.weighted_layers(fitted.model)):
    draws = ens.params[2 * index].numpy()
    loc = layer.kernel_posterior.distribution.loc.numpy()
    scale = layer.kernel_posterior.distribution.scale.numpy()
    assert draws.shape == (num_samples,) + loc.shape
    z = (draws.mean(0) - loc) / (scale / np.sqrt(num_samples))
    assert np.abs(z).max() < 5.0
    np.testing.assert_allclose(draws.std(0), scale, rtol=0.15)


def test_train_checks_its_inputs(moons, moons_arch):
  with pytest.raises(ValueError, match=r'Labels must have shape \[1000\]'):
    vi.train(moons_arch, moons.x_train, moons.y_train[:10], CONFIG)
  with pytest.raises(ValueError, match=r'x=.* must be scaled to \[0, 1\]'):
    vi.train(moons_arch, moons.x_train * 10, moons.y_train, CONFIG)


def test_conv_flipout_model_gives_a_conv_posterior_ensemble():
  from tfp_robust import data
  from tfp_robust import networks
  mnist = data.load_tfds('mnist', flat=False, num_train=1000, num_test=200)
  arch = networks.Architecture(
      (28, 28, 1), 10,
      ({'kind': 'conv2d', 'filters': 8, 'kernel_size': 3},
       {'kind': 'max_pool', 'size': 4}), 'relu')
  fitted = vi.train(arch, mnist.x_train, mnist.y_train,
                    models.TrainConfig(epochs=5, batch_size=50,
                                       learning_rate=1e-2, seed=0))
  assert fitted.elbo_per_example[-1] > fitted.elbo_per_example[0]
  ens = vi.posterior_ensemble(fitted, arch, 5, seed=0)
  assert [tuple(p.shape[1:]) for p in ens.params] == [
      shape for _, shape in arch.param_shapes()]
  assert ens.accuracy(mnist.x_test, mnist.y_test) > 0.6


def test_variational_initialisers_are_seeded_per_run_and_layer():
  import tf_keras  # pylint: disable=g-import-not-at-top
  arch = networks.Architecture.mlp(30, [24, 24], 3)

  def means(seed):
    tf_keras.utils.set_random_seed(seed)
    model = vi.flipout_model(arch, 100, seed)
    return [layer.kernel_posterior.mean().numpy().ravel()
            for layer in models.weighted_layers(model)]

  first, again, other = means(0), means(0), means(1)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(first, other):
    assert not np.allclose(a, b)
  # Layers do not repeat each other's initial means.
  for a, b in ((first[0], first[1]), (first[1], first[2])):
    common = min(a.size, b.size)
    assert not np.allclose(a[:common], b[:common])
