"""One cell across devices: the sharded HMC target, data-parallel SGD and VI.

Two logical CPU devices must be configured before TensorFlow initialises,
which this pytest process has already done, so the two-device computations
run once in a subprocess (`distributed_worker.py`, about 30 s) that also
computes the one-device references; the tests below compare its arrays.
Single-replica and argument checks run here.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_robust.fit import hmc
from tfp_robust.fit import models
from tfp_robust import networks
from tfp_robust.fit.mcmc import distributed

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       'distributed_worker.py')


@pytest.fixture(scope='module')
def two_devices(tmp_path_factory):
  """Runs the worker once; `two_devices(part)` loads that part's arrays."""
  out_dir = str(tmp_path_factory.mktemp('two_devices'))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  completed = subprocess.run(
      [sys.executable, _WORKER, out_dir], env=env, capture_output=True,
      text=True, timeout=600,
      cwd=os.path.dirname(os.path.dirname(_WORKER)))

  def load(part):
    error = os.path.join(out_dir, part + '.error')
    if os.path.exists(error):
      with open(error) as f:
        pytest.fail(f'two-device part {part!r} raised:\n{f.read()}')
    path = os.path.join(out_dir, part + '.npz')
    assert os.path.exists(path), (
        f'the worker wrote no {part}.npz (exit {completed.returncode}):\n'
        f'{completed.stderr[-3000:]}')
    return dict(np.load(path))

  return load


def _pairs(arrays, prefix):
  """(one-device, two-device) arrays of every key `prefix*_one`."""
  keys = sorted(k for k in arrays if k.startswith(prefix) and
                k.endswith('_one'))
  assert keys, prefix
  return [(k[:-4], arrays[k], arrays[k[:-4] + '_two']) for k in keys]


# -- two logical devices against one -----------------------------------------

def test_sharded_log_joint_and_gradient_equal_one_device(two_devices):
  """101 (MLP) and 37 (conv net) points over 2 replicas: shards of 51 and 50
  (18 and 19), value and gradient equal the one-device target's within
  float32 summation-order rounding."""
  arrays = two_devices('log_joint')
  np.testing.assert_array_equal(arrays['shard_sizes'], [51, 50])
  devices = [str(d) for d in arrays['shard_devices']]
  assert devices[0].endswith('CPU:0') and devices[1].endswith('CPU:1')
  for name, one, two in _pairs(arrays, 'mlp') + _pairs(arrays, 'conv'):
    assert one.shape == two.shape, name
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-4, err_msg=name)
  # Gradients are not all zero (they would trivially agree).
  assert np.abs(arrays['mlp_grad0_one']).max() > 1.0


def test_sharded_log_joint_refuses_xla_with_a_clear_error(two_devices):
  message = str(two_devices('log_joint')['xla_error'])
  assert 'jit_compile=False' in message and 'XLA' in message


def test_hmc_on_two_devices_gives_the_one_device_samples(two_devices):
  """8 warm-up steps and 6 kept samples of 2 chains (4 leapfrog steps each):
  every state, log-joint, acceptance and the adapted step size agree within
  float rounding (the gradients differ only in summation order). The
  two-device run asked for XLA; `fit` ran it without, as it must."""
  arrays = two_devices('hmc')
  for name, one, two in _pairs(arrays, 'samples'):
    np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-3, err_msg=name)
    assert np.abs(np.diff(one, axis=0)).max() > 0, 'the chain never moved'
  np.testing.assert_allclose(arrays['log_prob_two'], arrays['log_prob_one'],
                             rtol=1e-5, atol=1e-2)
  np.testing.assert_array_equal(arrays['accepted_two'], arrays['accepted_one'])
  assert arrays['accepted_one'].mean() > 0.3
  np.testing.assert_allclose(arrays['step_size_two'], arrays['step_size_one'],
                             rtol=1e-4)


def test_data_parallel_sgd_reaches_the_one_device_weights(two_devices):
  """3 epochs of Adam on 512 points, global batch 64 (32 per replica): the
  same initial weights and shuffles, gradients summed across replicas, so
  the weights agree within float rounding."""
  arrays = two_devices('sgd')
  for name, one, two in _pairs(arrays, 'param'):
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-5, err_msg=name)


def test_data_parallel_vi_reaches_the_one_device_elbo(two_devices):
  """VI cannot agree within float rounding: each replica's Flipout layers
  draw their own weight perturbations and sign flips (tfp's stateful seeded
  ops, one stream per replica), so the two runs see different gradient
  noise from the first step. What must agree exactly is the start (the
  same variational parameters); what is compared after 10 epochs is the
  ELBO per example (Keras' epoch mean, KL counted once) and the accuracy of
  the posterior predictive, within what gradient noise moves them here
  (up to 0.03 in an epoch's ELBO, 0.003 at the end, on a climb of 0.6)."""
  arrays = two_devices('vi')
  for name, one, two in _pairs(arrays, 'initial'):
    np.testing.assert_array_equal(two, one, err_msg=name)
  elbo_one, elbo_two = arrays['elbo_one'], arrays['elbo_two']
  assert elbo_one[-1] - elbo_one[0] > 0.4 and elbo_two[-1] - elbo_two[0] > 0.4
  np.testing.assert_allclose(elbo_two, elbo_one, atol=0.06)
  assert abs(elbo_two[-1] - elbo_one[-1]) < 0.03
  assert abs(float(arrays['accuracy_two']) -
             float(arrays['accuracy_one'])) < 0.03
  assert float(arrays['accuracy_two']) > 0.85


# -- one replica, in this process ---------------------------------------------

def test_shard_bounds_split_contiguously_first_shards_larger():
  assert distributed.shard_bounds(7, 3) == [(0, 3), (3, 5), (5, 7)]
  assert distributed.shard_bounds(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
  with pytest.raises(ValueError, match='at least one'):
    distributed.shard_bounds(2, 3)


@pytest.mark.parametrize('make_strategy', [
    lambda: tf.distribute.get_strategy(),
    lambda: tf.distribute.OneDeviceStrategy('/cpu:0'),
    lambda: tf.distribute.MirroredStrategy(['/cpu:0']),
], ids=['default', 'one_device', 'mirrored'])
def test_one_replica_strategies_give_the_plain_target(make_strategy):
  architecture = networks.Architecture.mlp(2, [4], 2)
  rng = np.random.RandomState(0)
  x = rng.uniform(size=(11, 2)).astype(np.float32)
  y = rng.randint(0, 2, 11)
  params = hmc.initial_network_state(architecture, 2, tf.constant([0, 1]))
  value, grads = tfp.math.value_and_gradient(
      hmc.network_log_joint(architecture, x, y, 2.0), params)
  sharded = distributed.sharded_log_joint(architecture, x, y, 2.0,
                                          make_strategy())
  value2, grads2 = tfp.math.value_and_gradient(sharded, params)
  np.testing.assert_allclose(value2, value, rtol=1e-6)
  for g, g2 in zip(grads, grads2):
    np.testing.assert_allclose(g2, g, rtol=1e-5, atol=1e-6)


def test_strategy_arguments_are_checked():
  architecture = networks.Architecture.mlp(2, [4], 2)
  x = np.zeros((4, 2), np.float32)
  y = np.zeros(4, np.int64)
  with pytest.raises(TypeError, match='tf.distribute.Strategy'):
    distributed.sharded_log_joint(architecture, x, y, 1.0, '/cpu:0')
  with pytest.raises(TypeError, match='tf.distribute.Strategy'):
    models.train_deterministic(architecture, x, y, models.TrainConfig(),
                               strategy=2)
