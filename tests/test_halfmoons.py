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


# -- untrusted cells (issue 10, item 4) --------------------------------------

import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import shutil  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfp_robust import files  # pylint: disable=g-import-not-at-top,wrong-import-position

CELL = (4, 60, 3)  # hidden, num_train, warm-up
CELL_NAME = 'hidden4_train60_warmup3'


def _two_segment_config():
  config = _tiny_grid_config()
  config.hmc.segment_size = 2  # Two kept segments: a kill can fall between.
  return config


def _untimed(row):
  return {k: v for k, v in row.items() if 'seconds' not in k}


@pytest.fixture(scope='module')
def uninterrupted_cell(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('uninterrupted_grid'))
  row, cached = halfmoons.halfmoons_cell_resumable(_two_segment_config(),
                                                   *CELL, workdir)
  assert not cached
  return workdir, row


@pytest.mark.parametrize('damage', ['truncate', 'edit_value', 'not_an_object',
                                    'other_cell', 'drop_field'])
def test_bad_cell_file_is_reported_and_recomputed(uninterrupted_cell, tmp_path,
                                                  caplog, damage):
  workdir = str(tmp_path / 'grid')
  shutil.copytree(uninterrupted_cell[0], workdir)
  path = os.path.join(workdir, 'cells', CELL_NAME + '.json')
  with open(path) as f:
    text = f.read()
  row = json.loads(text)
  if damage == 'truncate':
    text = text[:len(text) // 2]
  elif damage == 'edit_value':
    row['test_accuracy'] = 1.0
    text = json.dumps(row)
  elif damage == 'not_an_object':
    text = '[1, 2, 3]'
  elif damage == 'other_cell':
    row['hidden'] = 8
    row.pop('digest')
    text = json.dumps(row)
  else:
    row.pop('grad_mean_abs')
    row.pop('digest')
    text = json.dumps(row)
  with open(path, 'w') as f:
    f.write(text)
  with caplog.at_level('WARNING'):
    again, cached = halfmoons.halfmoons_cell_resumable(
        _two_segment_config(), *CELL, workdir)
  assert not cached
  assert repr(path) in caplog.text and 'Recomputing cell' in caplog.text
  assert _untimed(again) == _untimed(uninterrupted_cell[1])
  # The recomputed cell was written back whole, and is now read back.
  assert halfmoons.halfmoons_cell_resumable(_two_segment_config(), *CELL,
                                            workdir)[1]


def test_cell_file_stores_a_digest_of_its_contents(uninterrupted_cell):
  with open(os.path.join(uninterrupted_cell[0], 'cells',
                         CELL_NAME + '.json')) as f:
    row = json.load(f)
  digest = row.pop('digest')
  assert digest == files.sha256_json(row)
  assert row['config'] == _two_segment_config().to_json(sort_keys=True)
