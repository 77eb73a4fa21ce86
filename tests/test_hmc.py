"""HMC: correctness on known posteriors, full-data log-joint, checkpoints, seeds."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_robust import data
from tfp_robust.fit import hmc
from tfp_robust.fit.mcmc import diagnostics as mcmc_diagnostics
from tfp_robust import networks
from tfp_robust.reports import summaries

TINY = networks.Architecture.mlp(2, [4], 2)


# -- a conjugate Bayesian linear regression --------------------------------

class LinearRegression:
  """y = X w + N(0, sigma^2), w ~ N(0, tau^2 I): the posterior is Gaussian."""

  def __init__(self, num_points=40, sigma=0.5, tau=1.0, seed=0):
    rng = np.random.RandomState(seed)
    self.x = rng.normal(size=(num_points, 3)).astype(np.float32)
    w = np.array([1.0, -0.5, 0.3])
    self.y = (self.x @ w + sigma * rng.normal(size=num_points)).astype(
        np.float32)
    self.sigma, self.tau = sigma, tau
    x64 = self.x.astype(np.float64)
    precision = x64.T @ x64 / sigma**2 + np.eye(3) / tau**2
    self.cov = np.linalg.inv(precision)
    self.mean = self.cov @ x64.T @ self.y.astype(np.float64) / sigma**2
    self.std = np.sqrt(np.diag(self.cov))

  def log_prob(self, w):
    """Unnormalised log posterior of weights `[C, 3]`, one value per chain."""
    residual = self.y[None] - tf.einsum('nd,cd->cn', self.x, w)
    return (-0.5 * tf.reduce_sum(w**2, -1) / self.tau**2 -
            0.5 * tf.reduce_sum(residual**2, -1) / self.sigma**2)


@pytest.fixture(scope='module')
def regression():
  return LinearRegression()


def _assert_same_result(a, b):
  assert len(a.samples) == len(b.samples)
  for sa, sb in zip(a.samples, b.samples):
    np.testing.assert_array_equal(sa, sb)
  np.testing.assert_array_equal(a.log_prob, b.log_prob)
  np.testing.assert_array_equal(a.is_accepted, b.is_accepted)
  assert a.step_size == b.step_size


def test_recovers_conjugate_linear_regression_posterior(regression):
  # The suite's one chain compiled with XLA (warm-up and sampling), as runs
  # are: the other tests run without it ($TFP_ROBUST_JIT_COMPILE=0).
  config = hmc.HMCConfig(num_results=3000, num_burnin_steps=300,
                         num_leapfrog_steps=7, step_size=0.05, num_chains=2,
                         seed=0, segment_size=3000, jit_compile=True)
  result = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], config)
  assert result.samples[0].shape == (3000, 2, 3)
  assert result.log_prob.shape == (3000, 2)
  assert result.is_accepted.dtype == np.bool_
  draws = result.samples[0].reshape(-1, 3).astype(np.float64)
  # Tolerances: means within 0.1 posterior standard deviations, standard
  # deviations within 15%, the correlation matrix within 0.1.
  np.testing.assert_array_less(
      np.abs(draws.mean(0) - regression.mean), 0.1 * regression.std)
  np.testing.assert_allclose(draws.std(0), regression.std, rtol=0.15)
  want_corr = regression.cov / np.outer(regression.std, regression.std)
  np.testing.assert_allclose(np.corrcoef(draws.T), want_corr, atol=0.1)
  # Both chains agree, and the adapted sampler mixes well.
  for chain in range(2):
    np.testing.assert_array_less(
        np.abs(result.samples[0][:, chain].mean(0) - regression.mean),
        0.15 * regression.std)
  report = result.diagnostics
  assert 0.6 < report['acceptance_rate'] < 0.95
  assert report['rhat_max'] < 1.05
  assert report['ess_min'] > 300
  assert report['num_kept_samples'] == 6000
  # The trace is the target at the kept states.
  np.testing.assert_allclose(
      result.log_prob[-5:],
      regression.log_prob(tf.constant(result.samples[0][-5:].reshape(-1, 3))
                         ).numpy().reshape(5, 2), rtol=1e-4)


def test_recovers_correlated_gaussian():
  mean = np.array([1.0, -2.0])
  cov = np.array([[1.0, 1.8], [1.8, 4.0]])  # Correlation 0.9.
  target = tfp.distributions.MultivariateNormalTriL(
      mean.astype(np.float32), tf.linalg.cholesky(cov.astype(np.float32)))
  config = hmc.HMCConfig(num_results=2000, num_burnin_steps=300,
                         num_leapfrog_steps=8, step_size=0.1, num_chains=2,
                         seed=1, segment_size=2000)
  result = hmc.sample(target.log_prob, [tf.zeros((2, 2))], config)
  draws = result.samples[0].reshape(-1, 2).astype(np.float64)
  std = np.sqrt(np.diag(cov))
  np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 0.1 * std)
  np.testing.assert_allclose(draws.std(0), std, rtol=0.15)
  assert np.corrcoef(draws.T)[0, 1] == pytest.approx(0.9, abs=0.05)


# -- the network log-joint -------------------------------------------------

def _np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_network_log_joint_uses_the_full_training_set():
  moons = data.half_moons(300, 10, seed=4)
  arch = networks.Architecture.mlp(2, [8], 2, 'tanh')
  prior_scale = 0.7
  rng = np.random.RandomState(5)
  params = [rng.normal(size=(3,) + shape).astype(np.float32)
            for _, shape in arch.param_shapes()]
  log_joint = hmc.network_log_joint(arch, moons.x_train, moons.y_train,
                                    prior_scale)
  got = log_joint(*[tf.constant(p) for p in params]).numpy()
  assert got.shape == (3,)
  # Independently: a Gaussian prior plus the sum over mini-batches of 64.
  p64 = [p.astype(np.float64) for p in params]
  want = []
  for c in range(3):
    prior = sum(np.sum(-0.5 * (p[c] / prior_scale)**2 -
                       np.log(prior_scale * np.sqrt(2 * np.pi))) for p in p64)
    likelihood = 0.0
    for start in range(0, 300, 64):
      xb = moons.x_train[start:start + 64].astype(np.float64)
      yb = moons.y_train[start:start + 64]
      h = np.tanh(xb @ p64[0][c] + p64[1][c])
      log_probs = _np_log_softmax(h @ p64[2][c] + p64[3][c])
      likelihood += log_probs[np.arange(len(yb)), yb].sum()
    want.append(prior + likelihood)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # A log-likelihood on a subset would be clearly off.
  subset = hmc.network_log_joint(arch, moons.x_train[:64],
                                 moons.y_train[:64], prior_scale)
  assert np.all(np.abs(subset(*params).numpy() - got) > 10)


def test_network_log_joint_checks_data():
  moons = data.half_moons(20, 10, seed=4)
  with pytest.raises(ValueError, match=r'Labels must have shape \[20\]'):
    hmc.network_log_joint(TINY, moons.x_train, moons.y_train[:5])
  with pytest.raises(ValueError, match=r'Inputs must have shape \[B, 2\]'):
    hmc.network_log_joint(TINY, moons.x_train[:, :1], moons.y_train)


def test_initial_state_is_he_normal_with_zero_biases():
  state = hmc.initial_network_state(networks.Architecture.mlp(8, [4], 2),
                                    4000, tf.constant([3, 0]))
  assert [tuple(s.shape) for s in state] == [(4000, 8, 4), (4000, 4),
                                             (4000, 4, 2), (4000, 2)]
  np.testing.assert_array_equal(state[1].numpy(), 0.0)
  np.testing.assert_array_equal(state[3].numpy(), 0.0)
  assert np.std(state[0].numpy()) == pytest.approx(np.sqrt(2 / 8), rel=0.03)
  assert np.std(state[2].numpy()) == pytest.approx(np.sqrt(2 / 4), rel=0.03)
  again = hmc.initial_network_state(networks.Architecture.mlp(8, [4], 2),
                                    4000, tf.constant([3, 0]))
  np.testing.assert_array_equal(state[0].numpy(), again[0].numpy())


# -- checkpoints and resumption --------------------------------------------

SMALL_RUN = hmc.HMCConfig(num_results=30, num_burnin_steps=20,
                          num_leapfrog_steps=3, step_size=0.05, num_chains=2,
                          seed=7, segment_size=10, warm_up_checkpoint_every=10)


@pytest.fixture(scope='module')
def uninterrupted(regression, tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('hmc_full'))
  result = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                      checkpoint_dir=directory, target_identity='regression')
  return directory, result


def test_checkpointed_run_equals_run_without_checkpoints(regression,
                                                         uninterrupted):
  directory, result = uninterrupted
  assert sorted(os.listdir(directory)) == [
      'run.json', 'segment_00000', 'segment_00001', 'segment_00002', 'state',
      'timings.json', 'warm_up', 'warm_up_trace']
  plain = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN)
  _assert_same_result(plain, result)
  assert result.samples[0].shape == (30, 2, 3)
  # The kept states move: this is not a trivially equal comparison.
  assert np.mean(result.is_accepted) > 0.5
  assert np.abs(np.diff(result.samples[0], axis=0)).max() > 1e-2


@pytest.mark.parametrize('stop_after_phases', [1, 2, 3])
def test_resume_after_interruption_gives_identical_samples(
    regression, uninterrupted, tmp_path, stop_after_phases):
  directory = str(tmp_path / 'hmc')
  stopped = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                       checkpoint_dir=directory, target_identity='regression',
                       stop_after_phases=stop_after_phases)
  assert stopped is None
  segments = sorted(n for n in os.listdir(directory) if n.startswith('seg'))
  assert len(segments) == stop_after_phases - 1
  assert not any(n.startswith('.tmp') for n in os.listdir(directory))
  resumed = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                       checkpoint_dir=directory, target_identity='regression')
  _assert_same_result(resumed, uninterrupted[1])
  assert not any(n.startswith('.tmp') for n in os.listdir(directory))


@pytest.mark.parametrize('stop', [dict(stop_after_warm_up_steps=10),
                                  dict(stop_after_phases=3)])
def test_resumed_run_reports_the_whole_runs_time(regression, tmp_path, stop):
  directory = str(tmp_path / 'hmc')
  assert hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                    checkpoint_dir=directory, target_identity='regression',
                    **stop) is None
  with open(os.path.join(directory, 'timings.json')) as f:
    before = json.load(f)
  resumed = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                       checkpoint_dir=directory, target_identity='regression')
  with open(os.path.join(directory, 'timings.json')) as f:
    after = json.load(f)
  report = resumed.diagnostics
  # Every phase was timed, by one process or the other, and the killed
  # process's phases are counted, not timed again.
  assert after['warm_up_steps'] == SMALL_RUN.num_burnin_steps
  assert sorted(after['segments']) == ['0', '1', '2']
  for segment, timing in before['segments'].items():
    assert after['segments'][segment] == timing
  if 'stop_after_warm_up_steps' in stop:
    assert after['warm_up_seconds'] > before['warm_up_seconds'] > 0
  else:
    assert after['warm_up_seconds'] == before['warm_up_seconds']
  assert report['warm_up_seconds'] == pytest.approx(after['warm_up_seconds'])
  assert report['sampling_seconds'] == pytest.approx(
      sum(t['seconds'] for t in after['segments'].values()))
  assert report['sampler_seconds'] == pytest.approx(
      report['warm_up_seconds'] + report['sampling_seconds'])
  assert report['leapfrog_steps_per_iteration'] == 3.0
  assert np.isfinite(report['seconds_per_leapfrog_step'])
  # A finished run read back reports the same cost.
  again = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                     checkpoint_dir=directory, target_identity='regression')
  assert again.diagnostics['sampler_seconds'] == report['sampler_seconds']


@pytest.mark.parametrize('text', [
    'not json', '[]', '{"segments": {}}',
    '{"warm_up_seconds": -1, "warm_up_steps": 20, "segments": {}}',
    '{"warm_up_seconds": 1%s, "warm_up_steps": 20, "segments": {}}' % (
        '0' * 400),  # Too large for a float: OverflowError.
    '[' * 100000 + ']' * 100000])  # Deeper than the parser's stack.
def test_unreadable_timings_are_ignored_with_a_warning(regression, tmp_path,
                                                       caplog, text):
  directory = str(tmp_path / 'hmc')
  assert hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                    checkpoint_dir=directory, target_identity='regression',
                    stop_after_phases=2) is None
  with open(os.path.join(directory, 'timings.json'), 'w') as f:
    f.write(text)
  with caplog.at_level('WARNING'):
    resumed = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                         checkpoint_dir=directory, target_identity='regression')
  assert 'ignoring the phase timings' in caplog.text
  assert np.isnan(resumed.diagnostics['warm_up_seconds'])
  # The phases this process ran are timed; the lost ones make totals NaN.
  assert np.isnan(resumed.diagnostics['sampler_seconds'])
  assert np.isfinite(resumed.diagnostics['seconds_per_leapfrog_step'])


def test_timing_report_counts_only_whole_phases():
  from tfp_robust.fit.mcmc import driver  # pylint: disable=g-import-not-at-top
  config = dataclasses.replace(SMALL_RUN, trajectory='jittered')
  segment = {'seconds': 2.0, 'iterations': 10, 'leapfrogs': 4.0}
  whole = {'warm_up_seconds': 5.0, 'warm_up_steps': 20,
           'segments': {0: segment, 1: segment, 2: dict(segment, leapfrogs=1.0)}}
  report = driver.timing_report(whole, config, num_segments=3)
  assert report['warm_up_seconds'] == 5.0
  assert report['sampling_seconds'] == 6.0
  assert report['sampler_seconds'] == 11.0
  assert report['leapfrog_steps_per_iteration'] == 3.0
  assert report['seconds_per_leapfrog_step'] == 0.05  # median of .05 .05 .2
  # A segment's time lost: totals unknown, rates from the timed ones.
  lost = dict(whole, segments={0: segment, 2: segment})
  report = driver.timing_report(lost, config, num_segments=3)
  assert np.isnan(report['sampling_seconds'])
  assert np.isnan(report['sampler_seconds'])
  assert report['leapfrog_steps_per_iteration'] == 4.0
  # Part of warm-up untimed; no warm-up at all.
  assert np.isnan(driver.timing_report(dict(whole, warm_up_steps=10), config,
                                       3)['warm_up_seconds'])
  no_warm_up = dataclasses.replace(config, num_burnin_steps=0)
  assert driver.timing_report(dict(whole, warm_up_seconds=0.0,
                                   warm_up_steps=0), no_warm_up,
                              3)['sampler_seconds'] == 6.0


def test_unchunked_warm_up_is_timed_across_a_resume(regression, tmp_path):
  one_loop = dataclasses.replace(SMALL_RUN, warm_up_checkpoint_every=0)
  directory = str(tmp_path / 'hmc')
  assert hmc.sample(regression.log_prob, [tf.zeros((2, 3))], one_loop,
                    checkpoint_dir=directory, target_identity='regression',
                    stop_after_phases=1) is None
  resumed = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], one_loop,
                       checkpoint_dir=directory, target_identity='regression')
  assert resumed.diagnostics['warm_up_seconds'] > 0
  assert np.isfinite(resumed.diagnostics['sampler_seconds'])


def test_warm_up_resumed_without_its_timings_reports_no_total(regression,
                                                             tmp_path):
  # As a run started before timings were saved: the first chunk's time is
  # unknown, so the warm-up's total is too, not the second chunk's alone.
  directory = str(tmp_path / 'hmc')
  assert hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                    checkpoint_dir=directory, target_identity='regression',
                    stop_after_warm_up_steps=10) is None
  os.remove(os.path.join(directory, 'timings.json'))
  resumed = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                       checkpoint_dir=directory, target_identity='regression')
  assert np.isnan(resumed.diagnostics['warm_up_seconds'])
  assert np.isfinite(resumed.diagnostics['sampling_seconds'])


def test_stop_after_phases_counts_phases_already_done(regression, tmp_path):
  directory = str(tmp_path / 'hmc')
  for _ in range(2):
    assert hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                      checkpoint_dir=directory, target_identity='regression',
                      stop_after_phases=2) is None
  # Two phases are done in total: warm-up and the first segment only.
  assert sorted(n for n in os.listdir(directory)
                if n.startswith('segment')) == ['segment_00000']


def test_finished_run_is_read_back(regression, uninterrupted):
  directory, result = uninterrupted
  again = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                     checkpoint_dir=directory, target_identity='regression')
  _assert_same_result(again, result)


def test_other_configuration_or_target_on_existing_checkpoint_is_refused(
    regression, uninterrupted):
  directory, _ = uninterrupted
  other = dataclasses.replace(SMALL_RUN, seed=8)
  with pytest.raises(ValueError, match='different configuration or target'):
    hmc.sample(regression.log_prob, [tf.zeros((2, 3))], other,
               checkpoint_dir=directory, target_identity='regression')
  with pytest.raises(ValueError, match='different configuration or target'):
    hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
               checkpoint_dir=directory, target_identity='other data')


@pytest.mark.parametrize('field, value', [
    ('num_results', 0), ('num_leapfrog_steps', 0), ('thinning', 0),
    ('num_chains', 0), ('segment_size', 0)])
def test_config_validation(field, value):
  with pytest.raises(ValueError, match=f'HMCConfig.{field}=0 is invalid: it must be an integer >= 1'):
    dataclasses.replace(SMALL_RUN, **{field: value}).validate()


def test_config_validation_of_burnin_and_step_size():
  for bad, message in ((dict(num_burnin_steps=-1), 'num_burnin_steps=-1'),
                       (dict(step_size=0.0), 'step_size=0.0')):
    with pytest.raises(ValueError, match=f'HMCConfig.{message} is invalid'):
      dataclasses.replace(SMALL_RUN, **bad).validate()


# -- HMC over network weights ----------------------------------------------

TINY_RUN = hmc.HMCConfig(num_results=20, num_burnin_steps=20,
                         num_leapfrog_steps=5, step_size=0.01, num_chains=2,
                         seed=11, segment_size=10, jit_compile=False)


@pytest.fixture(scope='module')
def tiny_data():
  return data.half_moons(100, 100, seed=12)


@pytest.fixture(scope='module')
def tiny_fit(tiny_data):
  return hmc.fit(TINY, tiny_data.x_train, tiny_data.y_train, TINY_RUN)


def test_fit_returns_chains_interleaved_as_an_ensemble(tiny_fit):
  ensemble, result = tiny_fit
  assert ensemble.method == 'hmc' and ensemble.num_samples == 40
  assert ensemble.architecture == TINY
  for params, samples in zip(ensemble.params, result.samples):
    assert samples.shape[:2] == (20, 2)
    np.testing.assert_array_equal(params.numpy()[0], samples[0, 0])
    np.testing.assert_array_equal(params.numpy()[1], samples[0, 1])
    np.testing.assert_array_equal(params.numpy()[2], samples[1, 0])
  assert result.step_size > 0
  assert np.mean(result.is_accepted) > 0.3


def test_fit_is_reproducible(tiny_data, tiny_fit):
  _, again = hmc.fit(TINY, tiny_data.x_train, tiny_data.y_train, TINY_RUN)
  _assert_same_result(again, tiny_fit[1])
  _, other = hmc.fit(TINY, tiny_data.x_train, tiny_data.y_train,
                     dataclasses.replace(TINY_RUN, seed=12))
  assert np.abs(other.samples[0] - tiny_fit[1].samples[0]).max() > 1e-2


def test_fit_resumes_and_refuses_other_data(tiny_data, tiny_fit, tmp_path):
  directory = str(tmp_path / 'fit')
  assert hmc.fit(TINY, tiny_data.x_train, tiny_data.y_train, TINY_RUN,
                 checkpoint_dir=directory, stop_after_phases=2) is None
  ensemble, resumed = hmc.fit(TINY, tiny_data.x_train, tiny_data.y_train,
                              TINY_RUN, checkpoint_dir=directory)
  _assert_same_result(resumed, tiny_fit[1])
  for a, b in zip(ensemble.params, tiny_fit[0].params):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  with pytest.raises(ValueError, match='different configuration or target'):
    hmc.fit(TINY, tiny_data.x_test, tiny_data.y_test, TINY_RUN,
            checkpoint_dir=directory)


def test_fit_starts_from_a_given_initial_state(tiny_data, tiny_fit):
  default = hmc.initial_network_state(TINY, 2,
                                      hmc._phase_seed(TINY_RUN.seed, 1 << 20))
  _, same = hmc.fit(TINY, tiny_data.x_train, tiny_data.y_train, TINY_RUN,
                    initial_state=default)
  _assert_same_result(same, tiny_fit[1])
  shifted = [s + 0.5 for s in default]
  _, moved = hmc.fit(TINY, tiny_data.x_train, tiny_data.y_train, TINY_RUN,
                     initial_state=shifted)
  assert np.abs(moved.samples[0] - same.samples[0]).max() > 1e-2
  with pytest.raises(ValueError, match='initial_state has 3 chains'):
    hmc.fit(TINY, tiny_data.x_train, tiny_data.y_train, TINY_RUN,
            initial_state=hmc.initial_network_state(TINY, 3,
                                                    tf.constant([0, 0])))


def test_function_space_diagnostics():
  from conftest import random_params
  from tfp_robust import ArchitectureEnsemble
  x = data.half_moons(20, 10, seed=15).x_train
  # 200 steps x 2 chains of independent draws: R-hat 1, ESS about 400.
  iid = ArchitectureEnsemble(TINY, random_params(TINY, 400, seed=16, scale=1.0))
  report = mcmc_diagnostics.function_space_diagnostics(iid, 2, x)
  assert report['fn_fraction_varying'] == 1.0
  assert report['fn_rhat_max'] < 1.1
  assert 250 < report['fn_ess_median'] < 600
  # Chains stuck in two different functions: R-hat far above 1.
  one = random_params(TINY, 1, seed=17, scale=2.0)
  two = random_params(TINY, 1, seed=18, scale=2.0)
  noise = random_params(TINY, 400, seed=19, scale=0.01)
  first_chain = np.arange(400) % 2 == 0  # Chains are interleaved.
  stuck = [np.where(first_chain.reshape((400,) + (1,) * (a.ndim - 1)), a, b)
           + n for a, b, n in zip(one, two, noise)]
  report = mcmc_diagnostics.function_space_diagnostics(ArchitectureEnsemble(TINY, stuck), 2, x)
  assert report['fn_rhat_median'] > 2.0
  # Two chains drifting alike (each a ramp through the same functions): the
  # plain R-hat sees no disagreement between them, the split R-hat sees
  # each chain's halves disagree.
  ramp = np.repeat(np.linspace(0.0, 1.0, 200), 2)  # Interleaved chains.
  drifting = [a + ramp.reshape((400,) + (1,) * (a.ndim - 1)) * (b - a)
              + 0.1 * n for a, b, n in zip(one, two, noise)]
  report = mcmc_diagnostics.function_space_diagnostics(
      ArchitectureEnsemble(TINY, drifting), 2, x)
  assert report['fn_rhat_max'] < 1.1
  assert report['fn_split_rhat_max'] > 1.25
  # Independent draws: split R-hat near 1 too.
  report = mcmc_diagnostics.function_space_diagnostics(iid, 2, x)
  assert report['fn_split_rhat_max'] < 1.1
  # Identical samples: no probability varies, nothing else is reported.
  constant = ArchitectureEnsemble(TINY, [np.repeat(a, 40, 0) for a in one])
  assert mcmc_diagnostics.function_space_diagnostics(constant, 2, x) == {
      'fn_fraction_varying': 0.0}


def test_diagnostics_of_known_chains():
  rng = np.random.RandomState(13)
  iid = [rng.normal(size=(500, 2, 3)).astype(np.float32)]
  log_prob = rng.normal(size=(500, 2)).astype(np.float32)
  accepted = rng.uniform(size=(500, 2)) < 0.7
  report = mcmc_diagnostics.diagnostics(iid, log_prob, accepted)
  assert report['acceptance_rate'] == pytest.approx(np.mean(accepted))
  assert report['num_kept_samples'] == 1000
  assert 700 < report['ess_median'] < 1300
  assert report['rhat_max'] < 1.02
  stuck = [iid[0] + np.array([0.0, 5.0])[None, :, None]]  # Chains disagree.
  assert mcmc_diagnostics.diagnostics(stuck, log_prob, accepted)['rhat_median'] > 2.0


def test_hmc_on_a_network_classifies_half_moons():
  moons = data.half_moons(300, 300, noise=0.1, seed=14)
  arch = networks.Architecture.mlp(2, [16], 2)
  config = hmc.HMCConfig(num_results=100, num_burnin_steps=300,
                         num_leapfrog_steps=20, step_size=0.01, num_chains=2,
                         prior_scale=3.0, seed=0, segment_size=50)
  ensemble, result = hmc.fit(arch, moons.x_train, moons.y_train, config)
  assert ensemble.num_samples == 200
  assert result.diagnostics['acceptance_rate'] > 0.5
  assert ensemble.accuracy(moons.x_test, moons.y_test) > 0.9


def test_diagnostics_of_chains_that_never_moved_are_nan_not_an_error():
  samples = [np.stack([np.zeros((5, 3)), np.ones((5, 3))], axis=1)]
  report = mcmc_diagnostics.diagnostics(samples, np.zeros((5, 2)), np.zeros((5, 2), bool))
  assert report['acceptance_rate'] == 0.0
  assert np.isnan(report['rhat_max'])


def test_diagnostics_subsample_weights_to_bound_memory():
  rng = np.random.RandomState(0)
  samples = [rng.normal(size=(20, 2, 50, 40)), rng.normal(size=(20, 2, 40))]
  report = mcmc_diagnostics.diagnostics(samples, rng.normal(size=(20, 2)),
                           np.ones((20, 2), bool), max_coordinates=300)
  assert report['ess_coordinates'] == 300
  assert 10 < report['ess_median'] < 80  # Independent draws: ESS near 40.


def test_resume_inside_warm_up_gives_identical_samples(regression,
                                                       uninterrupted,
                                                       tmp_path):
  _, full = uninterrupted
  assert SMALL_RUN.num_burnin_steps >= 2 * SMALL_RUN.segment_size
  directory = str(tmp_path / 'stopped_in_warm_up')
  stopped = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                       checkpoint_dir=directory, target_identity='regression',
                       stop_after_warm_up_steps=SMALL_RUN.segment_size)
  assert stopped is None
  assert sorted(os.listdir(directory)) == ['run.json', 'timings.json',
                                            'warm_up', 'warm_up_trace']
  resumed = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                       checkpoint_dir=directory, target_identity='regression')
  _assert_same_result(resumed, full)


def test_chunked_warm_up_equals_one_loop_in_distribution_and_is_deterministic(
    regression):
  one_loop = dataclasses.replace(SMALL_RUN, warm_up_checkpoint_every=0)
  a = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], one_loop)
  b = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], one_loop)
  _assert_same_result(a, b)
  # Chunked and unchunked warm-ups adapt to similar step sizes.
  chunked = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN)
  assert 0.5 < chunked.step_size / a.step_size < 2.0


# -- TensorBoard ----------------------------------------------------------

def _traced_run(regression, directory, log_dir, config=SMALL_RUN, **kwargs):
  return hmc.sample(regression.log_prob, [tf.zeros((2, 3))], config,
                    checkpoint_dir=directory, target_identity='regression',
                    log_dir=log_dir, **kwargs)


def test_tensorboard_has_every_iteration_of_warm_up_and_sampling(
    regression, tmp_path):
  result = _traced_run(regression, str(tmp_path / 'ckpt'),
                       str(tmp_path / 'tb'))
  written = summaries.read_scalars(str(tmp_path / 'tb'))
  burnin, kept = SMALL_RUN.num_burnin_steps, SMALL_RUN.num_results
  for chain in range(2):
    series = written[f'hmc/log_joint/chain_{chain}']
    assert [step for step, _ in series] == list(range(burnin + kept))
    # The sampling part is the kept samples' log-joint, value for value.
    np.testing.assert_allclose([v for _, v in series[burnin:]],
                               result.log_prob[:, chain], rtol=1e-6)
  acceptance = dict(written['hmc/acceptance'])
  assert len(acceptance) == burnin + kept
  np.testing.assert_allclose(
      [acceptance[burnin + k] for k in range(kept)],
      result.is_accepted.mean(axis=1))
  sizes = dict(written['hmc/step_size'])
  # Warm-up adapts the step size, from the configured start; sampling holds
  # the adapted one.
  assert sizes[0] == pytest.approx(SMALL_RUN.step_size)
  assert len({round(sizes[s], 7) for s in range(burnin)}) > 5
  np.testing.assert_allclose([sizes[s] for s in range(burnin, burnin + kept)],
                             result.step_size, rtol=1e-6)
  diagnostics = dict(written['hmc/diagnostics/rhat_log_joint'])
  assert list(diagnostics) == [burnin + kept - 1]
  assert list(diagnostics.values())[0] == pytest.approx(
      result.diagnostics['rhat_log_joint'], rel=1e-6)
  assert 'hmc/diagnostics/ess_median' in written


@pytest.mark.parametrize('stop', [dict(stop_after_warm_up_steps=10),
                                  dict(stop_after_phases=2)])
def test_resumed_run_writes_the_same_series_without_duplicates(
    regression, tmp_path, stop):
  whole = tmp_path / 'whole'
  _traced_run(regression, str(whole / 'ckpt'), str(whole / 'tb'))
  parts = tmp_path / 'parts'
  assert _traced_run(regression, str(parts / 'ckpt'), str(parts / 'tb'),
                     **stop) is None
  _traced_run(regression, str(parts / 'ckpt'), str(parts / 'tb'))
  expected = summaries.read_scalars(str(whole / 'tb'))
  resumed = summaries.read_scalars(str(parts / 'tb'))
  assert sorted(resumed) == sorted(expected)
  timed = [tag for tag in expected if 'seconds' in tag]
  for tag, series in expected.items():
    if tag in timed:  # Wall-clock times differ; one point each all the same.
      assert [s for s, _ in resumed[tag]] == [s for s, _ in series]
    else:
      assert resumed[tag] == series, tag
  # A rerun of the finished run into the same directory replaces its series.
  _traced_run(regression, str(parts / 'ckpt'), str(parts / 'tb'))
  again = summaries.read_scalars(str(parts / 'tb'))
  assert {t: v for t, v in again.items() if t not in timed} == {
      t: v for t, v in expected.items() if t not in timed}


# -- untrusted checkpoint files (issue 10, items 4 and 6) -------------------

import json  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfp_robust.core import files  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfp_robust.core import locks  # pylint: disable=g-import-not-at-top


def _stopped_run(regression, directory, **kwargs):
  assert hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                    checkpoint_dir=directory, target_identity='regression',
                    **kwargs) is None


@pytest.fixture(scope='module')
def stopped(regression, tmp_path_factory):
  """`stopped(phases, tmp_path)`: a copy of a run stopped after `phases`.

  Each stopped run is sampled once for the module; the tests that damage
  its files (run description, checkpoints) each get their own copy.
  """
  import shutil  # pylint: disable=g-import-not-at-top
  made = {}

  def copy(phases, tmp_path):
    if phases not in made:
      made[phases] = str(tmp_path_factory.mktemp(f'stopped_{phases}') / 'hmc')
      _stopped_run(regression, made[phases], stop_after_phases=phases)
    directory = str(tmp_path / 'hmc')
    shutil.copytree(made[phases], directory)
    return directory

  return copy


def test_checkpoints_without_their_run_description_are_refused(
    regression, stopped, tmp_path):
  directory = stopped(2, tmp_path)
  os.remove(os.path.join(directory, 'run.json'))
  # Without run.json, a resume on another target would return the old run.
  with pytest.raises(files.InvalidFile, match='it is missing') as error:
    hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
               checkpoint_dir=directory, target_identity='other data')
  assert repr(os.path.join(directory, 'run.json')) in str(error.value)
  assert 'segment_00000' in str(error.value)


def test_warm_up_checkpoint_without_run_description_is_refused(regression,
                                                               tmp_path):
  directory = str(tmp_path / 'hmc')
  _stopped_run(regression, directory,
               stop_after_warm_up_steps=SMALL_RUN.warm_up_checkpoint_every)
  os.remove(os.path.join(directory, 'run.json'))
  with pytest.raises(files.InvalidFile, match='warm_up'):
    hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
               checkpoint_dir=directory, target_identity='regression')


@pytest.mark.parametrize('text, message', [
    ('{"config": {"num_results": 30', 'not valid JSON'),
    ('', 'it is empty'),
    ('[]', '"config" and "target"'),
])
def test_unreadable_run_description_is_refused(regression, stopped, tmp_path,
                                               text, message):
  directory = stopped(1, tmp_path)
  path = os.path.join(directory, 'run.json')
  with open(path, 'w') as f:
    f.write(text)
  with pytest.raises(files.InvalidFile, match=message) as error:
    hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
               checkpoint_dir=directory, target_identity='regression')
  assert str(error.value).startswith(f'file={path!r} is invalid')


def test_run_description_written_before_digests_still_resumes(
    regression, stopped, uninterrupted, tmp_path):
  directory = stopped(2, tmp_path)
  path = os.path.join(directory, 'run.json')
  with open(path) as f:
    description = json.load(f)
  assert description['code_version'] == files.code_version()
  with open(path, 'w') as f:  # What the code before digests wrote.
    json.dump({'config': description['config'],
               'target': description['target']}, f, indent=2)
  resumed = hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
                       checkpoint_dir=directory, target_identity='regression')
  _assert_same_result(resumed, uninterrupted[1])


@pytest.mark.parametrize('name', ['segment_00000', 'state'])
def test_truncated_checkpoint_is_refused_naming_it(regression, stopped,
                                                  tmp_path, name):
  directory = stopped(2, tmp_path)
  [data_file] = [n for n in os.listdir(os.path.join(directory, name))
                 if n.startswith('ckpt.data')]
  data_path = os.path.join(directory, name, data_file)
  with open(data_path, 'r+b') as f:
    f.truncate(os.path.getsize(data_path) // 2)
  with pytest.raises(files.InvalidFile, match='cannot be read') as error:
    hmc.sample(regression.log_prob, [tf.zeros((2, 3))], SMALL_RUN,
               checkpoint_dir=directory, target_identity='regression')
  assert repr(os.path.join(directory, name)) in str(error.value)


def test_resume_on_other_data_with_the_same_sums_is_refused(tiny_data,
                                                            tmp_path):
  directory = str(tmp_path / 'fit')
  x, y = tiny_data.x_train, tiny_data.y_train
  assert hmc.fit(TINY, x, y, TINY_RUN, checkpoint_dir=directory,
                 stop_after_phases=1) is None
  # Swap the inputs of two points of different classes: the sums that the
  # target identity records are unchanged, the data is not.
  i, j = 0, int(np.argmax(y != y[0]))
  swapped = x.copy()
  swapped[[i, j]] = swapped[[j, i]]
  with pytest.raises(files.InvalidFile, match='different training data'):
    hmc.fit(TINY, swapped, y, TINY_RUN, checkpoint_dir=directory)


def test_has_checkpoint_counts_a_warm_up_checkpoint(regression, tmp_path):
  directory = str(tmp_path / 'hmc')
  assert not hmc.has_checkpoint(directory)
  _stopped_run(regression, directory,
               stop_after_warm_up_steps=SMALL_RUN.warm_up_checkpoint_every)
  assert sorted(os.listdir(directory)) == ['run.json', 'timings.json',
                                            'warm_up', 'warm_up_trace']
  assert hmc.has_checkpoint(directory)
  os.rename(os.path.join(directory, 'warm_up'),
            os.path.join(directory, 'warm_up.old'))
  assert hmc.has_checkpoint(directory)


def test_resume_inside_warm_up_does_not_retrain_the_sgd_start(
    tiny_data, tmp_path, monkeypatch):
  import ml_collections  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import fitting  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import models  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict({'hmc': dict(
      num_results=4, num_burnin_steps=6, num_leapfrog_steps=3,
      step_size=0.01, num_chains=2, segment_size=2,
      warm_up_checkpoint_every=2, jit_compile=False, init='sgd',
      init_sgd=dict(epochs=2, batch_size=50, learning_rate=0.01))})
  x, y = tiny_data.x_train, tiny_data.y_train
  whole, _ = fitting.fit('hmc', TINY, x, y, config, seed=3,
                         workdir=str(tmp_path / 'whole'))

  class Killed(Exception):
    pass

  real_sample = hmc.sample

  def killed_in_warm_up(*args, **kwargs):
    kwargs['stop_after_warm_up_steps'] = 2
    assert real_sample(*args, **kwargs) is None
    raise Killed()

  monkeypatch.setattr(hmc, 'sample', killed_in_warm_up)
  with pytest.raises(Killed):
    fitting.fit('hmc', TINY, x, y, config, seed=3,
                workdir=str(tmp_path / 'parts'))
  checkpoint_dir = tmp_path / 'parts' / 'hmc_checkpoint'
  assert sorted(os.listdir(checkpoint_dir)) == ['run.json', 'timings.json',
                                                'warm_up', 'warm_up_trace']
  monkeypatch.setattr(hmc, 'sample', real_sample)

  def train_again(*args, **kwargs):
    raise AssertionError('the resumed fit trained its SGD start again')

  monkeypatch.setattr(models, 'train_deep_ensemble', train_again)
  resumed, _ = fitting.fit('hmc', TINY, x, y, config, seed=3,
                           workdir=str(tmp_path / 'parts'))
  for a, b in zip(resumed.params, whole.params):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_uniform_start_is_pyros_and_he_normal_the_default():
  from tfp_robust import networks  # pylint: disable=g-import-not-at-top
  arch = networks.Architecture((784,), 10, ({'kind': 'dense', 'units': 64},))
  seed = tf.constant([3, 0])
  uniform = hmc.initial_network_state(arch, 2, seed, 'uniform')
  for part in uniform:  # Every weight and bias, as Pyro's init_to_uniform.
    values = part.numpy()
    assert values.min() >= -2.0 and values.max() <= 2.0
    assert values.std() > 1.0  # Uniform on [-2, 2]: std 1.15.
  default = hmc.initial_network_state(arch, 2, seed)
  assert default[0].numpy().std() < 0.1  # He-normal: sqrt(2 / 784).
  assert not np.any(default[1].numpy())  # Zero biases.
  with pytest.raises(ValueError, match="init='pyro'"):
    hmc.initial_network_state(arch, 2, seed, 'pyro')


_HOLD = """
import sys, time
from tfp_robust.core import locks
locks.start_run(sys.argv[1], clean=False)
print('locked', flush=True)
time.sleep(120)
"""


def test_fit_takes_its_checkpoint_directory_for_one_writer(tiny_data,
                                                           tmp_path):
  # Issue 27, item 3: through the API, two writers on one checkpoint
  # directory raced (rename errors, orphaned staging); the second is refused.
  import fcntl  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from tfp_robust.core import files  # pylint: disable=g-import-not-at-top
  directory = str(tmp_path / 'fit')
  holder = subprocess.Popen(
      [sys.executable, '-c', _HOLD, directory], stdout=subprocess.PIPE,
      text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
  try:
    assert holder.stdout.readline().strip() == 'locked'
    with pytest.raises(files.WorkdirBusy) as error:
      hmc.fit(TINY, tiny_data.x_train, tiny_data.y_train, TINY_RUN,
              checkpoint_dir=directory)
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  message = str(error.value)
  assert message.startswith(f'checkpoint_dir={directory!r} is invalid: '
                            f'another run is using it (pid {holder.pid} ')
  assert message.endswith('or choose another checkpoint_dir.')
  assert sorted(os.listdir(directory)) == ['.lock']  # Nothing written.
  short = dataclasses.replace(TINY_RUN, num_results=2, num_burnin_steps=2,
                              segment_size=2)
  hmc.fit(TINY, tiny_data.x_train, tiny_data.y_train, short,
          checkpoint_dir=directory)
  # Released (and its file removed) when the fit returns.
  assert files.LOCK_FILE not in os.listdir(directory)
  with locks.one_writer(directory, 'checkpoint_dir'):
    fd = os.open(os.path.join(directory, files.LOCK_FILE), os.O_RDONLY)
    try:  # Held meanwhile.
      with pytest.raises(BlockingIOError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
      os.close(fd)
