"""Fitting from configs: settings checked, only missing methods trained."""

import os

import ml_collections
import pytest

from tfp_robust.core import config_lib
from tfp_robust.fit import fitting

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_hmc_config_refuses_unknown_settings():
  section = ml_collections.ConfigDict(dict(num_results=5, num_burnin=3,
                                           hidden=(4,)))
  with pytest.raises(ValueError, match='num_burnin'):
    fitting.hmc_config(section, seed=0)
  section = ml_collections.ConfigDict(dict(num_results=5, hidden=(4,)))
  assert fitting.hmc_config(section, seed=3).seed == 3


def test_ensure_trained_trains_only_what_is_missing(tmp_path):
  config = config_lib.load_config_file(
      os.path.join(REPO, 'configs', 'table1.py'), 'cpu')
  config.num_train, config.num_test = 200, 50
  config.vi.hidden, config.vi.epochs, config.vi.num_samples = (8,), 1, 2
  fitting.ensure_trained(config, ['vi'], str(tmp_path))
  saved = os.path.join(fitting.ensemble_dir(str(tmp_path), 'mnist', 'vi'),
                       'ensemble.json')
  first = os.stat(saved).st_mtime_ns
  ensemble, extra = fitting.load_trained(config, 'vi', str(tmp_path))
  assert ensemble.num_samples == 2 and extra['num_train'] == 200
  fitting.ensure_trained(config, ['vi'], str(tmp_path))
  assert os.stat(saved).st_mtime_ns == first
  with pytest.raises(FileNotFoundError, match='binaries/train.py'):
    fitting.load_trained(config, 'hmc', str(tmp_path))


def test_vi_resampled_is_a_view_of_the_one_vi_training(tmp_path):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_robust.evaluation import rows as evaluation  # pylint: disable=g-import-not-at-top
  from tfp_robust.core import files  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config_file(
      os.path.join(REPO, 'configs', 'table1.py'), 'cpu')
  config.num_train, config.num_test = 200, 20
  config.vi.hidden, config.vi.epochs, config.vi.num_samples = (8,), 1, 4
  workdir = str(tmp_path)
  # Asking for the view trains its method once, and nothing else.
  fitting.ensure_trained(config, ['vi_resampled'], workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'mnist'))) == ['vi']
  fixed, _ = fitting.load_trained(config, 'vi', workdir)
  view, extra = fitting.load_trained(config, 'vi_resampled', workdir)
  assert view.resamples and not fixed.resamples
  assert view.method == 'vi_resampled' and view.num_samples == 4
  assert 'test_accuracy' not in extra and extra['num_train'] == 200
  x = tf.random.stateless_uniform((5, 784), (1, 2))
  # It resamples: two evaluations differ; the fixed draws do not.
  assert not np.array_equal(view.log_probs(x).numpy(),
                            view.log_probs(x).numpy())
  np.testing.assert_array_equal(fixed.log_probs(x), fixed.log_probs(x))
  # The restored model is the trained one: drawing from it with the
  # training's seed gives the saved fixed draws bit for bit.
  from tfp_robust.fit import vi  # pylint: disable=g-import-not-at-top
  redrawn = vi.posterior_ensemble(view.model, fixed.architecture, 4,
                                  seed=int(config.seed))
  for saved, again in zip(fixed.params, redrawn.params):
    np.testing.assert_array_equal(saved, again)
  # Attack rows say which evaluation made them.
  dataset = fitting.load_dataset_for(config, 'vi_resampled')
  attack = config_lib.attack_section(num_points=5, num_samples=4,
                                     pgd_steps=2, losses=('predictive',))
  rows = evaluation.attack_rows(view, dataset.x_test[:5], dataset.y_test[:5],
                                attack)
  assert rows and all(row['resampled'] for row in rows)
  directory = os.path.join(workdir, 'mnist', 'vi', 'variational')
  # Parameters of another architecture are refused before any model is built.
  from tfp_robust import networks  # pylint: disable=g-import-not-at-top
  with pytest.raises(files.InvalidFile, match='describes'):
    vi.load_variational(directory, networks.Architecture.mlp(784, [9], 10))
  # A tampered checkpoint file is refused by name.
  name = next(n for n in os.listdir(directory) if n.startswith('ckpt.data'))
  with open(os.path.join(directory, name), 'r+b') as f:
    f.seek(0)
    first = f.read(1)
    f.seek(0)
    f.write(bytes([first[0] ^ 1]))
  with pytest.raises(files.InvalidFile, match=name):
    fitting.load_trained(config, 'vi_resampled', workdir)


def test_replay_switches_of_the_config_reach_the_original_posterior(moons):
  """`hmc_original.init` and `.mass_matrix` from a config change the fit."""
  from tfp_robust import networks  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config_file(
      os.path.join(REPO, 'configs', 'table1.py'), 'cpu')
  config.hmc_original.update(batch_size=200, num_burnin_steps=20,
                             num_leapfrog_steps=2, num_draws=4)
  architecture = networks.Architecture.mlp(2, [4], 2)
  x, y = moons.x_train[:200], moons.y_train[:200]
  _, plain = fitting.fit('hmc_original', architecture, x, y, config)
  assert (plain['init'], plain['mass_matrix']) == ('uniform', 'diagonal')
  config.hmc_original.update(init='he_normal', mass_matrix='identity')
  _, fair = fitting.fit('hmc_original', architecture, x, y, config)
  assert (fair['init'], fair['mass_matrix']) == ('he_normal', 'identity')
