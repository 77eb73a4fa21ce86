"""Certified bounds (IBP, CROWN): sound, tight at eps 0, void at eps 1, and
for any tf_keras model of standard layers."""

import re

import numpy as np
import pytest
import tf_keras

from conftest import SMALL_CONV
from conftest import random_params
from tfp_robust import ArchitectureEnsemble
from tfp_robust.attacks import apgd
from tfp_robust.attacks import gradient as attacks
from tfp_robust.evaluation import certify
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.evaluation.bounds import keras as keras_bounds
from tfp_robust import networks


@pytest.mark.parametrize('arch', [networks.Architecture.mlp(6, [8, 8], 3),
                                  SMALL_CONV], ids=['mlp', 'conv'])
def test_bounds_contain_random_points_of_the_ball_for_every_sample(arch):
  params = random_params(arch, 5, seed=1)
  ens = ArchitectureEnsemble(arch, params)
  rng = np.random.RandomState(2)
  x = rng.uniform(size=(4,) + arch.input_shape).astype(np.float32)
  eps = 0.1
  low, high = networks.interval_forward(
      arch, ens.params, np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1))
  p_low, p_high = certify.predictive_bounds(ens, x, eps)
  for _ in range(20):
    point = np.clip(x + rng.uniform(-eps, eps, size=x.shape), 0, 1)
    logits = networks.forward(arch, ens.params, point.astype(np.float32))
    assert np.all(logits >= low - 1e-4) and np.all(logits <= high + 1e-4)
    probs = np.exp(ens.predictive_log_probs(point).numpy())
    assert np.all(probs >= p_low - 1e-5) and np.all(probs <= p_high + 1e-5)


@pytest.mark.parametrize('method', certify.METHODS)
def test_certified_accuracy_at_zero_and_one(trained_net, moons, method):
  x, y = moons.x_test, moons.y_test
  if method != 'ibp':  # No XLA compile of the larger bound graphs in tests.
    trained_net = ArchitectureEnsemble(trained_net.architecture,
                                       trained_net.params, jit_compile=False)
  assert certify.certified_accuracy(trained_net, x, y, 0.0,
                                    method) == pytest.approx(
                                        trained_net.accuracy(x, y))
  assert certify.certified_accuracy(trained_net, x, y, 1.0, method) == 0.0


@pytest.mark.parametrize('method', ['ibp', 'crown'])
def test_certified_never_exceeds_attacked_accuracy(trained_net, moons, method):
  x, y = moons.x_test, moons.y_test
  ens = ArchitectureEnsemble(trained_net.architecture,
                             [np.repeat(p, 3, 0) for p in trained_net.params],
                             jit_compile=method == 'ibp')
  for eps in (0.01, 0.03):
    certified = certify.certified(ens, x, y, eps, method)
    attacked = ens.predict(apgd.apgd(ens, x, y, eps, num_steps=50)).numpy()
    # No certified image can be broken by any attack.
    assert np.all(attacked[certified] == y[certified])
    assert certified.mean() <= np.mean(attacked == y)


def test_other_backends_say_certification_needs_layers():
  fn = ensemble_lib.FunctionEnsemble(lambda p, x: x @ p, np.ones((2, 2, 3),
                                                                 np.float32),
                                     (2,), 3)
  for method in certify.METHODS:
    with pytest.raises(NotImplementedError,
                       match='interval bound propagation and CROWN'):
      certify.certified_accuracy(fn, np.zeros((1, 2), np.float32), [0], 0.1,
                                 method)


def test_an_unknown_method_is_refused_by_name(trained_net, moons):
  with pytest.raises(ValueError, match="method='deeppoly'.*'crown'"):
    certify.certified(trained_net, moons.x_test, moons.y_test, 0.1,
                      'deeppoly')


