"""Mixing diagnostics: ArviZ's split R-hat and ESS on class probabilities
and the log-joint, the criteria, and reading a run's checkpoints."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust import data
from tfp_robust.core import files
from tfp_robust.fit import hmc
from tfp_robust import networks
from tfp_robust.fit.mcmc import mixing

CRITERIA = dict(split_rhat=1.1, bulk_ess=100.0, trend_z=3.0)


def _draws(shift=0.0, ramp=0.0, num_draws=400, num_chains=4, seed=0):
  """Independent draws `[K, C, 3, 2]` of class probabilities and a
  log-joint `[K, C]`; chain c shifted by `c * shift`, all by a ramp."""
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(num_draws, num_chains, 3, 1))
  logits += shift * np.arange(num_chains)[None, :, None, None]
  logits += ramp * np.linspace(0, 1, num_draws)[:, None, None, None]
  p = 1 / (1 + np.exp(-logits))
  probs = np.concatenate([p, 1 - p], axis=-1)
  log_joint = rng.normal(size=(num_draws, num_chains))
  log_joint += ramp * 10 * np.linspace(0, 1, num_draws)[:, None]
  return probs, log_joint


def test_independent_chains_mix():
  report = mixing.report(*_draws(), CRITERIA)
  assert report['mixed'], report['failed']
  assert report['fn_split_rhat_max'] < 1.05
  assert report['fn_bulk_ess_min'] > 500
  assert report['logjoint_trend_z'] < 3


def test_chains_apart_do_not_mix():
  report = mixing.report(*_draws(shift=2.0), CRITERIA)
  assert not report['mixed']
  assert report['fn_split_rhat_max'] > 1.5
  assert any('class-probability split R-hat' in f for f in report['failed'])


def test_a_shared_drift_fails_split_rhat_and_trend():
  # Chains that drift alike agree with each other; the split halves and
  # the trend of the log-joint do not.
  report = mixing.report(*_draws(ramp=4.0), CRITERIA)
  assert not report['mixed']
  assert report['logjoint_split_rhat'] > 1.1
  assert report['logjoint_trend_z'] > 3
  assert any('trend' in f for f in report['failed'])


def test_constant_probabilities_are_counted_apart():
  probs, log_joint = _draws()
  probs[:, :, 0] = [1.0, 0.0]  # A saturated softmax at the first point.
  report = mixing.report(probs, log_joint, CRITERIA)
  assert report['fn_fraction_varying'] == pytest.approx(4 / 6)
  assert np.isfinite(report['fn_split_rhat_max'])


def test_too_few_draws_are_refused():
  probs, log_joint = _draws(num_draws=3)
  with pytest.raises(ValueError, match='at least 4 draws of 2 chains'):
    mixing.report(probs, log_joint, CRITERIA)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  moons = data.half_moons(num_train=100, num_test=20, seed=0)
  architecture = networks.Architecture.mlp(2, [4], num_classes=2)
  config = hmc.HMCConfig(num_results=20, num_burnin_steps=10, num_chains=2,
                         num_leapfrog_steps=3, step_size=0.05, seed=1,
                         segment_size=4, jit_compile=False)
  directory = str(tmp_path_factory.mktemp('run') / 'hmc_checkpoint')
  ensemble, result = hmc.fit(architecture, moons.x_train, moons.y_train,
                             config, checkpoint_dir=directory)
  return moons, architecture, ensemble, result, directory


def test_checkpointed_draws_are_the_run_samples(run):
  moons, architecture, ensemble, result, directory = run
  params, log_joint, num_segments = mixing.read_segments(directory)
  assert num_segments == 5
  for read, kept in zip(params, result.samples):
    np.testing.assert_array_equal(read, kept)
  assert log_joint.shape == (20, 2)
  probs = mixing.class_probabilities(architecture, params, moons.x_test)
  np.testing.assert_allclose(
      probs.reshape(40, 20, 2), np.exp(ensemble.log_probs(moons.x_test)),
      rtol=1e-5, atol=1e-6)
  # After 1, 2, 4 segments (doubling) and after the last.
  rows = mixing.trajectory(probs, log_joint, 4, CRITERIA)
  assert [r['segments'] for r in rows] == [1, 2, 4, 5]
  assert rows[-1]['fn_split_rhat_max'] == mixing.report(
      probs, log_joint, CRITERIA)['fn_split_rhat_max']
  idata = mixing.to_inference_data(params, log_joint, probs)
  assert idata['posterior']['probs'].shape == (2, 20, 20, 2)


def test_a_directory_without_segments_is_refused(tmp_path):
  with pytest.raises(files.InvalidFile, match='no segment'):
    mixing.read_segments(str(tmp_path))
  with pytest.raises(files.InvalidFile, match='no HMC checkpoint'):
    mixing.read_segments(str(tmp_path / 'absent'))


def test_a_damaged_segment_is_refused(run, tmp_path):
  import shutil
  directory = str(tmp_path / 'copy')
  shutil.copytree(run[4], directory)
  index = [n for n in __import__('os').listdir(directory + '/segment_00001')
           if n.startswith('ckpt.data')][0]
  with open(f'{directory}/segment_00001/{index}', 'r+b') as f:
    f.truncate(10)
  with pytest.raises(files.InvalidFile, match='segment_00001'):
    mixing.read_segments(directory)


class _ProbabilityEnsemble:
  """Just what `function_space_diagnostics` reads: samples ordered step by
  step with the chains interleaved, as HMC's `fit` stores them."""

  def __init__(self, probs):  # probs [K, C, B, classes]
    steps, chains = probs.shape[:2]
    self.num_samples = steps * chains
    self._log_probs = tf.math.log(tf.reshape(
        tf.constant(probs, tf.float32), (steps * chains,) + probs.shape[2:]))

  def log_probs(self, x):
    del x
    return self._log_probs


def _softmax_draws(ramp, num_draws=200, num_chains=4, seed=0):
  logits = np.random.RandomState(seed).normal(
      size=(num_draws, num_chains, 5, 3))
  logits[..., 0] += ramp * np.linspace(0.0, 1.0, num_draws)[:, None, None]
  return np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)


def test_function_space_diagnostics_are_arviz_rank_normalised():
  from tfp_robust.fit.mcmc import diagnostics  # pylint: disable=g-import-not-at-top
  # Chains that drift alike look converged to the plain R-hat, not to the
  # rank-normalised split R-hat, which reads the draws in the order the
  # sampler made them (steps first, chains interleaved).
  drift = diagnostics.function_space_diagnostics(
      _ProbabilityEnsemble(_softmax_draws(ramp=6.0)), 4, None)
  assert drift['fn_rhat_max'] < 1.1
  assert drift['fn_split_rhat_max'] > 1.3
  steady = diagnostics.function_space_diagnostics(
      _ProbabilityEnsemble(_softmax_draws(ramp=0.0)), 4, None)
  assert steady['fn_split_rhat_max'] < 1.05
  assert steady['fn_ess_min'] > 400  # 800 independent draws.
  assert drift['fn_ess_min'] < 0.25 * steady['fn_ess_min']
  assert steady['fn_ess_tail_min'] > 300
