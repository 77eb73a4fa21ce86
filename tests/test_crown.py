"""CROWN margin bounds: exact on a hand case, sound, never behind IBP."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_CONV
from conftest import random_params
from tfp_robust import ArchitectureEnsemble
from tfp_robust.evaluation.bounds import ops as bound_ops
from tfp_robust.evaluation import certify
from tfp_robust.evaluation.bounds import crown
from tfp_robust import networks


def _ops(arch, params):
  return bound_ops.build(bound_ops.from_architecture(arch),
                         [tf.constant(p) for p in params], arch.input_shape)


def _margins(arch, params, x, labels, eps, alpha_steps=0):
  lower, upper = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
  ops = _ops(arch, params)
  bounds = crown.node_bounds(ops, lower, upper, params[0].shape[0])
  found = crown.margin_bounds(ops, bounds, tf.constant(labels), lower, upper,
                              alpha_steps=alpha_steps)
  low, high = (b.numpy() for b in bounds[-1])
  label_low = np.take_along_axis(
      low, np.broadcast_to(labels[None, :, None], low.shape[:2] + (1,)), -1)
  return found.numpy(), label_low - high


def test_hand_computed_two_by_two_relu_net():
  # h = relu([x1 + x2, x1 - x2]) on the box [0, 1]^2; logits h + (0.25, 0).
  # h1 is stable (in [0, 2]); h2 in [-1, 1] is unstable: upper 0.5 h2 + 0.5,
  # lower h2 (u >= -l). Label 0: h1 - h2 + 0.25 >= h1 - 0.5 h2 - 0.25 =
  # 0.5 x1 + 1.5 x2 - 0.25 >= -0.25 (IBP: 0 - 1 + 0.25 = -0.75). Label 1:
  # h2 - h1 - 0.25 >= -2 x2 - 0.25 >= -2.25 (IBP the same).
  arch = networks.Architecture.mlp(2, [2], 2)
  params = [np.array([[[1, 1], [1, -1]]], np.float32),
            np.zeros((1, 2), np.float32),
            np.eye(2, dtype=np.float32)[None],
            np.array([[0.25, 0.0]], np.float32)]
  x = np.full((2, 2), 0.5, np.float32)
  found, interval = _margins(arch, params, x, np.array([0, 1]), 0.5)
  np.testing.assert_allclose(found[0], [[0.0, -0.25], [-2.25, 0.0]],
                             atol=1e-6)
  # Intervals: z0 in [0.25, 2.25], z1 in [0, 1]; l_y - u_j (j = y too).
  np.testing.assert_allclose(interval[0], [[-2.0, -0.75], [-2.25, -1.0]],
                             atol=1e-6)


def test_certificate_conversion_by_hand():
  # One sample, three classes, label 0, margins (0, 1, 3): p_0 >=
  # 1 / (1 + e^-1 + e^-3); p_0 - p_1 >= p_0^low (1 - e^-1) beats
  # p_0^low - sigmoid(-1) here, and loose intervals add nothing.
  margins = tf.constant([[[0.0, 1.0, 3.0]]])
  low, high = -10.0 * tf.ones([1, 1, 3]), 10.0 * tf.ones([1, 1, 3])
  got = certify.difference_bounds(margins, low, high, tf.constant([0]))
  label_low = 1.0 / (1.0 + np.exp(-1.0) + np.exp(-3.0))
  expected = [max(label_low - 1 / (1 + np.exp(m)),
                  label_low * (1 - np.exp(-m))) for m in (1.0, 3.0)]
  np.testing.assert_allclose(got[0, 0, 1:], expected, rtol=1e-6)


ARCHITECTURES = [networks.Architecture.mlp(6, [8, 8], 3, activation)
                 for activation in ('relu', 'leaky_relu', 'tanh', 'sigmoid')
                 ] + [SMALL_CONV]


@pytest.mark.parametrize('arch', ARCHITECTURES, ids=[
    'relu', 'leaky_relu', 'tanh', 'sigmoid', 'conv'])
def test_margins_hold_at_random_points_and_vertices_of_the_ball(arch):
  params = random_params(arch, 3, seed=1)
  rng = np.random.RandomState(2)
  x = rng.uniform(size=(3,) + arch.input_shape).astype(np.float32)
  labels = np.array([0, 1, 2])
  eps = 0.08
  for alpha_steps in (0, 5):
    found, interval = _margins(arch, params, x, labels, eps, alpha_steps)
    # Full CROWN with alpha: tighter than IBP on these nets, on average.
    assert np.mean(found - interval) > 0.0
  noise = rng.uniform(-eps, eps, size=(64,) + x.shape)
  noise[:32] = eps * np.sign(noise[:32])  # Vertices of the box.
  points = np.clip(x[None] + noise, 0, 1).astype(np.float32)
  logits = np.stack([networks.forward(arch, params, p).numpy()
                     for p in points])  # [P, S, B, C]
  true = np.take_along_axis(logits, labels[None, None, :, None], -1) - logits
  assert np.all(found <= true.min(0) + 1e-4)


def test_full_crown_tightens_deep_intermediate_bounds():
  arch = networks.Architecture.mlp(6, [16, 16, 16], 3)
  params = random_params(arch, 2, seed=3)
  x = np.random.RandomState(4).uniform(size=(2, 6)).astype(np.float32)
  lower, upper = np.clip(x - 0.1, 0, 1), np.clip(x + 0.1, 0, 1)
  ops = _ops(arch, params)
  ibp = crown.node_bounds(ops, lower, upper, 2, tighten=False)
  full = crown.node_bounds(ops, lower, upper, 2)
  widths = [float(tf.reduce_mean(b[1] - b[0])) for b in ibp]
  tight = [float(tf.reduce_mean(b[1] - b[0])) for b in full]
  assert all(t <= w + 1e-6 for t, w in zip(tight, widths))
  assert tight[-1] < 0.9 * widths[-1]
  points = np.clip(x + np.random.RandomState(5).uniform(
      -0.1, 0.1, (200,) + x.shape), 0, 1).astype(np.float32)
  logits = np.stack([networks.forward(arch, params, p) for p in points])
  assert np.all(logits >= full[-1][0].numpy() - 1e-4)
  assert np.all(logits <= full[-1][1].numpy() + 1e-4)


@pytest.mark.parametrize('arch', ARCHITECTURES[::2],
                         ids=['relu', 'tanh', 'conv'])
def test_crown_never_certifies_less_than_ibp(arch):
  ens = ArchitectureEnsemble(arch, random_params(arch, 4, seed=5),
                             jit_compile=False)
  x = np.random.RandomState(6).uniform(size=(6,) + arch.input_shape).astype(
      np.float32)
  y = ens.predict(x).numpy()
  for eps in (0.002, 0.02):
    ibp = certify.certificate(ens, x, y, eps, 'ibp')
    crown_bound = certify.certificate(ens, x, y, eps, 'crown')
    assert np.all(crown_bound >= ibp - 1e-6)
    if arch.activation == 'relu':
      alpha = certify.certificate(ens, x, y, eps, 'alpha_crown')
      assert np.all(alpha >= crown_bound - 1e-6)
    assert np.all(certify.certified(ens, x, y, eps, 'crown') >=
                  certify.certified(ens, x, y, eps, 'ibp'))
  others = np.isfinite(ibp)  # The label's own column is +inf.
  assert np.mean(crown_bound[others] - ibp[others]) > 0.0


def test_bound_chunks_respect_a_small_memory_budget():
  arch = networks.Architecture.mlp(6, [8], 3)
  params = random_params(arch, 5, seed=7)
  x = np.random.RandomState(8).uniform(size=(7, 6)).astype(np.float32)
  y = np.arange(7) % 3
  whole = ArchitectureEnsemble(arch, params, jit_compile=False)
  tiny = ArchitectureEnsemble(arch, params, memory_budget_bytes=4000,
                              jit_compile=False)
  np.testing.assert_allclose(certify.certificate(tiny, x, y, 0.05),
                             certify.certificate(whole, x, y, 0.05),
                             rtol=1e-5, atol=1e-6)
