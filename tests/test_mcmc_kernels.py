"""Sampler variants: each recovers a posterior known in closed form, adapts
what it claims to adapt, and resumes to the same bits."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from arviz_stats.base import array_stats

from tfp_robust.fit import hmc
from tfp_robust.core import validate
from tfp_robust.fit.mcmc import kernels

# A Gaussian with standard deviations 100 times apart and one correlated
# pair: the shape a diagonal mass matrix is for, and where a fixed
# trajectory tuned to the narrow axis crawls along the wide one.
SCALES = np.array([0.05, 1.0, 5.0])
RHO = 0.6  # Correlation between the last two axes.
COV = np.diag(SCALES**2)
COV[1, 2] = COV[2, 1] = RHO * SCALES[1] * SCALES[2]
PRECISION = np.linalg.inv(COV).astype(np.float32)
MEAN = np.array([0.3, -1.0, 2.0], np.float32)


def log_prob(w):
  centred = w - MEAN
  return -0.5 * tf.einsum('ci,ij,cj->c', centred, PRECISION, centred)


def config_for(**settings):
  return dataclasses.replace(
      hmc.HMCConfig(num_results=600, num_burnin_steps=300,
                    num_leapfrog_steps=5, step_size=0.05, num_chains=4,
                    seed=3, segment_size=300, jit_compile=False), **settings)


def _as_written_before(directory, *fields):
  """Drops `fields` from a run's description, as code before them wrote it."""
  path = os.path.join(directory, 'run.json')
  with open(path) as f:
    description = json.load(f)
  for name in fields:
    del description['config'][name]
  with open(path, 'w') as f:
    json.dump(description, f)


def run(checkpoint_dir=None, stop=None, **settings):
  return hmc.sample(log_prob, [tf.zeros((4, 3))], config_for(**settings),
                    checkpoint_dir=checkpoint_dir, target_identity='gaussian',
                    **(stop or {}))


VARIANTS = {
    'jittered': dict(trajectory='jittered'),
    'adapted (ChEES)': dict(trajectory='adapted'),
    'diagonal': dict(mass_matrix='diagonal'),
    'diagonal, jittered': dict(mass_matrix='diagonal', trajectory='jittered'),
    'nuts, diagonal': dict(kernel='nuts', mass_matrix='diagonal'),
    'diagonal, jittered, one window': dict(mass_matrix='diagonal',
                                           trajectory='jittered',
                                           mass_matrix_adaptation='single'),
}


@pytest.fixture(scope='module')
def results():
  return {name: run(**settings) for name, settings in VARIANTS.items()}


def _mcse_units(values, expected):
  """|mean - expected| of draws `[draws, chains]` in units of their Monte
  Carlo standard error (ArviZ's, from the bulk ESS of the mean)."""
  chains_first = np.asarray(values, np.float64).T
  mcse = array_stats.mcse(chains_first, chain_axis=0, draw_axis=1,
                          method='mean')
  return abs(chains_first.mean() - expected) / mcse


@pytest.mark.parametrize('name', ['adapted (ChEES)', 'diagonal',
                                  'diagonal, jittered', 'nuts, diagonal'])
def test_variant_recovers_the_gaussian(results, name):
  # Each moment's error within 4 of its Monte Carlo standard errors: the
  # mean, the second moment and the correlation, each as the mean of a
  # function of the draws whose expectation is known. A bound in standard
  # deviations is not one: the fixed 5-step trajectory of 'diagonal'
  # resonates on the correlated pair at some adapted step sizes (step 0.68-
  # 0.73: ESS 46-171 there, against thousands at 0.56-0.63), so at seed 3
  # the mean is off by 0.19 sd on an Intel AVX-512 CPU, 1.4 MCSE; over
  # seeds 0-7 every error stays within 2.3 MCSE, as for TFP's own
  # windowed_adaptive_hmc on this target (BUILD_NOTES, "Sampler tests").
  draws = results[name].samples[0].astype(np.float64)  # [draws, chains, 3]
  standard = (draws - MEAN) / SCALES
  for k in range(3):
    assert _mcse_units(draws[..., k], MEAN[k]) < 4, ('mean', k)
    assert _mcse_units(standard[..., k]**2, 1.0) < 4, ('second moment', k)
  assert _mcse_units(standard[..., 1] * standard[..., 2], RHO) < 4
  # Enough draws that 4 MCSE is a bound with power: at ESS 50, 0.57 sd.
  assert results[name].diagnostics['ess_min'] > 50


