"""Function-, Keras- and stochastic-backed ensembles through the one interface."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from conftest import random_params
from tfp_robust.attacks import gradient as attacks
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.evaluation import gradients
from tfp_robust.evaluation import metrics
from tfp_robust import networks

MLP = networks.Architecture.mlp(2, [16, 8], 3)


def mlp_logits(params, x):
  """One sample of MLP, written by hand as a user would."""
  w0, b0, w1, b1, w2, b2 = params
  h = tf.nn.relu(x @ w0 + b0)
  h = tf.nn.relu(h @ w1 + b1)
  return h @ w2 + b2


@pytest.fixture(scope='module')
def mlp_setup():
  params = random_params(MLP, 6, seed=3, scale=1.0)
  x = np.random.RandomState(4).uniform(size=(10, 2)).astype(np.float32)
  labels = np.random.RandomState(5).randint(0, 3, size=10).astype(np.int32)
  return params, x, labels


@pytest.mark.parametrize('budget', [1 << 30, 1], ids=['one_chunk', 'chunked'])
@pytest.mark.parametrize('loss', ['expected', 'predictive', 'margin'])
def test_function_backend_matches_architecture(mlp_setup, budget, loss):
  params, x, labels = mlp_setup
  reference = ensemble_lib.ArchitectureEnsemble(MLP, params)
  function = ensemble_lib.FunctionEnsemble(mlp_logits, params, (2,), 3,
                                           memory_budget_bytes=budget)
  if budget == 1:
    assert len(list(function.chunks(10))) == 6
  np.testing.assert_allclose(function.log_probs(x).numpy(),
                             reference.log_probs(x).numpy(), atol=1e-5)
  got = gradients.loss_and_input_gradient(function, x, labels, loss)
  want = gradients.loss_and_input_gradient(reference, x, labels, loss)
  np.testing.assert_allclose(got[0].numpy(), want[0].numpy(), atol=1e-5)
  np.testing.assert_allclose(got[1].numpy(), want[1].numpy(), atol=1e-5)


def test_function_backend_sub_ensembles_and_prefix_gradients(mlp_setup):
  params, x, labels = mlp_setup
  reference = ensemble_lib.ArchitectureEnsemble(MLP, params)
  function = ensemble_lib.FunctionEnsemble(mlp_logits, params, (2,), 3)
  np.testing.assert_allclose(function.evenly_spaced(3).log_probs(x).numpy(),
                             reference.evenly_spaced(3).log_probs(x).numpy(),
                             atol=1e-5)
  got = gradients.expected_gradients_by_num_samples(function, x, labels,
                                                    [1, 4, 6])
  want = gradients.expected_gradients_by_num_samples(reference, x, labels,
                                                     [1, 4, 6])
  for n in (1, 4, 6):
    np.testing.assert_allclose(got[n], want[n], atol=1e-5)


def test_function_backend_refuses_bad_input(mlp_setup):
  params, _, _ = mlp_setup
  with pytest.raises(ValueError, match='same leading sample axis'):
    ensemble_lib.FunctionEnsemble(mlp_logits, [params[0][:2]] + params[1:],
                                  (2,), 3)
  with pytest.raises(ValueError, match=r'must return \[B, 4\]'):
    ensemble_lib.FunctionEnsemble(mlp_logits, params, (2,), 4)
  bad = [p.copy() for p in params]
  bad[0][0, 0, 0] = np.nan
  with pytest.raises(ValueError, match='NaN or infinite weights'):
    ensemble_lib.FunctionEnsemble(mlp_logits, bad, (2,), 3)


def _bn_conv_net(seed):
  tf_keras.utils.set_random_seed(seed)
  return tf_keras.Sequential([
      tf_keras.Input((28, 28, 1)),
      tf_keras.layers.Conv2D(8, 3, padding='same'),
      tf_keras.layers.BatchNormalization(momentum=0.9),
      tf_keras.layers.ReLU(),
      tf_keras.layers.MaxPool2D(2),
      tf_keras.layers.Conv2D(16, 3, padding='same'),
      tf_keras.layers.BatchNormalization(momentum=0.9),
      tf_keras.layers.ReLU(),
      tf_keras.layers.MaxPool2D(2),
      tf_keras.layers.Flatten(),
      tf_keras.layers.Dense(10),
  ])


@pytest.fixture(scope='module')
def bn_conv_nets():
  """Two conv nets with batch norm, trained by plain tf_keras on MNIST."""
  from tfp_robust import data
  mnist = data.load_tfds('mnist', flat=False, num_train=3000, num_test=200)
  nets = []
  for seed in (0, 1):
    net = _bn_conv_net(seed)
    net.compile(tf_keras.optimizers.Adam(3e-3),
                tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(mnist.x_train, mnist.y_train, batch_size=128, epochs=3, verbose=0)
    nets.append(net)
  return nets, mnist.x_test[:100], mnist.y_test[:100]


def _hand_fgsm(model, x, y, eps):
  x = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = tf_keras.losses.sparse_categorical_crossentropy(
        y, model(x, training=False), from_logits=True)
  return tf.clip_by_value(x + eps * tf.sign(tape.gradient(loss, x)), 0., 1.)


def _hand_pgd(model, x, y, eps, steps, step_size):
  x0 = tf.constant(x)
  x_adv = x0
  for _ in range(steps):
    with tf.GradientTape() as tape:
      tape.watch(x_adv)
      loss = tf_keras.losses.sparse_categorical_crossentropy(
          y, model(x_adv, training=False), from_logits=True)
    x_adv = x_adv + step_size * tf.sign(tape.gradient(loss, x_adv))
    x_adv = tf.clip_by_value(tf.clip_by_value(x_adv, x0 - eps, x0 + eps), 0.,
                             1.)
  return x_adv


def _accuracy(model, x, y):
  return float(np.mean(np.argmax(model(x, training=False), -1) == y))


def test_keras_backend_attacks_a_batch_norm_conv_net(bn_conv_nets):
  nets, x, y = bn_conv_nets
  net = nets[0]
  ens = ensemble_lib.KerasEnsemble(net)
  assert ens.num_samples == 1 and ens.input_shape == (28, 28, 1)
  assert ens.num_classes == 10
  clean = ens.accuracy(x, y)
  assert clean == pytest.approx(_accuracy(net, x, y)) and clean > 0.8
  eps = 0.1
  ours = attacks.fgsm(ens, x, y, eps, loss='predictive')
  hand = _hand_fgsm(net, x, y, eps)
  ours_acc = metrics.robustness(ens, x, y, ours)['adversarial_accuracy']
  assert ours_acc == pytest.approx(_accuracy(net, hand.numpy(), y))
  assert np.mean(np.abs(ours.numpy() - hand.numpy()) > 1e-6) < 1e-3
  ours = attacks.pgd(ens, x, y, eps, num_steps=10, step_size=0.025,
                     random_start=False, loss='expected')
  hand = _hand_pgd(net, x, y, eps, 10, 0.025)
  ours_acc = metrics.robustness(ens, x, y, ours)['adversarial_accuracy']
  assert ours_acc == pytest.approx(_accuracy(net, hand.numpy(), y))
  assert ours_acc < clean - 0.3  # The attack works on this undefended net.


def test_keras_backend_deep_ensemble_and_checks(bn_conv_nets):
  from tfp_robust.evaluation import checks
  nets, x, y = bn_conv_nets
  ens = ensemble_lib.KerasEnsemble(nets, method='ensemble',
                                   memory_budget_bytes=1)
  assert len(list(ens.chunks(len(x)))) == 2
  probs = np.mean([tf.nn.softmax(n(x, training=False)).numpy() for n in nets],
                  0)
  np.testing.assert_allclose(np.exp(ens.predictive_log_probs(x).numpy()),
                             probs, atol=1e-5)
  assert ens.take(1).models == [nets[0]]
  findings = {f.name: f for f in checks.run_checks(
      ens, x[:20], y[:20], 0.1, pgd_steps=5, strong_steps=5,
      strong_restarts=1)}
  assert findings['nonzero_gradients_expected'].passed
  assert findings['random_weaker_than_every_attack'].passed


def test_keras_backend_refuses_softmax_outputs_given_as_logits():
  model = tf_keras.Sequential([tf_keras.Input((2,)),
                               tf_keras.layers.Dense(3, activation='softmax')])
  with pytest.raises(ValueError, match='ends in a softmax'):
    ensemble_lib.KerasEnsemble(model)
  ens = ensemble_lib.KerasEnsemble(model, outputs='probabilities')
  x = np.full((4, 2), 0.5, np.float32)
  np.testing.assert_allclose(np.exp(ens.log_probs(x).numpy()).sum(-1), 1.0,
                             rtol=1e-5)
  other = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(3)])
  with pytest.raises(ValueError, match='share input and output shapes'):
    ensemble_lib.KerasEnsemble([ens.models[0], other], outputs='probabilities')


@pytest.mark.parametrize('cast, shown', [
    (tf.strings.as_string, 'string (None, 3)'),
    (lambda t: t > 0, 'bool (None, 3)'),
    (lambda t: tf.cast(t, tf.int32), 'int32 (None, 3)'),
    (lambda t: t[:, :1], 'float32 (None, 1)')])
def test_keras_backend_refuses_outputs_that_are_not_class_scores(cast, shown):
  # Issue 27, item 5: a string or boolean output was accepted, and the first
  # predict failed inside autograph ("DataType string not in list").
  inputs = tf_keras.Input((2,))
  model = tf_keras.Model(inputs, tf_keras.layers.Lambda(cast)(
      tf_keras.layers.Dense(3)(inputs)))
  with pytest.raises(ValueError) as error:
    ensemble_lib.KerasEnsemble(model)
  assert str(error.value) == (
      f'models[0] must return logits as floats [B, C] with C >= 2 classes; it '
      f'returns {shown}. End it in a Dense(num_classes) layer (for one '
      'sigmoid logit z, return [0, z]).')


def test_keras_backend_takes_half_precision_logits():
  inputs = tf_keras.Input((2,))
  dense = tf_keras.layers.Dense(3)
  half = tf_keras.Model(inputs, tf_keras.layers.Lambda(
      lambda t: tf.cast(t, tf.float16))(dense(inputs)))
  full = tf_keras.Model(inputs, dense(inputs))
  x = np.random.RandomState(0).uniform(size=(4, 2)).astype(np.float32)
  got = ensemble_lib.KerasEnsemble(half, jit_compile=False)
  want = ensemble_lib.KerasEnsemble(full, jit_compile=False)
  assert got.log_probs(x).dtype == tf.float32
  np.testing.assert_allclose(got.log_probs(x), want.log_probs(x), atol=1e-2)
  _, gradient = gradients.loss_and_input_gradient(got, x,
                                                  np.array([0, 1, 2, 0]))
  assert np.abs(gradient.numpy()).sum() > 0


def _flipout_model():
  return tf_keras.Sequential([
      tf_keras.Input((2,)),
      tfp.layers.DenseFlipout(16, activation='relu', seed=1),
      tfp.layers.DenseFlipout(3, seed=2)])


def test_stochastic_backend_resamples_and_is_attacked_with_eot(mlp_setup):
  _, x, labels = mlp_setup
  ens = ensemble_lib.StochasticEnsemble(_flipout_model(), num_samples=8,
                                        seed=0)
  assert ens.resamples and ens.num_samples == 8
  first, second = ens.log_probs(x).numpy(), ens.log_probs(x).numpy()
  assert first.shape == (8, 10, 3)
  assert np.abs(first - second).max() > 1e-4  # Fresh draws every call.
  np.testing.assert_allclose(np.exp(first).sum(-1), 1.0, rtol=1e-5)
  x_adv = attacks.pgd(ens, x, labels, 0.1, num_steps=3, seed=0).numpy()
  assert np.abs(x_adv - x).max() <= 0.1 + 1e-6
  assert ens.take(2).num_samples == 2
  tf_keras.utils.set_random_seed(0)
  dropout = tf_keras.Sequential([tf_keras.Input((2,)),
                                 tf_keras.layers.Dense(16),
                                 tf_keras.layers.Dropout(0.5),
                                 tf_keras.layers.Dense(3)])
  with pytest.raises(ValueError, match='does not resample'):
    ensemble_lib.StochasticEnsemble(dropout, 4)
  mc_dropout = ensemble_lib.StochasticEnsemble(
      dropout, 4, call_kwargs={'training': True})
  assert mc_dropout.log_probs(x).shape == (4, 10, 3)


def test_stochastic_backend_budget_counts_each_calls_weight_draw():
  """Each call draws every weight anew, so the chunks shrink with the net."""
  model = _flipout_model()
  params = sum(int(np.prod(v.shape)) for v in model.variables)
  ens = ensemble_lib.StochasticEnsemble(model, num_samples=64, seed=0,
                                        memory_budget_bytes=20 * 8 * params)
  assert ens.weight_bytes_per_sample() == 8 * params
  # Activations of 1 image are tiny: the draws alone limit the chunk.
  assert 10 <= ens.sample_chunk_size(1) < 20
  assert [c for c in ens.chunks(1)][-1][0] > 0  # More than one chunk.
