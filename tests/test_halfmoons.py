"""Figure 1 grid cells: reused only for the same config."""

import os

import pytest


from tfp_robust.core import config_lib
from tfp_robust.experiments import halfmoons

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
  from tfp_robust.reports import summaries  # pylint: disable=g-import-not-at-top
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


# -- untrusted cells, resume inside a cell, the same CSV (issue 10) ---------

import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import shutil  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfp_robust.core import files  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfp_robust.fit import hmc  # pylint: disable=g-import-not-at-top,wrong-import-position

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


class _Killed(Exception):
  pass


def _kill_after_phases(monkeypatch, phases):
  """The next cell's HMC stops after `phases` phases, as if killed."""
  real_fit = hmc.fit

  def fit_then_die(*args, **kwargs):
    assert real_fit(*args, stop_after_phases=phases, **kwargs) is None
    raise _Killed()

  monkeypatch.setattr(hmc, 'fit', fit_then_die)
  return real_fit


def _forbid_warm_up(monkeypatch):
  def warm_up_again(*args, **kwargs):
    raise AssertionError('the resumed cell ran its HMC warm-up again')
  from tfp_robust.fit.mcmc import driver  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(driver, '_warm_up', warm_up_again)


def test_killed_cell_resumes_inside_hmc_with_identical_results(
    uninterrupted_cell, tmp_path, monkeypatch):
  workdir = str(tmp_path)
  real_fit = _kill_after_phases(monkeypatch, 2)  # Warm-up and one segment.
  with pytest.raises(_Killed):
    halfmoons.halfmoons_cell_resumable(_two_segment_config(), *CELL, workdir)
  checkpoint_dir = tmp_path / 'hmc' / CELL_NAME
  assert (checkpoint_dir / 'segment_00000').is_dir()
  monkeypatch.setattr(hmc, 'fit', real_fit)
  _forbid_warm_up(monkeypatch)
  row, cached = halfmoons.halfmoons_cell_resumable(_two_segment_config(),
                                                   *CELL, workdir)
  assert not cached
  assert _untimed(row) == _untimed(uninterrupted_cell[1])
  assert sorted(os.listdir(checkpoint_dir)) == [
      'cell_config.json', 'run.json', 'segment_00000', 'segment_00001',
      'state', 'timings.json', 'warm_up_trace']


def test_checkpoints_of_another_config_are_discarded(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  real_fit = _kill_after_phases(monkeypatch, 2)
  with pytest.raises(_Killed):
    halfmoons.halfmoons_cell_resumable(_two_segment_config(), *CELL, workdir)
  monkeypatch.setattr(hmc, 'fit', real_fit)
  other = _two_segment_config()
  other.min_accuracy = 0.5  # Not an HMC setting, still another config.
  row, _ = halfmoons.halfmoons_cell_resumable(other, *CELL, workdir)
  with open(tmp_path / 'hmc' / CELL_NAME / 'cell_config.json') as f:
    assert json.load(f) == {'config': other.to_json(sort_keys=True)}
  assert row['config'] == other.to_json(sort_keys=True)


def test_unreadable_cell_checkpoint_restarts_the_cell(uninterrupted_cell,
                                                      tmp_path, monkeypatch,
                                                      caplog):
  workdir = str(tmp_path)
  real_fit = _kill_after_phases(monkeypatch, 2)
  with pytest.raises(_Killed):
    halfmoons.halfmoons_cell_resumable(_two_segment_config(), *CELL, workdir)
  monkeypatch.setattr(hmc, 'fit', real_fit)
  segment = tmp_path / 'hmc' / CELL_NAME / 'segment_00000'
  [data_file] = [p for p in segment.iterdir() if p.name.startswith('ckpt.data')]
  data_file.write_bytes(data_file.read_bytes()[:10])
  with caplog.at_level('WARNING'):
    row, _ = halfmoons.halfmoons_cell_resumable(_two_segment_config(), *CELL,
                                                workdir)
  assert 'Starting the cell afresh' in caplog.text and str(segment) in (
      caplog.text)
  assert _untimed(row) == _untimed(uninterrupted_cell[1])


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


def test_resumed_grid_writes_the_same_table_as_an_uninterrupted_one(
    uninterrupted_cell, tmp_path):
  config = _two_segment_config()
  cells = [CELL, (3, 40, 3)]
  fresh = [halfmoons.halfmoons_cell_resumable(config, *cell, str(tmp_path))[0]
           for cell in cells]
  # The first cell read back (as after a kill), the second computed.
  os.remove(tmp_path / 'cells' / 'hidden3_train40_warmup3.json')
  mixed = [halfmoons.halfmoons_cell_resumable(config, *cell, str(tmp_path))
           for cell in cells]
  assert [cached for _, cached in mixed] == [True, False]
  first = halfmoons.grid_table(fresh)
  second = halfmoons.grid_table([r for r, _ in mixed])
  assert list(first.columns) == list(second.columns)
  assert list(first.columns[:3]) == ['hidden', 'num_train', 'warmup']
  timings = [c for c in first.columns if 'seconds' in c]
  assert timings  # Wall times differ between runs; all else is identical.
  assert first.drop(columns=timings).to_csv(index=False) == second.drop(
      columns=timings).to_csv(index=False)
  # The cached row itself equals the fresh one (JSON round trip included).
  assert mixed[0][0] == fresh[0]
  # The summary the report shows: the hyperparameters, the filter and the
  # metrics a reader compares cells by, out of the table's many diagnostics.
  summary = halfmoons.grid_summary(first)
  assert list(summary.columns) == (list(halfmoons.CELL_HPARAMS) + ['kept'] +
                                   list(halfmoons.CELL_METRICS))
  assert len(first.columns) > 2 * len(summary.columns)
  assert summary['fn_rhat_max'].tolist() == first['fn_rhat_max'].tolist()


def _grid_command(workdir):
  import sys  # pylint: disable=g-import-not-at-top
  return [sys.executable, os.path.join(REPO, 'binaries', 'halfmoons_grid.py'),
          f'--workdir={workdir}', '--config.hidden=(4,)',
          '--config.num_train=(60,)', '--config.warmup=(20,)',
          '--config.num_test=100', '--config.num_gradient_points=10',
          '--config.hmc.num_results=60', '--config.hmc.segment_size=10',
          '--config.hmc.warm_up_checkpoint_every=5']


@pytest.mark.slow
def test_grid_binary_killed_mid_cell_resumes_to_the_same_csv(tmp_path):
  import signal  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top
  whole, parts = tmp_path / 'whole', tmp_path / 'parts'
  subprocess.run(_grid_command(whole), check=True, capture_output=True,
                 cwd=REPO, timeout=600)
  process = subprocess.Popen(_grid_command(parts), cwd=REPO,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  segment = parts / 'hmc' / 'hidden4_train60_warmup20' / 'segment_00001'
  deadline = time.time() + 300
  while not segment.exists() and process.poll() is None:
    assert time.time() < deadline
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)  # Mid-cell, between two segments.
  process.wait()
  assert not (parts / 'cells').exists()
  resumed = subprocess.run(_grid_command(parts), check=True,
                           capture_output=True, text=True, cwd=REPO,
                           timeout=600)
  assert 'resuming from its HMC checkpoints' in resumed.stderr
  expected = pd.read_csv(whole / 'figure1_cells.csv')
  got = pd.read_csv(parts / 'figure1_cells.csv')
  assert list(got.columns) == list(expected.columns)
  timings = [c for c in expected.columns if 'seconds' in c]
  pd.testing.assert_frame_equal(got.drop(columns=timings),
                                expected.drop(columns=timings))
