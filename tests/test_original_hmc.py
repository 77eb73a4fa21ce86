"""The replayed original HMC posterior: what it keeps, and from which data."""

import numpy as np
import pytest

from tfp_robust import networks
from tfp_robust.fit import original as original_hmc

ARCH = networks.Architecture.mlp(2, [8], 2)


def _config(**kw):
  values = dict(batch_size=100, num_burnin_steps=4, num_leapfrog_steps=3,
                num_draws=10, step_size=0.01, seed=0, init='he_normal',
                mass_matrix='identity')
  values.update(kw)
  return original_hmc.OriginalHMCConfig(**values)


def test_kept_states_follow_the_original_arithmetic():
  config = original_hmc.OriginalHMCConfig()
  # The defaults are Pyro's, as the original code ran them.
  assert (config.init, config.mass_matrix) == ('uniform', 'diagonal')
  assert original_hmc.kept_per_batch(60000, config) == 9  # int(100/12) + 1
  assert original_hmc.kept_per_batch(20000, config) == 26


def test_only_the_last_batch_shapes_the_posterior(moons):
  x, y = moons.x_train[:400], moons.y_train[:400]
  config = _config()
  ensemble, info = original_hmc.fit(ARCH, x, y, config)
  assert ensemble.num_samples == 10 and info['kept_states'] == 3  # int(10 / 4) + 1
  assert 1 <= info['distinct_states'] <= 3
  distinct = {p.tobytes() for p in ensemble.params[0].numpy()}
  assert len(distinct) == info['distinct_states']
  # Relabel every image outside the last batch: nothing changes.
  order = np.random.RandomState(0).permutation(400)
  others = order[:300]
  y_other = y.copy()
  y_other[others] = 1 - y_other[others]
  again, _ = original_hmc.fit(ARCH, x, y_other, config)
  np.testing.assert_array_equal(ensemble.params[0].numpy(),
                                again.params[0].numpy())
  # Relabel the last batch: the posterior moves.
  y_last = y.copy()
  y_last[order[300:]] = 1 - y_last[order[300:]]
  moved, _ = original_hmc.fit(ARCH, x, y_last, config)
  assert np.abs(moved.params[0].numpy() - ensemble.params[0].numpy()).max() > 0


def test_refuses_bad_settings(moons):
  with pytest.raises(ValueError, match=r'batch_size must lie in \[1, 50\]'):
    original_hmc.fit(ARCH, moons.x_train[:50], moons.y_train[:50],
                     _config(batch_size=100))
  with pytest.raises(ValueError, match="init must be"):
    original_hmc.fit(ARCH, moons.x_train[:200], moons.y_train[:200],
                     _config(init='zeros'))


def test_pyro_uniform_start_switch(moons):
  """`init='uniform'`: the chain starts from uniform(-2, 2), as Pyro's does."""
  x, y = moons.x_train[:200], moons.y_train[:200]
  # A step too small to move: the kept states are the start.
  frozen = dict(batch_size=200, num_burnin_steps=0, num_leapfrog_steps=1,
                step_size=1e-7)
  uniform, _ = original_hmc.fit(ARCH, x, y, _config(init='uniform', **frozen))
  normal, _ = original_hmc.fit(ARCH, x, y, _config(**frozen))
  w_uniform = uniform.params[0].numpy()
  assert np.abs(w_uniform).max() <= 2.0 + 1e-3
  assert 0.9 < w_uniform.std() < 1.4  # uniform(-2, 2): std 1.15
  assert np.abs(normal.params[0].numpy()).std() < 0.9 * w_uniform.std()


def test_pyro_mass_matrix_switch(moons, monkeypatch):
  """`mass_matrix='diagonal'` adapts a diagonal mass matrix in warm-up."""
  from tfp_robust.fit.mcmc import kernels  # pylint: disable=g-import-not-at-top
  # The kernel results warm-up hands to sampling (None: the plain kernel).
  handed = []
  end_warm_up = kernels.end_warm_up
  monkeypatch.setattr(kernels, 'end_warm_up', lambda results, config: (
      handed.append(results), end_warm_up(results, config))[1])
  x, y = moons.x_train[:200], moons.y_train[:200]
  settings = dict(batch_size=200, num_burnin_steps=20)
  _, plain_info = original_hmc.fit(ARCH, x, y, _config(**settings))
  assert plain_info['mass_matrix'] == 'identity'
  assert not handed  # The identity: the plain kernel, no mass matrix.
  config = _config(mass_matrix='diagonal', **settings)
  _, info = original_hmc.fit(ARCH, x, y, config)
  assert info['mass_matrix'] == 'diagonal'
  [results] = handed
  # The variance of each weight was estimated from the window's warm-up
  # states (90% of 20: 18 of them), one value per weight, far from the
  # identity's 1 (the chain moves little in 20 steps)...
  variances = [v.variance().numpy() for v in results.running_variance]
  assert [float(v.num_samples) for v in results.running_variance] == [18] * 4
  assert [v.shape[1:] for v in variances] == [s for _, s in
                                              ARCH.param_shapes()]
  assert max(v.max() for v in variances) < 0.5
  assert min(v.min() for v in variances) > 0
  # ... and sampling draws its momenta with the inverse of it: the mass
  # matrix is the estimated precision.
  momentum = kernels._find(results, 'accepted_results').accepted_results
  momentum = momentum.momentum_distribution.variance()
  for variance, mass in zip(variances, momentum):
    np.testing.assert_allclose(variance * mass.numpy(), 1.0, rtol=1e-5)
  with pytest.raises(ValueError, match="mass_matrix must be"):
    original_hmc.fit(ARCH, x, y, _config(mass_matrix='dense', **settings))
