"""Fitting from configs: settings checked, only missing methods trained."""

import os

import ml_collections
import pytest

from tfp_robust import config_lib
from tfp_robust import fitting

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
