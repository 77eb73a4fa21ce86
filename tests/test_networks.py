"""Architectures and the vectorised forward pass over weight samples."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_CONV as CONV
from conftest import random_params
from tfp_robust.fit import models
from tfp_robust import networks
from tfp_robust import ArchitectureEnsemble


TWO_CONV = networks.Architecture(
    (6, 6, 2), 4,
    ({'kind': 'conv2d', 'filters': 3, 'kernel_size': 3},
     {'kind': 'conv2d', 'filters': 2, 'kernel_size': 1},
     {'kind': 'max_pool', 'size': 2},
     {'kind': 'flatten'}),
    'tanh')


def _np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_mlp_log_probs(params, x, activation):
  """Per-sample loop in float64 numpy for a dense net."""
  out = []
  for s in range(params[0].shape[0]):
    h = x.astype(np.float64)
    layers = [(params[i][s], params[i + 1][s]) for i in range(0, len(params), 2)]
    for index, (kernel, bias) in enumerate(layers):
      h = h @ kernel + bias
      if index < len(layers) - 1:
        h = activation(h)
    out.append(_np_log_softmax(h))
  return np.stack(out)


def _tf_conv_log_probs(params, x):
  """Per-sample loop with tf.nn.conv2d for `CONV`."""
  out = []
  for s in range(params[0].shape[0]):
    h = tf.nn.relu(tf.nn.conv2d(x, params[0][s], 1, 'SAME') + params[1][s])
    h = tf.nn.max_pool2d(h, 2, 2, 'VALID')
    h = tf.reshape(h, [x.shape[0], -1])
    h = tf.nn.relu(h @ params[2][s] + params[3][s])
    out.append(tf.nn.log_softmax(h @ params[4][s] + params[5][s]).numpy())
  return np.stack(out)


def test_param_shapes_and_count_of_mlp():
  arch = networks.Architecture.mlp(2, [8, 16], 3)
  assert arch.param_shapes() == [
      ('dense_0/kernel', (2, 8)), ('dense_0/bias', (8,)),
      ('dense_1/kernel', (8, 16)), ('dense_1/bias', (16,)),
      ('dense_2/kernel', (16, 3)), ('dense_2/bias', (3,))]
  assert arch.num_params() == 2 * 8 + 8 + 8 * 16 + 16 + 16 * 3 + 3
  assert arch.widest_activation() == 16


def test_param_shapes_of_conv_net():
  assert CONV.param_shapes() == [
      ('conv2d_0/kernel', (3, 3, 1, 4)), ('conv2d_0/bias', (4,)),
      ('dense_3/kernel', (4 * 4 * 4, 5)), ('dense_3/bias', (5,)),
      ('dense_4/kernel', (5, 3)), ('dense_4/bias', (3,))]
  # The widest per-example tensor is the conv output, 8 * 8 * 4.
  assert CONV.widest_activation() == 256
  # No explicit flatten before the logits: one is added implicitly.
  assert TWO_CONV.layers()[-1] == {'kind': 'dense', 'units': 4,
                                   'logits': True}
  assert TWO_CONV.param_shapes()[-2] == ('dense_4/kernel', (3 * 3 * 2, 4))


def test_json_round_trip_preserves_equality():
  for arch in (CONV, TWO_CONV, networks.Architecture.mlp(784, [10], 10,
                                                          'leaky_relu')):
    again = networks.Architecture.from_json(arch.to_json())
    assert again == arch
    assert again.param_shapes() == arch.param_shapes()


@pytest.mark.parametrize('kwargs, match', [
    (dict(input_shape=(2,), num_classes=2, hidden=(), activation='gelu'),
     'Unknown activation'),
    (dict(input_shape=(2,), num_classes=1, hidden=()), 'at least 2'),
    (dict(input_shape=(2,), num_classes=2, hidden=({'kind': 'lstm'},)),
     'Unknown layer'),
    (dict(input_shape=(8, 8, 1), num_classes=2,
          hidden=({'kind': 'dense', 'units': 4},)), 'flatten'),
])
def test_invalid_architectures_are_refused(kwargs, match):
  with pytest.raises(ValueError, match=match):
    networks.Architecture(**kwargs)


@pytest.mark.parametrize('layer', [
    {'kind': 'conv2d', 'filters': 4, 'kernel_size': 3},
    {'kind': 'max_pool', 'size': 2},
], ids=['conv2d', 'max_pool'])
def test_image_layer_on_flat_input_is_refused_clearly(layer):
  with pytest.raises(ValueError, match=r'\[H, W, C\]|flat|image|rank'):
    networks.Architecture((64,), 2, (layer,))


@pytest.mark.parametrize('activation, fn', [
    ('relu', lambda h: np.maximum(h, 0)),
    ('tanh', np.tanh),
    ('leaky_relu', lambda h: np.where(h > 0, h, 0.2 * h)),
    ('sigmoid', lambda h: 1 / (1 + np.exp(-h))),
])
def test_dense_log_probs_equal_per_sample_loop(activation, fn):
  arch = networks.Architecture.mlp(3, [8, 6], 4, activation)
  params = random_params(arch, 5, seed=1, scale=1.0)
  x = np.random.RandomState(2).uniform(size=(7, 3)).astype(np.float32)
  got = ArchitectureEnsemble(arch, params).log_probs(x).numpy()
  assert got.shape == (5, 7, 4)
  np.testing.assert_allclose(got, _np_mlp_log_probs(params, x, fn),
                             rtol=1e-5, atol=1e-5)
  # The samples really differ, so a broadcast of one sample would fail.
  assert np.abs(got[0] - got[1]).max() > 0.1


@pytest.mark.parametrize('jit_compile', [True, False])
def test_conv_log_probs_equal_per_sample_conv2d_loop(jit_compile):
  params = random_params(CONV, 4, seed=3)
  x = np.random.RandomState(4).uniform(size=(6, 8, 8, 1)).astype(np.float32)
  got = ArchitectureEnsemble(CONV, params,
                          jit_compile=jit_compile).log_probs(x).numpy()
  want = _tf_conv_log_probs(params, tf.constant(x))
  assert got.shape == (4, 6, 3)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  assert np.abs(want[0] - want[1]).max() > 0.1


@pytest.mark.parametrize('arch', [CONV, TWO_CONV], ids=['conv', 'two_conv'])
def test_forward_matches_keras_model_with_same_weights(arch):
  """The functional forward pass and the Keras builder compute one function."""
  params = random_params(arch, 3, seed=5)
  rng = np.random.RandomState(6)
  x = rng.uniform(size=(5,) + arch.input_shape).astype(np.float32)
  got = ArchitectureEnsemble(arch, params).log_probs(x).numpy()
  model = models.deterministic_model(arch)
  for s in range(3):
    model.set_weights([p[s] for p in params])
    want = tf.nn.log_softmax(model(x)).numpy()
    np.testing.assert_allclose(got[s], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('arch', [
    networks.Architecture.mlp(3, [5], 2), CONV, TWO_CONV],
                         ids=['mlp', 'conv', 'two_conv'])
def test_per_sample_inputs_equal_shared_inputs(arch):
  """`forward` on `[S, B, ...]` inputs gives sample s its own batch."""
  num_samples = 3
  params = [tf.constant(p) for p in random_params(arch, num_samples, seed=7)]
  rng = np.random.RandomState(8)
  xs = rng.uniform(size=(num_samples, 4) + arch.input_shape).astype(np.float32)
  together = networks.forward(arch, params, tf.constant(xs)).numpy()
  for s in range(num_samples):
    alone = networks.forward(arch, [p[s:s + 1] for p in params],
                             tf.constant(xs[s])).numpy()[0]
    np.testing.assert_allclose(together[s], alone, rtol=1e-5, atol=1e-5)
