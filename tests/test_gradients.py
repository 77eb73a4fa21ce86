"""Input gradients of the attack losses: exact, chunked and per prefix of samples."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_CONV as CONV
from conftest import random_params
from tfp_robust.evaluation import gradients
from tfp_robust import networks
from tfp_robust import ArchitectureEnsemble

MLP = networks.Architecture.mlp(2, [16, 8], 3, 'tanh')
LINEAR = networks.Architecture((2,), 2, ())


def _softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _inputs(arch, batch, seed):
  rng = np.random.RandomState(seed)
  x = rng.uniform(0.05, 0.95, size=(batch,) + arch.input_shape)
  labels = rng.randint(0, arch.num_classes, size=batch)
  return x.astype(np.float32), labels.astype(np.int32)


@pytest.fixture(scope='module')
def disagreeing():
  """Two linear nets with opposite weights, the second far more confident."""
  kernels = np.array([[[0.0, 2.0], [0.0, 1.0]],
                      [[0.0, -8.0], [0.0, -4.0]]], np.float32)
  biases = np.zeros((2, 2), np.float32)
  x = np.array([[0.5, 0.5], [0.2, 0.9], [0.8, 0.1]], np.float32)
  labels = np.zeros(3, np.int32)
  return ArchitectureEnsemble(LINEAR, [kernels, biases]), x, labels


def _hand_linear_gradients(ens, x, labels):
  """d CE_s / dx = W_s (p_s - e_y) for logits x W_s + b_s, in float64."""
  kernels = ens.params[0].numpy().astype(np.float64)
  biases = ens.params[1].numpy().astype(np.float64)
  probs = _softmax(np.einsum('bd,sdc->sbc', x, kernels) + biases[:, None])
  residual = probs - np.eye(2)[labels][None]                      # [S, B, C]
  per_sample = np.einsum('sdc,sbc->sbd', kernels, residual)      # [S, B, D]
  expected = per_sample.mean(0)
  p_true = probs[:, np.arange(len(labels)), labels]               # [S, B]
  weights = p_true / p_true.sum(0, keepdims=True)
  predictive = np.einsum('sb,sbd->bd', weights, per_sample)
  return expected, predictive


def test_expected_and_predictive_gradients_match_hand_computation(
    disagreeing):
  ens, x, labels = disagreeing
  want_expected, want_predictive = _hand_linear_gradients(ens, x, labels)
  _, expected = gradients.loss_and_input_gradient(ens, x, labels, 'expected')
  _, predictive = gradients.loss_and_input_gradient(ens, x, labels,
                                                    'predictive')
  np.testing.assert_allclose(expected.numpy(), want_expected, rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_allclose(predictive.numpy(), want_predictive, rtol=1e-4,
                             atol=1e-6)


def test_expected_and_predictive_gradients_differ_when_samples_disagree(
    disagreeing):
  ens, x, labels = disagreeing
  _, expected = gradients.loss_and_input_gradient(ens, x, labels, 'expected')
  _, predictive = gradients.loss_and_input_gradient(ens, x, labels,
                                                    'predictive')
  expected, predictive = expected.numpy(), predictive.numpy()
  difference = np.linalg.norm(expected - predictive, axis=-1)
  assert np.all(difference > 0.5 * np.linalg.norm(expected, axis=-1))
  # At [0.5, 0.5]: the unconfident first net dominates the expected gradient,
  # the second net (which classifies correctly) dominates the predictive one.
  np.testing.assert_allclose(expected[0], [0.81, 0.405], rtol=0.02)
  assert predictive[0, 0] < 0.3


@pytest.mark.parametrize('arch', [MLP, CONV], ids=['mlp', 'conv'])
def test_copies_of_one_weight_give_that_weights_gradient(arch):
  """E_w[grad L] over S copies of w is grad L at w; expected == predictive."""
  one = random_params(arch, 1, seed=31, scale=1.0)
  x, labels = _inputs(arch, 6, seed=32)
  single = ArchitectureEnsemble(arch, one)
  copies = ArchitectureEnsemble(arch, [np.repeat(p, 5, axis=0) for p in one])
  loss_1, grad_1 = gradients.loss_and_input_gradient(single, x, labels,
                                                     'expected')
  assert np.abs(grad_1.numpy()).max() > 1e-3
  for loss in ('expected', 'predictive'):
    loss_s, grad_s = gradients.loss_and_input_gradient(copies, x, labels, loss)
    np.testing.assert_allclose(loss_s.numpy(), loss_1.numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(grad_s.numpy(), grad_1.numpy(), rtol=1e-4,
                               atol=1e-6)


def test_expected_gradient_matches_finite_differences():
  params = random_params(MLP, 4, seed=33, scale=1.0)
  ens = ArchitectureEnsemble(MLP, params, jit_compile=False)
  x, labels = _inputs(MLP, 3, seed=34)
  _, grad = gradients.loss_and_input_gradient(ens, x, labels, 'expected')
  h = 1e-2
  numeric = np.zeros_like(x)
  for d in range(2):
    step = np.zeros_like(x)
    step[:, d] = h
    up, _ = gradients.loss_and_input_gradient(ens, x + step, labels)
    down, _ = gradients.loss_and_input_gradient(ens, x - step, labels)
    numeric[:, d] = (up.numpy() - down.numpy()) / (2 * h)
  np.testing.assert_allclose(grad.numpy(), numeric, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize('arch', [MLP, CONV], ids=['mlp', 'conv'])
@pytest.mark.parametrize('loss', [
    'expected', 'predictive', 'margin'])
def test_chunked_gradient_equals_unchunked(arch, loss):
  params = random_params(arch, 7, seed=35, scale=1.0)
  x, labels = _inputs(arch, 5, seed=36)
  big = ArchitectureEnsemble(arch, params)
  small = ArchitectureEnsemble(arch, params, memory_budget_bytes=1)
  assert len(list(small.chunks(5))) == 7 and len(list(big.chunks(5))) == 1
  loss_big, grad_big = gradients.loss_and_input_gradient(big, x, labels, loss)
  loss_small, grad_small = gradients.loss_and_input_gradient(small, x, labels,
                                                             loss)
  assert np.abs(grad_big.numpy()).max() > 1e-3
  np.testing.assert_allclose(loss_small.numpy(), loss_big.numpy(), rtol=1e-5)
  np.testing.assert_allclose(grad_small.numpy(), grad_big.numpy(), rtol=1e-5,
                             atol=1e-6)


@pytest.mark.parametrize('budget', [gradients.ensemble_lib.
                                    DEFAULT_MEMORY_BUDGET_BYTES, 1],
                         ids=['one_chunk', 'many_chunks'])
def test_expected_gradients_by_num_samples(budget):
  params = random_params(MLP, 6, seed=37, scale=1.0)
  ens = ArchitectureEnsemble(MLP, params, memory_budget_bytes=budget)
  x, labels = _inputs(MLP, 5, seed=38)
  by_n = gradients.expected_gradients_by_num_samples(ens, x, labels,
                                                     [1, 4, 6, 4])
  assert sorted(by_n) == [1, 4, 6]
  _, full = gradients.loss_and_input_gradient(ens, x, labels, 'expected')
  np.testing.assert_allclose(by_n[6], full.numpy(), rtol=1e-5, atol=1e-6)
  for n in (1, 4):
    _, prefix = gradients.loss_and_input_gradient(ens.take(n), x, labels,
                                                  'expected')
    np.testing.assert_allclose(by_n[n], prefix.numpy(), rtol=1e-5, atol=1e-6)
  # The first sample alone, by an independent per-sample tape.
  first = [tf.constant(p[:1]) for p in params]
  xt = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(xt)
    log_probs = tf.nn.log_softmax(networks.forward(MLP, first, xt))[0]
    ce = -tf.reduce_sum(log_probs * tf.one_hot(labels, 3))
  np.testing.assert_allclose(by_n[1], tape.gradient(ce, xt).numpy(),
                             rtol=1e-4, atol=1e-5)
  assert np.abs(by_n[1] - by_n[6]).max() > 1e-2


def test_gradient_errors():
  params = random_params(MLP, 3, seed=39)
  ens = ArchitectureEnsemble(MLP, params)
  x, labels = _inputs(MLP, 4, seed=40)
  with pytest.raises(ValueError, match="Unknown loss 'cw'"):
    gradients.loss_and_input_gradient(ens, x, labels, 'cw')
  with pytest.raises(ValueError, match=r'Labels must have shape \[4\]'):
    gradients.loss_and_input_gradient(ens, x, labels[:, None])
  with pytest.raises(ValueError, match=r'Inputs must have shape \[B, 2\]'):
    gradients.loss_and_input_gradient(ens, x[:, :1], labels)
  with pytest.raises(ValueError, match=r'must lie in \[0, 1\]'):
    gradients.loss_and_input_gradient(ens, x + 1.0, labels)
  for bad in ([0, 2], [4], []):
    with pytest.raises(ValueError, match=r'must lie in \[1, 3\]'):
      gradients.expected_gradients_by_num_samples(ens, x, labels, bad)


# -- the per-sample loop form (networks.weighted_input_gradient) --------------

def _loop_forced(monkeypatch, forced):
  monkeypatch.setattr(networks, 'SAMPLE_LOOP_MIN_MACS',
                      0 if forced else float('inf'))


@pytest.mark.parametrize('budget', [gradients.ensemble_lib.
                                    DEFAULT_MEMORY_BUDGET_BYTES, 1],
                         ids=['one_chunk', 'many_chunks'])
@pytest.mark.parametrize('loss', ['expected', 'predictive', 'margin'])
def test_sample_loop_gives_the_one_tape_gradient(monkeypatch, loss, budget):
  params = random_params(MLP, 6, seed=41, scale=1.0)
  x, labels = _inputs(MLP, 5, seed=42)
  results = {}
  for forced in (False, True):
    _loop_forced(monkeypatch, forced)
    # A fresh ensemble: the choice is made when its functions are traced.
    ens = ArchitectureEnsemble(MLP, params, memory_budget_bytes=budget)
    results[forced] = [t.numpy() for t in gradients.loss_and_input_gradient(
        ens, x, labels, loss)]
  assert np.abs(results[False][1]).max() > 1e-3
  for looped, taped in zip(results[True], results[False]):
    np.testing.assert_allclose(looped, taped, rtol=1e-5, atol=1e-6)


def test_sample_loop_per_sample_weights_and_log_probs():
  params = [tf.constant(p) for p in random_params(MLP, 4, seed=43, scale=1.0)]
  x, _ = _inputs(MLP, 3, seed=44)
  x = tf.constant(x)
  weights = tf.random.stateless_normal([4, 3, 3], [0, 45])
  log_probs, gradient = networks.weighted_input_gradient(MLP, params, x,
                                                         weights)
  with tf.GradientTape() as tape:
    tape.watch(x)
    want_log_probs = networks.log_probs(MLP, params, x)
    objective = tf.reduce_sum(weights * want_log_probs)
  np.testing.assert_allclose(log_probs.numpy(), want_log_probs.numpy(),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(gradient.numpy(),
                             tape.gradient(objective, x).numpy(),
                             rtol=1e-5, atol=1e-6)


def test_sample_loop_unconnected_input_has_a_zero_gradient(monkeypatch):
  # A net whose output ignores its input (as a masked model's does): zero,
  # as the one-tape path gives, so the masking checks can flag it.
  params = [tf.constant(p) for p in random_params(MLP, 3, seed=48, scale=1.0)]
  x, _ = _inputs(MLP, 4, seed=49)
  x = tf.constant(x)
  monkeypatch.setattr(networks, '_dense_forward_one',
                      lambda architecture, sample, x: tf.zeros(
                          [x.shape[0], architecture.num_classes]) +
                      sample[-1][None, :])
  log_probs, gradient = networks.weighted_input_gradient(
      MLP, params, x, tf.ones([4, 3]))
  assert log_probs.shape == (3, 4, 3)
  np.testing.assert_array_equal(gradient.numpy(), 0.0)


def test_sample_loop_attack_finds_the_same_examples(monkeypatch):
  from tfp_robust.attacks import gradient as attacks  # pylint: disable=g-import-not-at-top
  params = random_params(MLP, 6, seed=46, scale=1.0)
  x, labels = _inputs(MLP, 20, seed=47)
  found = {}
  for forced in (False, True):
    _loop_forced(monkeypatch, forced)
    ens = ArchitectureEnsemble(MLP, params)
    found[forced] = attacks.pgd(ens, x, labels, 0.1, num_steps=10,
                                loss='expected').numpy()
  assert np.abs(found[False] - x).max() > 0.05
  np.testing.assert_allclose(found[True], found[False], atol=1e-6)


def test_sample_loop_is_picked_for_large_dense_nets_only():
  big = networks.Architecture.mlp(784, [1024, 1024], 10)
  mnist = networks.Architecture.mlp(784, [128], 10)
  moons = networks.Architecture.mlp(2, [128, 128], 2)
  assert networks.sample_loop_pays(big, 500)
  assert networks.sample_loop_pays(mnist, 500)
  assert not networks.sample_loop_pays(moons, 100)
  assert not networks.sample_loop_pays(big, None)  # batch unknown at trace
  assert not networks.sample_loop_pays(CONV, 10**6)  # conv: not measured
