"""The sampler comparison: rows, resumption, and settings checked up front."""

import os

import numpy as np
import pandas as pd
import pytest

from tfp_robust.core import config_lib
from tfp_robust.fit import fitting
from tfp_robust.reports import plots
from tfp_robust.experiments import samplers as sampler_comparison
from tfp_robust.core import validate

CONFIG_PATH = os.path.join(os.path.dirname(__file__), '..', 'configs',
                           'samplers.py')


def tiny_config():
  config = config_lib.load_config_file(CONFIG_PATH, 'cpu')
  target = config.targets.halfmoons
  target.num_train, target.num_test = 100, 100
  target.fit.hmc.update(dict(hidden=(8,), num_results=10, num_burnin_steps=20,
                             segment_size=5, jit_compile=False))
  # One mass-matrix window: the windowed one needs 100 warm-up steps.
  target.variants = ('fixed_2', 'diagonal_jittered_single')
  # A variant may set its own length (to match another's compute).
  config.variants.fixed_2 = dict(num_chains=2, num_results=6)
  config.target_order = ('halfmoons',)
  config.diagnostic_points = 20
  config.attack_points = 20
  config.pgd_steps = 3
  return config


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('samplers'))
  config = tiny_config()
  return config, workdir, sampler_comparison.run(config, workdir)


def test_rows_measure_each_variant(finished):
  _, _, frame = finished
  assert list(frame['variant']) == ['fixed_2', 'diagonal_jittered_single']
  assert list(frame['sampler']) == ['hmc/identity/fixed',
                                    'hmc/diagonal-single/jittered']
  assert list(frame['chains']) == [2, 4]
  assert list(frame['kept']) == [6, 10]
  fixed, jittered = frame.iloc[0], frame.iloc[1]
  assert fixed['leapfrogs_per_iteration'] == 10.0
  # u * 10 steps, u ~ U[0, 1]: about 5.5 on average, never the fixed 10.
  assert 2.0 < jittered['leapfrogs_per_iteration'] < 9.0
  # Each row reports the split R-hat too (each chain's halves compared).
  assert np.all(frame['fn_split_rhat_max'] > 0.99)
  for column in ('fn_rhat_max', 'fn_ess_min', 'fn_ess_min_per_hour',
                 'test_accuracy', 'pgd_predictive_acc',
                 'mean_abs_expected_grad', 'sampler_seconds'):
    assert np.all(np.isfinite(frame[column])), column
  assert np.all(frame['pgd_predictive_acc'] <= frame['clean_acc_attack_points'])
  # The sampler's measured time (warm-up and kept segments), not an
  # estimate, within the variant's whole wall time (which adds the
  # evaluation).
  assert frame['sampler_seconds_measured'].all()
  assert np.all(frame['sampler_seconds'] < frame['wall_seconds'])
  assert np.all(frame['fn_ess_min_per_hour'] > frame['fn_ess_min'])


def test_mixed_needs_both_targets_at_their_edges():
  frame = pd.DataFrame(dict(fn_rhat_max=[1.05, 1.1, 1.05, 1.2, np.nan],
                            fn_ess_min=[100.0, 500.0, 99.9, 500.0, 500.0]))
  # R-hat strictly below its bound, ESS at least its target; NaN is not
  # mixed.
  assert list(sampler_comparison.mixed(frame, 1.1, 100)) == [
      True, False, False, False, False]


def test_strong_protocol_columns_on_a_variant(finished, tmp_path):
  config, _, _ = finished
  config = config.copy_and_resolve_references()
  config.targets.halfmoons.variants = ('fixed_2',)
  config.strong = True
  config.strong_attack.update(dict(apgd_steps=3, apgd_restarts=1,
                                   square_queries=10, num_samples=6))
  sampler_comparison.check(config)
  row = sampler_comparison.run_variant(config, 'halfmoons', 'fixed_2',
                                       str(tmp_path))
  attacked = {k: v for k, v in row.items() if k.startswith('strong_') and
              k not in ('strong_worst_case_acc', 'strong_certified_acc')}
  assert {'strong_apgd_ce+dlr_acc', 'strong_square_acc'} <= set(attacked), row
  # The per-image worst case beats every attack; no bound beats an attack.
  assert row['strong_worst_case_acc'] <= min(attacked.values())
  assert row['strong_certified_acc'] <= row['strong_worst_case_acc']
  # A row measured without the strong protocol is not read back as one.
  config.strong = False
  with pytest.raises(Exception, match='other settings'):
    sampler_comparison.run_variant(config, 'halfmoons', 'fixed_2',
                                   str(tmp_path))


def test_mixing_figure_pools_every_targets_rows(finished):
  _, _, frame = finished
  other = frame.assign(target='other', fn_rhat_max=frame['fn_rhat_max'] * 2)
  pooled = pd.concat([frame, other], ignore_index=True)
  figure = plots.robustness_against_mixing(pooled)
  (grad_rhat, grad_ess), (pgd_rhat, pgd_ess) = np.reshape(figure.axes, (2, 2))
  for axis, x, y in ((grad_rhat, 'fn_rhat_max', 'mean_abs_expected_grad'),
                     (grad_ess, 'fn_ess_min', 'mean_abs_expected_grad'),
                     (pgd_rhat, 'fn_rhat_max', 'pgd_predictive_acc'),
                     (pgd_ess, 'fn_ess_min', 'pgd_predictive_acc')):
    # One scatter per target, its points that target's rows.
    assert len(axis.collections) == 2
    for collection, target in zip(axis.collections, ('halfmoons', 'other')):
      rows = pooled[pooled['target'] == target]
      np.testing.assert_allclose(collection.get_offsets(),
                                 rows[[x, y]].to_numpy())
    assert axis.get_xscale() == 'log'
  plots.plt.close(figure)


