"""Export: SavedModels usable without tfp_robust, and a Keras layer."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust import attacks
from tfp_robust import export
from tfp_robust import hmc
from tfp_robust import models
from tfp_robust import networks
from tfp_robust import vi

ARCH = networks.Architecture.mlp(2, [16], 2)

_LOAD_ELSEWHERE = r'''
import json, sys
import numpy as np
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
y = np.load(sys.argv[3])
probs = model.signatures['predictive'](x=tf.constant(x))['probabilities']
log_probs = model.signatures['log_probs'](x=tf.constant(x))['log_probs']
x_adv = model.signatures['pgd'](x=tf.constant(x), labels=tf.constant(y),
                                eps=tf.constant(0.1), steps=tf.constant(10))
assert not any(name.startswith('tfp_robust') for name in sys.modules)
print(json.dumps({'probs': probs.numpy().tolist(),
                  'log_probs_shape': list(log_probs.shape),
                  'x_adv': x_adv['x_adv'].numpy().tolist()}))
'''


@pytest.fixture(scope='module')
def posteriors(moons):
  x, y = moons.x_train[:300], moons.y_train[:300]
  hmc_ensemble, _ = hmc.fit(ARCH, x, y, hmc.HMCConfig(
      num_results=8, num_burnin_steps=10, num_chains=2, segment_size=8,
      seed=0))
  result = vi.train(ARCH, x, y, models.TrainConfig(epochs=3, batch_size=64,
                                                   learning_rate=1e-2))
  return {'hmc': hmc_ensemble,
          'vi': vi.posterior_ensemble(result, ARCH, 12, seed=0)}


@pytest.mark.parametrize('method', ['hmc', 'vi'])
def test_saved_model_works_in_a_process_without_tfp_robust(
    posteriors, moons, tmp_path, method):
  ensemble = posteriors[method]
  x, y = moons.x_test[:64], moons.y_test[:64]
  path = export.save_model(ensemble, str(tmp_path / method))
  np.save(tmp_path / 'x.npy', x)
  np.save(tmp_path / 'y.npy', y)
  script = tmp_path / 'load.py'
  script.write_text(_LOAD_ELSEWHERE)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  result = subprocess.run(
      [sys.executable, str(script), path, str(tmp_path / 'x.npy'),
       str(tmp_path / 'y.npy')], capture_output=True, text=True, env=env,
      cwd=str(tmp_path), timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  want = np.exp(ensemble.predictive_log_probs(x).numpy())
  np.testing.assert_allclose(np.array(out['probs']), want, atol=1e-5)
  assert out['log_probs_shape'] == [ensemble.num_samples, 64, 2]
  x_adv = np.array(out['x_adv'])
  assert np.abs(x_adv - x).max() <= 0.1 + 1e-6
  ours = attacks.pgd(ensemble, x, y, 0.1, num_steps=10, random_start=False,
                     loss='predictive')
  assert np.mean(np.isclose(x_adv, ours.numpy(), atol=1e-5)) > 0.99


def test_keras_layer_in_dataset_map_and_tf_function(posteriors, moons):
  ensemble = posteriors['vi']
  layer = export.PredictiveLayer(ensemble)
  x = moons.x_test[:32]
  want = np.exp(ensemble.predictive_log_probs(x).numpy())
  mapped = tf.data.Dataset.from_tensor_slices(x).batch(8).map(layer)
  np.testing.assert_allclose(np.concatenate(list(mapped.as_numpy_iterator())),
                             want, atol=1e-5)

  @tf.function
  def users_function(batch):
    return tf.argmax(layer(batch), -1)

  np.testing.assert_array_equal(users_function(tf.constant(x)).numpy(),
                                want.argmax(-1))
  assert not layer.trainable_weights


def test_stochastic_ensembles_are_refused(tmp_path):
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from tfp_robust import ensemble as ensemble_lib  # pylint: disable=g-import-not-at-top
  model = tf_keras.Sequential([tf_keras.Input((2,)),
                               tfp.layers.DenseFlipout(2)])
  with pytest.raises(ValueError, match='resamples on every call'):
    export.save_model(ensemble_lib.StochasticEnsemble(model, 3),
                      str(tmp_path / 'm'))