def test_diagonal_mass_matrix_mixes_where_the_identity_crawls(results):
  # Same leapfrog count per proposal: the identity mass matrix adapts its
  # step to the 0.05 axis and barely moves along the 5.0 one.
  plain = run()
  assert plain.diagnostics['ess_min'] < 30
  assert results['diagonal'].diagnostics['ess_min'] > 10 * (
      plain.diagnostics['ess_min'])
  # The adapted step size is in the preconditioned units, about one
  # standard deviation, not the narrow axis' 0.05.
  assert results['diagonal'].step_size > 0.3 > plain.step_size


def test_windowed_adaptation_beats_one_window(results):
  # TFP's windows re-adapt the step size to each new mass matrix; one
  # window without that restart leaves it under-adapted (measured, seeds
  # 0-2: step 0.87-1.07 against 0.63-0.69; ESS of the mean 1,680-1,958
  # against 35-118, of the second moment 739-953 against 99-228). Compared
  # with a jittered trajectory: a fixed one can resonate (next test).
  windowed = results['diagonal, jittered'].diagnostics
  single = results['diagonal, jittered, one window'].diagnostics
  assert windowed['ess_min'] > 5 * single['ess_min']
  assert windowed['ess_second_moment_min'] > 2 * single[
      'ess_second_moment_min']


def test_second_moment_ess_exposes_a_resonating_trajectory(results):
  # Five leapfrog steps of the windowed step size span about half a period
  # of the preconditioned Gaussian: each proposal maps x to about -x, so
  # the ESS of the mean is at its cap (the number of draws) while the
  # spread is barely explored (seeds 0-2: second-moment ESS 18-454).
  report = results['diagonal'].diagnostics
  assert report['ess_min'] == report['num_kept_samples']
  assert report['ess_second_moment_min'] < 0.5 * report['ess_min']


def test_jittered_trajectory_varies_the_leapfrog_count(results):
  # u uniform in [0, 1]: ceil(u * 5) steps, about 3 on average.
  report = results['jittered'].diagnostics
  assert 2.5 < report['leapfrog_steps_per_iteration'] < 3.5
  no_jitter = run(trajectory='jittered', jitter=0.0)
  assert no_jitter.diagnostics['leapfrog_steps_per_iteration'] == 5.0


@pytest.mark.parametrize('trajectory', ['jittered', 'adapted'])
def test_thinning_counts_the_leapfrogs_of_every_iteration(trajectory):
  # The jitter is a Halton sequence over the iterations, the same for any
  # seed, and warm-up does not thin: 2 x 40 iterations kept every second
  # take the leapfrog steps of 80 kept every one (to float32 rounding of
  # the segment means). Counting only the kept iterations gave 3.025
  # against 2.9875 for the jittered trajectory here (7.45 against 7.4375
  # for ChEES).
  small = dict(trajectory=trajectory, num_burnin_steps=100, segment_size=20)
  every = run(num_results=80, **small).diagnostics
  thinned = run(num_results=40, thinning=2, **small)
  assert thinned.samples[0].shape == (40, 4, 3)
  assert thinned.diagnostics['leapfrog_steps_per_iteration'] == (
      pytest.approx(every['leapfrog_steps_per_iteration'], rel=1e-6))


