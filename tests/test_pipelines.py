"""Experiment steps: config handling, tables, resumable grid cells."""

import os

import ml_collections
import pytest

from tfp_robust import pipelines

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_grid_config():
  config = pipelines.load_config_file(
      os.path.join(REPO, 'configs', 'halfmoons_grid.py'), 'cpu')
  config.num_test = 100
  config.num_gradient_points = 10
  config.hmc.num_results = 4
  config.hmc.segment_size = 4
  config.hmc.jit_compile = False
  return config


def test_hmc_config_refuses_unknown_settings():
  section = ml_collections.ConfigDict(dict(num_results=5, num_burnin=3,
                                           hidden=(4,)))
  with pytest.raises(ValueError, match='num_burnin'):
    pipelines.hmc_config(section, seed=0)
  section = ml_collections.ConfigDict(dict(num_results=5, hidden=(4,)))
  assert pipelines.hmc_config(section, seed=3).seed == 3


def test_grid_cell_is_reused_only_for_the_same_config(tmp_path):
  config = _tiny_grid_config()
  first, cached = pipelines.halfmoons_cell_resumable(config, 4, 60, 3,
                                                     str(tmp_path))
  assert not cached and 0.0 <= first['test_accuracy'] <= 1.0
  again, cached = pipelines.halfmoons_cell_resumable(config, 4, 60, 3,
                                                     str(tmp_path))
  assert cached and again['grad_mean_abs'] == first['grad_mean_abs']
  config.seed = 1
  changed, cached = pipelines.halfmoons_cell_resumable(config, 4, 60, 3,
                                                       str(tmp_path))
  assert not cached and changed['grad_mean_abs'] != first['grad_mean_abs']


def test_summary_table_has_one_row_per_method():
  rows = [dict(method=m, num_samples=s, clean_accuracy=0.9, attack=a, loss=l,
               eps=0.1, adversarial_accuracy=acc)
          for m, s in (('sgd', 1), ('hmc', 10))
          for a, l, acc in (('random', 'none', 0.8), ('fgsm', 'expected', 0.2))]
  table = pipelines.summary_table(rows)
  assert list(table['method']) == ['sgd', 'hmc']
  assert list(table.columns) == ['method', 'samples', 'clean_acc',
                                 'random_acc', 'fgsm_expected_acc']


def test_ensure_trained_trains_only_what_is_missing(tmp_path):
  config = pipelines.load_config_file(
      os.path.join(REPO, 'configs', 'table1.py'), 'cpu')
  config.num_train, config.num_test = 200, 50
  config.vi.hidden, config.vi.epochs, config.vi.num_samples = (8,), 1, 2
  pipelines.ensure_trained(config, ['vi'], str(tmp_path))
  saved = os.path.join(pipelines.ensemble_dir(str(tmp_path), 'mnist', 'vi'),
                       'ensemble.json')
  first = os.stat(saved).st_mtime_ns
  ensemble, extra = pipelines.load_trained(config, 'vi', str(tmp_path))
  assert ensemble.num_samples == 2 and extra['num_train'] == 200
  pipelines.ensure_trained(config, ['vi'], str(tmp_path))
  assert os.stat(saved).st_mtime_ns == first
  with pytest.raises(FileNotFoundError, match='binaries/train.py'):
    pipelines.load_trained(config, 'hmc', str(tmp_path))
