"""Figure 1 grid cells: reused only for the same config."""

import os

import pytest


from tfp_robust import config_lib
from tfp_robust import halfmoons

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_grid_config():
  config = config_lib.load_config_file(
      os.path.join(REPO, 'configs', 'halfmoons_grid.py'), 'cpu')
  config.num_test = 100
  config.num_gradient_points = 10
  config.hmc.num_results = 4
  config.hmc.segment_size = 4
  config.hmc.jit_compile = False
  return config


def test_grid_cell_is_reused_only_for_the_same_config(tmp_path):
  config = _tiny_grid_config()
  first, cached = halfmoons.halfmoons_cell_resumable(config, 4, 60, 3,
                                                     str(tmp_path))
  assert not cached and 0.0 <= first['test_accuracy'] <= 1.0
  again, cached = halfmoons.halfmoons_cell_resumable(config, 4, 60, 3,
                                                     str(tmp_path))
  assert cached and again['grad_mean_abs'] == first['grad_mean_abs']
  config.seed = 1
  changed, cached = halfmoons.halfmoons_cell_resumable(config, 4, 60, 3,
                                                       str(tmp_path))
  assert not cached and changed['grad_mean_abs'] != first['grad_mean_abs']


def test_cells_write_hmc_traces_and_hparams_once(tmp_path):
  from tfp_robust import summaries  # pylint: disable=g-import-not-at-top
  config = _tiny_grid_config()
  for _ in range(2):  # The second run reads the cell back.
    row, _ = halfmoons.halfmoons_cell_resumable(config, 4, 60, 3,
                                                str(tmp_path))
    halfmoons.write_cell_hparams(str(tmp_path), row)
  name = 'hidden4_train60_warmup3'
  trace = summaries.read_scalars(str(tmp_path / 'tensorboard' / 'cells' /
                                     name))
  assert [s for s, _ in trace['hmc/log_joint/chain_0']] == list(range(7))
  cell = tmp_path / 'tensorboard' / 'hparams' / name
  assert summaries.read_tags(str(cell))['_hparams_/session_start_info'] == (
      'hparams')
  [(step, value)] = summaries.read_scalars(str(cell))['cell/test_accuracy']
  assert step == 0 and value == pytest.approx(row['test_accuracy'])