def test_finished_variants_are_read_back_not_refitted(finished, monkeypatch):
  config, workdir, frame = finished

  def no_fit(*args, **kwargs):
    raise AssertionError('a finished variant was fitted again')

  monkeypatch.setattr(fitting, 'fit', no_fit)
  again = sampler_comparison.run(config, workdir)
  assert again.equals(frame)


def test_variant_settings_are_checked_before_anything_runs():
  config = tiny_config()
  config.variants.diagonal_jittered_single = dict(mass_matrix='dense')
  with pytest.raises(
      validate.InvalidArgument,
      match="variant 'diagonal_jittered_single'.*mass_matrix='dense'"):
    sampler_comparison.check(config)
  # The windowed adaptation on 20 warm-up steps never ends: refused first.
  config = tiny_config()
  config.targets.halfmoons.variants = ('diagonal_jittered',)
  with pytest.raises(validate.InvalidArgument,
                     match='at least 100 warm-up steps'):
    sampler_comparison.check(config)
  config = tiny_config()
  config.targets.halfmoons.variants = ('fixed_2', 'hamiltonian')
  with pytest.raises(validate.InvalidArgument, match="'hamiltonian'"):
    sampler_comparison.check(config)
  with pytest.raises(validate.InvalidArgument, match="--targets='cifar'"):
    sampler_comparison.check(tiny_config(), ['cifar'])
  config = tiny_config()
  config.variants.fixed_2 = dict(num_chains=2, learning_rate=0.1)
  with pytest.raises(ValueError, match='not sampler settings'):
    sampler_comparison.check(config)
  with pytest.raises(validate.InvalidArgument, match='eps'):
    bad = tiny_config()
    bad.targets.halfmoons.eps = 5.0
    sampler_comparison.check(bad)
  with pytest.raises(validate.InvalidArgument, match="init='sgdd'"):
    bad = tiny_config()
    bad.variants.fixed_2 = dict(num_chains=2, init='sgdd')
    sampler_comparison.check(bad)


def test_a_row_measured_with_other_settings_is_refused(finished):
  from tfp_robust.core import files  # pylint: disable=g-import-not-at-top
  config, workdir, _ = finished
  config.pgd_steps = 4
  with pytest.raises(files.InvalidFile, match='other settings'):
    sampler_comparison.run(config, workdir)
  config.pgd_steps = 3


@pytest.mark.parametrize('variant', ['cpu', 'paper'])
def test_table1_mixing_matches_the_paper_samplers_compute(variant):
  # The best sampler's Table 1 run spends the paper sampler's chain-leapfrog
  # steps (within one iteration of 4 chains) and changes nothing else.
  configs = os.path.dirname(CONFIG_PATH)
  paper = config_lib.load_config_file(os.path.join(configs, 'table1.py'),
                                      variant)
  mixing = config_lib.load_config_file(
      os.path.join(configs, 'table1_mixing.py'), variant)
  budget = (paper.hmc.num_chains * paper.hmc.num_leapfrog_steps *
            (paper.hmc.num_burnin_steps + paper.hmc.num_results))
  # The jittered trajectory takes ceil(u * L) steps, u uniform on [0, 1]:
  # (L + 1) / 2 on average, from its definition, not from a measurement.
  mean = (paper.hmc.num_leapfrog_steps + 1) / 2
  spent = (mixing.hmc.num_chains * mean *
           (mixing.hmc.num_burnin_steps + mixing.hmc.num_results))
  assert abs(spent - budget) <= mixing.hmc.num_chains * mean
  assert mixing.hmc.mass_matrix == 'diagonal'
  assert mixing.hmc.trajectory == 'jittered'
  changed = {k for k in mixing.hmc.keys()
             if k not in paper.hmc or mixing.hmc[k] != paper.hmc[k]}
  assert changed == {'num_results', 'num_chains', 'mass_matrix', 'trajectory'}
  for section in ('attack', 'vi', 'sgd'):
    assert mixing[section].to_dict() == paper[section].to_dict()
  assert mixing.dataset == paper.dataset and mixing.methods == ('hmc',)


def test_width_targets_differ_from_the_long_run_in_width_only():
  config = config_lib.load_config_file(CONFIG_PATH, 'cpu')
  names = [f'halfmoons_width_{w}' for w in (32, 64, 128, 256)]
  assert sampler_comparison.check(config, names) == names
  long_run = config.targets.halfmoons_long.to_dict()
  for width, name in zip((32, 64, 128, 256), names):
    target = config.targets[name].to_dict()
    assert target['variants'] == ('nuts',)
    assert target['fit']['hmc'].pop('hidden') == (width, width)
    expected = dict(long_run, variants=('nuts',))
    expected['fit'] = dict(long_run['fit'])
    expected['fit']['hmc'] = {k: v for k, v in long_run['fit']['hmc'].items()
                              if k != 'hidden'}
    assert target == expected
