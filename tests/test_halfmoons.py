"""Figure 1 grid cells: reused only for the same config."""

import os


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