def _keras_conv_net(seed, x, y):
  """A conv net with batch norm and pooling, trained by plain tf_keras."""
  tf_keras.utils.set_random_seed(seed)
  net = tf_keras.Sequential([
      tf_keras.Input((8, 8, 1)),
      tf_keras.layers.Conv2D(4, 3, padding='same'),
      tf_keras.layers.BatchNormalization(),
      tf_keras.layers.ReLU(),
      tf_keras.layers.MaxPooling2D(),
      tf_keras.layers.Conv2D(4, 3, strides=2, activation='tanh'),
      tf_keras.layers.MaxPooling2D(2, strides=1, padding='same'),
      tf_keras.layers.Flatten(),
      tf_keras.layers.Dropout(0.2),
      tf_keras.layers.Dense(8),
      tf_keras.layers.LeakyReLU(0.1),
      tf_keras.layers.Dense(2)])
  net.compile(tf_keras.optimizers.Adam(0.01),
              tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  net.fit(x, y, epochs=10, batch_size=32, verbose=0)
  return net


@pytest.fixture(scope='module')
def keras_ensemble():
  rng = np.random.RandomState(0)
  x = rng.uniform(size=(160, 8, 8, 1)).astype(np.float32)
  x[:80] *= 0.4  # Class 0: dark images, class 1: bright ones.
  x[80:] = 0.6 + 0.4 * x[80:]
  y = np.repeat([0, 1], 80).astype(np.int32)
  return (ensemble_lib.KerasEnsemble([_keras_conv_net(s, x, y)
                                      for s in range(2)], jit_compile=False),
          x[::8], y[::8])


def test_keras_conv_net_with_batch_norm_is_certified_soundly(keras_ensemble):
  ens, x, y = keras_ensemble
  assert ens.accuracy(x, y) >= 0.9
  # At eps 0 the bounds are the models' own logits.
  low, high = certify.predictive_bounds(ens, x, 0.0)
  probs = np.exp(ens.predictive_log_probs(x).numpy())
  np.testing.assert_allclose(low, probs, atol=1e-5)
  np.testing.assert_allclose(high, probs, atol=1e-5)
  eps = 0.02
  crown = certify.certificate(ens, x, y, eps, 'crown')
  ibp = certify.certificate(ens, x, y, eps, 'ibp')
  assert np.all(crown >= ibp - 1e-6)
  certified = np.min(crown, -1) > 0.0
  assert certified.mean() > (np.min(ibp, -1) > 0.0).mean()
  # Sound: no point of the ball (random, vertices) and no PGD breaks it.
  rng = np.random.RandomState(1)
  noise = rng.uniform(-eps, eps, size=(40,) + x.shape)
  noise[:20] = eps * np.sign(noise[:20])
  for point in np.clip(x[None] + noise, 0, 1).astype(np.float32):
    log_probs = ens.predictive_log_probs(point).numpy()
    true = np.take_along_axis(log_probs, y[:, None], 1)
    gap = np.exp(true) - np.exp(log_probs)
    gap[np.arange(len(y)), y] = np.inf
    assert np.all(gap >= crown - 1e-5)
  x_adv = attacks.pgd(ens, x, y, eps, num_steps=20, loss='predictive')
  assert np.all(ens.predict(x_adv).numpy()[certified] == y[certified])


def test_functional_keras_chain_reads_like_its_sequential_twin(
    keras_ensemble):
  ens, x, y = keras_ensemble
  sequential = ens.models[0]
  inputs = tf_keras.Input((8, 8, 1))
  h = inputs
  for layer in sequential.layers:
    h = type(layer).from_config(layer.get_config())(h)
  functional = tf_keras.Model(inputs, h)
  functional.set_weights(sequential.get_weights())
  (structure, weights), (expected, expected_weights) = (
      keras_bounds.read_model(m) for m in (functional, sequential))
  assert structure == expected
  for got, want in zip(weights, expected_weights):
    np.testing.assert_array_equal(got, want)
  twin = ensemble_lib.KerasEnsemble([functional], jit_compile=False)
  one = ens.subset([0])
  np.testing.assert_allclose(certify.certificate(twin, x, y, 0.01, 'ibp'),
                             certify.certificate(one, x, y, 0.01, 'ibp'),
                             atol=1e-6)


@pytest.mark.parametrize('layer,name', [
    (lambda: tf_keras.layers.LayerNormalization(name='norm'),
     "'norm' (class LayerNormalization)"),
    (lambda: tf_keras.layers.Activation('elu', name='act'),
     "'act' (class Activation): activation 'elu'"),
    (lambda: tf_keras.layers.Dense(4, activation='swish', name='wide'),
     "'wide' (class Dense): activation 'swish'")])
def test_an_unsupported_layer_is_refused_by_name_and_class(layer, name):
  model = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(4),
                               layer(), tf_keras.layers.Dense(2)])
  ens = ensemble_lib.KerasEnsemble([model], jit_compile=False)
  with pytest.raises(keras_bounds.UnsupportedLayerError,
                     match=re.escape(name)):
    certify.certified(ens, np.zeros((1, 4), np.float32), [0], 0.1)


def test_a_residual_keras_model_is_refused_as_not_a_chain():
  inputs = tf_keras.Input((4,))
  h = tf_keras.layers.Dense(4, activation='relu')(inputs)
  h = tf_keras.layers.Add(name='skip')([h, inputs])
  model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(h))
  ens = ensemble_lib.KerasEnsemble([model], jit_compile=False)
  with pytest.raises(NotImplementedError, match="'skip' .class Add."):
    certify.certified(ens, np.zeros((1, 4), np.float32), [0], 0.1)


def test_protocol_rows_name_each_certified_method_and_check_the_tightest(
    trained_net, moons):
  from tfp_robust.core import config_lib  # pylint: disable=g-import-not-at-top
  from tfp_robust.evaluation import protocols  # pylint: disable=g-import-not-at-top
  from tfp_robust.reports import tables as reports  # pylint: disable=g-import-not-at-top
  ens = ArchitectureEnsemble(trained_net.architecture, trained_net.params,
                             jit_compile=False)
  x, y = moons.x_test[:60], moons.y_test[:60]
  config = config_lib.attack_section(attacks=('random',), eps=(0.03,),
                                     certify_method='crown')
  rows = protocols.evaluate(ens, x, y, config, labels={'method': 'sgd'})
  bounds = {r['loss']: r['adversarial_accuracy'] for r in rows
            if r['attack'] == 'certified'}
  assert set(bounds) == {'ibp', 'crown'}
  assert bounds['crown'] >= bounds['ibp']
  assert bounds['crown'] == certify.certified_accuracy(ens, x, y, 0.03)
  band = reports.curve_band(rows)
  assert band['certified_by'][0] == 'crown'
  assert band['certified'][0] == bounds['crown']
  del config['certify_method']  # The default: IBP alone.
  only = protocols.evaluate(ens, x, y, config)
  assert [r['loss'] for r in only if r['attack'] == 'certified'] == ['ibp']
  config.certify_method = 'exact'
  with pytest.raises(ValueError, match='certify_method'):
    protocols.evaluate(ens, x, y, config)