@pytest.mark.parametrize('trajectory', ['jittered', 'adapted'])
def test_leapfrog_count_is_capped_in_warm_up_and_sampling(trajectory):
  # A trajectory of length 50 at step size 0.05 asks for up to 1,000
  # leapfrog steps a proposal; the cap holds each to 4, in warm-up (the
  # adapting kernel, stepped here) and in sampling (the driver's count).
  config = config_for(trajectory=trajectory, trajectory_length=50.0,
                      max_leapfrog_steps=4, num_results=10,
                      num_burnin_steps=10, segment_size=10)
  state = [tf.zeros((4, 3))]
  kernel = kernels.warm_up_kernel(log_prob, config, config.step_size, state)
  results = kernels.bootstrap(kernel, state, config)
  counts = []
  for step in range(5):
    state, results = kernel.one_step(state, results, seed=(step, 1))
    counts.append(float(kernels.leapfrogs(results)))
  assert max(counts) == 4.0, counts
  sampled = run(**dataclasses.asdict(config))
  assert 1 <= sampled.diagnostics['leapfrog_steps_per_iteration'] <= 4


@pytest.mark.parametrize('trajectory', ['jittered', 'adapted'])
def test_a_cap_that_never_binds_changes_no_bit(trajectory):
  # Below the cap the capped setter is TFP's own: the same samples as
  # without the cap (`cap_leapfrogs=False`, TFP's behaviour).
  small = dict(trajectory=trajectory, num_results=20, num_burnin_steps=20,
               segment_size=20)
  capped = run(**small)
  assert capped.diagnostics['leapfrog_steps_per_iteration'] < 1000
  uncapped = run(cap_leapfrogs=False, **small)
  np.testing.assert_array_equal(capped.samples[0], uncapped.samples[0])
  assert capped.step_size == uncapped.step_size


def test_run_from_before_the_cap_resumes_uncapped(tmp_path):
  # ChEES from a trajectory of length 5 (100 steps of 0.05) held to 3
  # leapfrog steps binds; a run started before the cap existed resumes as
  # it started (uncapped), bit for bit.
  small = dict(trajectory='adapted', trajectory_length=5.0,
               max_leapfrog_steps=3, num_results=20,
               num_burnin_steps=20, segment_size=10, cap_leapfrogs=False)
  whole = run(**small)
  directory = str(tmp_path / 'run')
  assert run(directory, dict(stop_after_phases=2), **small) is None
  _as_written_before(directory, 'cap_leapfrogs')
  with pytest.raises(ValueError, match='different configuration'):
    run(directory, **dict(small, cap_leapfrogs=True))
  resumed = run(directory, **small)
  np.testing.assert_array_equal(resumed.samples[0], whole.samples[0])
  capped = run(**dict(small, cap_leapfrogs=True))
  assert not np.array_equal(capped.samples[0], whole.samples[0])


def test_nuts_and_chees_choose_longer_trajectories_than_the_fixed_one(results):
  for name in ('adapted (ChEES)', 'nuts, diagonal'):
    assert results[name].diagnostics['leapfrog_steps_per_iteration'] != 5.0
  assert results['adapted (ChEES)'].diagnostics[
      'leapfrog_steps_per_iteration'] > 10


@pytest.mark.parametrize('settings, stop', [
    # The suite's one adaptive chain compiled with XLA (the sampler of the
    # long runs), warm-up and sampling; the other tests run without it.
    (dict(mass_matrix='diagonal', trajectory='jittered', jit_compile=True),
     dict(stop_after_warm_up_steps=20)),
    (dict(kernel='nuts', mass_matrix='diagonal'), dict(stop_after_phases=2)),
])
def test_adaptive_sampler_resumes_to_the_same_samples(tmp_path, settings,
                                                      stop):
  small = dict(num_results=40, num_burnin_steps=100, segment_size=20,
               warm_up_checkpoint_every=20, **settings)
  whole = run(**small)
  directory = str(tmp_path / 'run')
  assert run(directory, stop, **small) is None
  resumed = run(directory, **small)
  np.testing.assert_array_equal(resumed.samples[0], whole.samples[0])
  np.testing.assert_array_equal(resumed.log_prob, whole.log_prob)
  assert resumed.step_size == whole.step_size


