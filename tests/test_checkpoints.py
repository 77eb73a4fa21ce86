"""Tests for fit/mcmc/checkpoints: extending a run to more kept draws."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust.fit import hmc

RUN = hmc.HMCConfig(num_results=20, num_burnin_steps=10, num_leapfrog_steps=3,
                    step_size=0.3, num_chains=2, seed=5, segment_size=10,
                    warm_up_checkpoint_every=10, jit_compile=False)


def _log_prob(x):  # A standard normal in 3 dimensions, per chain.
  return -0.5 * tf.reduce_sum(tf.square(x), axis=-1)


def _sample(config, directory=None, identity='normal'):
  return hmc.sample(_log_prob, [tf.zeros((2, 3))], config,
                    checkpoint_dir=directory, target_identity=identity)


def test_a_finished_run_extended_is_the_longer_run(tmp_path):
  directory = str(tmp_path / 'run')
  short = _sample(RUN, directory)
  longer = dataclasses.replace(RUN, num_results=40)
  extended = _sample(longer, directory)
  direct = _sample(longer)
  for a, b in zip(extended.samples, direct.samples):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(extended.log_prob, direct.log_prob)
  # The first draws are the short run's, and the chains kept moving.
  np.testing.assert_array_equal(extended.samples[0][:20], short.samples[0])
  assert np.abs(np.diff(extended.samples[0][20:], axis=0)).max() > 1e-2
  with open(os.path.join(directory, 'run.json')) as f:
    record = json.load(f)
  assert record['config']['num_results'] == 40
  assert record['extended_from'] == [20]


def test_only_the_number_of_draws_may_grow(tmp_path):
  directory = str(tmp_path / 'run')
  _sample(RUN, directory)
  for other in (dataclasses.replace(RUN, num_results=10),  # Fewer draws.
                dataclasses.replace(RUN, num_results=40, seed=6),
                dataclasses.replace(RUN, num_results=40, step_size=0.2)):
    with pytest.raises(ValueError, match='different configuration or target'):
      _sample(other, directory)
  with pytest.raises(ValueError, match='different configuration or target'):
    _sample(dataclasses.replace(RUN, num_results=40), directory, 'other')
  # A run whose planned draws end in a partial segment cannot be extended:
  # its last segment would change size.
  partial = dataclasses.replace(RUN, num_results=15)
  _sample(partial, str(tmp_path / 'partial'))
  with pytest.raises(ValueError, match='different configuration or target'):
    _sample(dataclasses.replace(partial, num_results=30),
            str(tmp_path / 'partial'))