def test_run_started_before_the_sampler_settings_still_resumes(tmp_path):
  directory = str(tmp_path / 'run')
  config = hmc.HMCConfig(num_results=20, num_burnin_steps=10,
                         num_leapfrog_steps=3, step_size=0.05, num_chains=2,
                         seed=1, segment_size=10)
  whole = hmc.sample(log_prob, [tf.zeros((2, 3))], config)
  assert hmc.sample(log_prob, [tf.zeros((2, 3))], config,
                    checkpoint_dir=directory, target_identity='gaussian',
                    stop_after_phases=2) is None
  _as_written_before(directory, 'kernel', 'mass_matrix', 'mass_matrix_window',
                     'trajectory', 'trajectory_length', 'jitter',
                     'max_tree_depth', 'max_leapfrog_steps',
                     'mass_matrix_adaptation')
  resumed = hmc.sample(log_prob, [tf.zeros((2, 3))], config,
                       checkpoint_dir=directory, target_identity='gaussian')
  np.testing.assert_array_equal(resumed.samples[0], whole.samples[0])
  # A resume with another sampler is still refused.
  other = dataclasses.replace(config, trajectory='jittered')
  with pytest.raises(ValueError, match='different configuration'):
    hmc.sample(log_prob, [tf.zeros((2, 3))], other, checkpoint_dir=directory,
               target_identity='gaussian')


def test_diagonal_run_from_before_the_windows_resumes_with_one_window(
    tmp_path):
  # 100 warm-up steps, so that the windowed config below is a valid one
  # and only the checkpoint refuses it.
  small = dict(num_results=20, num_burnin_steps=100, segment_size=10,
               mass_matrix='diagonal', mass_matrix_adaptation='single')
  whole = run(**small)
  directory = str(tmp_path / 'run')
  assert run(directory, dict(stop_after_phases=2), **small) is None
  _as_written_before(directory, 'mass_matrix_adaptation')
  # Read as the one-window run it was: the windowed default is refused.
  with pytest.raises(ValueError, match='different configuration'):
    run(directory, **dict(small, mass_matrix_adaptation='windowed'))
  resumed = run(directory, **small)
  np.testing.assert_array_equal(resumed.samples[0], whole.samples[0])


@pytest.mark.parametrize('settings, message', [
    (dict(kernel='mala'), "HMCConfig.kernel='mala'"),
    (dict(mass_matrix='dense'), "HMCConfig.mass_matrix='dense'"),
    (dict(trajectory='long'), "HMCConfig.trajectory='long'"),
    (dict(kernel='nuts', trajectory='jittered'), 'NUTS chooses its own'),
    (dict(jitter=1.5), 'HMCConfig.jitter=1.5'),
    (dict(mass_matrix_window=0.0), 'HMCConfig.mass_matrix_window=0.0'),
    (dict(max_tree_depth=20), 'HMCConfig.max_tree_depth=20'),
    (dict(mass_matrix_window=1.0), 'HMCConfig.mass_matrix_window=1.0'),
    (dict(mass_matrix_adaptation='dense'),
     "HMCConfig.mass_matrix_adaptation='dense'"),
    (dict(mass_matrix='diagonal', num_burnin_steps=5), 'at least 20 steps'),
    (dict(mass_matrix='diagonal', num_burnin_steps=60),
     'at least 100 warm-up steps'),
    (dict(trajectory_length=-1.0), 'HMCConfig.trajectory_length=-1.0'),
])
def test_bad_sampler_settings_are_refused_by_name(settings, message):
  with pytest.raises(validate.InvalidArgument, match=message.replace(
      '(', r'\(')):
    dataclasses.replace(hmc.HMCConfig(), **settings).validate()


def test_describe_and_plain():
  assert kernels.is_plain(hmc.HMCConfig())
  assert not kernels.is_plain(hmc.HMCConfig(trajectory='jittered'))
  assert kernels.describe(hmc.HMCConfig(mass_matrix='diagonal')) == (
      'hmc/diagonal/fixed')
  assert kernels.describe(hmc.HMCConfig(
      kernel='nuts', mass_matrix='diagonal',
      mass_matrix_adaptation='single')) == 'nuts/diagonal-single'
  assert kernels.describe(hmc.HMCConfig(kernel='nuts')) == 'nuts/identity'
