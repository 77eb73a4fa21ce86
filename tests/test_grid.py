"""Figure 4 grids: the sharing plan, shared cells equal lone cells, resume."""

import os

import numpy as np
import pandas as pd
import pytest

from tfp_robust.core import config_checks
from tfp_robust.core import config_lib
from tfp_robust.experiments import grid
from tfp_robust.core import validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMED = ('attack_seconds', 'unit_train_seconds')


def _config(**axes):
  config = config_lib.load_config_file(
      os.path.join(REPO, 'configs', 'figure4.py'), 'cpu')
  config.datasets = ('mnist',)
  config.num_train = 200
  config.num_test = 20
  config.training.hmc_burn_in = 2
  config.training.vi_num_samples = 4
  config.hmc = dict(num_samples=(4, 8), step_size=(0.001,),
                    num_leapfrog_steps=(3,), hidden=(4,),
                    activation=('relu',), depth=(1,))
  config.sgd = dict(batch_size=(50,), hidden=(8,), activation=('tanh',),
                    depth=(1,), epochs=(1, 2), learning_rate=(0.001,))
  config.vi = dict(learning_rate=(0.01,), hidden=(8,), activation=('relu',),
                   depth=(2,), epochs=(1, 2))
  for method, values in axes.items():
    config[method].update(values)
  config.attack.num_points = 20
  config.attack.num_samples = 4
  config.attack.pgd_steps = 3
  config_checks.check(config)
  return config


def _run(config, workdir, units=None):
  cells = grid.cells.grid_cells(config, config.datasets, config.methods)
  plan = grid.cells.plan(cells)
  grid.executors.in_process(plan if units is None else units(plan), config,
                            str(workdir))
  return grid.merge.table(cells, config, str(workdir))


def _untimed(frame):
  return frame.drop(columns=[c for c in TIMED + ('unit',) if c in frame])


def test_paper_grids_count_and_sharing():
  config = config_lib.load_config_file(
      os.path.join(REPO, 'configs', 'figure4.py'), 'paper')
  cells = grid.cells.grid_cells(config, ['mnist'], ['hmc', 'sgd', 'vi'])
  counts = grid.cells.counts(cells)
  # The paper's "about 970 HMC, 1080 SGD and 960 further networks".
  assert counts['hmc'] == {'cells': 972, 'trainings_shared': 324}
  assert counts['sgd'] == {'cells': 1080, 'trainings_shared': 180}
  assert counts['vi'] == {'cells': 960, 'trainings_shared': 192}
  unit = grid.cells.plan([c for c in cells if c.method == 'hmc'])[0]
  assert unit.prefix_values == [250, 500, 750]


@pytest.fixture(scope='module')
def whole(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('grid_whole')
  return workdir, _run(_config(), workdir)


def test_grid_writes_every_cell_with_real_numbers(whole):
  _, frame = whole
  assert len(frame) == 6 and set(frame['method']) == {'hmc', 'sgd', 'vi'}
  assert list(frame.columns[:3]) == ['method', 'dataset', 'num_samples']
  assert frame['clean_accuracy'].between(0, 1).all()
  # FGSM hurts: adversarial accuracy is at most the clean accuracy.
  assert (frame['paper_fgsm_expected_acc'] <=
          frame['clean_accuracy'] + 1e-9).all()
  hmc = frame[frame['method'] == 'hmc']
  assert sorted(hmc['num_evaluated_samples']) == [4, 4]
  assert hmc['hmc_acceptance_rate'].notna().all()


@pytest.mark.parametrize('method,alone', [
    ('sgd', dict(epochs=(1,))), ('vi', dict(epochs=(1,))),
    ('hmc', dict(num_samples=(4,)))])
def test_a_shared_cell_equals_the_same_cell_run_alone(whole, tmp_path, method,
                                                      alone):
  _, frame = whole
  config = _config(**{method: alone})
  config.methods = (method,)
  lone = _untimed(_run(config, tmp_path))
  shared = _untimed(frame[frame['method'] == method]).head(1)
  shared = shared.dropna(axis=1, how='all').reset_index(drop=True)
  lone = lone[shared.columns].reset_index(drop=True)
  # Integer axes read back as floats in the mixed table (NaN elsewhere).
  pd.testing.assert_frame_equal(shared, lone, check_exact=True,
                                check_dtype=False)


def test_killed_grid_resumes_to_the_same_table(whole, tmp_path):
  workdir, frame = whole
  # A first run that stops after one unit, as a killed runner would have.
  _run(_config(), tmp_path, units=lambda plan: plan[:1])
  assert len(os.listdir(tmp_path / 'cells')) in (1, 2)
  resumed = _run(_config(), tmp_path)
  pd.testing.assert_frame_equal(_untimed(resumed), _untimed(frame),
                                check_exact=True)
  grid.merge.write(resumed, str(tmp_path), hparams=False)
  grid.merge.write(frame, str(workdir), hparams=False)
  header = lambda d: open(os.path.join(d, 'grid.csv')).readline()
  assert header(tmp_path) == header(workdir)


def test_shards_cover_the_grid_once(whole, tmp_path):
  _, frame = whole
  for index in range(3):
    _run(_config(), tmp_path,
         units=lambda plan, i=index: grid.executors.shard(plan, i, 3))
  merged = _run(_config(), tmp_path, units=lambda plan: [])
  pd.testing.assert_frame_equal(_untimed(merged), _untimed(frame),
                                check_exact=True)
  with pytest.raises(ValueError, match='--shard_index=3 is invalid'):
    grid.executors.shard([], 3, 3)


def test_edited_cell_runs_again(whole, tmp_path):
  _run(_config(), tmp_path, units=lambda plan: plan[:1])
  [name] = [n for n in sorted(os.listdir(tmp_path / 'cells'))][:1]
  path = tmp_path / 'cells' / name
  path.write_text(path.read_text().replace('"clean_accuracy": 0',
                                           '"clean_accuracy": 9'))
  path.write_text(path.read_text()[:-20])  # Truncated as well.
  frame = _run(_config(), tmp_path, units=lambda plan: plan[:1])
  assert np.all(frame['clean_accuracy'] <= 1.0)


def test_ray_executor_runs_units_and_resumes(whole, tmp_path):
  # A killed run's work directory: every cell written but the SGD unit's
  # (the cheapest training). Ray must skip the units done (resume) and run
  # the rest as a Ray task, in a Ray worker process, to the same table.
  ray = pytest.importorskip('ray')
  import shutil  # pylint: disable=g-import-not-at-top
  workdir, frame = whole
  config = _config()
  cells = grid.cells.grid_cells(config, config.datasets, config.methods)
  plan = grid.cells.plan(cells)
  [left] = [unit for unit in plan if unit.method == 'sgd']
  shutil.copytree(workdir / 'cells', tmp_path / 'cells')
  for cell in left.cells:
    os.remove(grid.runner.cell_path(str(tmp_path), cell))
  assert [grid.runner.is_done(str(tmp_path), config, u) for u in plan] == [
      u is not left for u in plan]
  written = {name: os.stat(tmp_path / 'cells' / name).st_mtime_ns
             for name in os.listdir(tmp_path / 'cells')}
  try:
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    grid.executors.ray(plan, config, str(tmp_path))
  finally:
    ray.shutdown()
  assert all(grid.runner.is_done(str(tmp_path), config, u) for u in plan)
  # Only the SGD unit ran: the cells done before were not written again.
  assert {name: os.stat(tmp_path / 'cells' / name).st_mtime_ns
          for name in written} == written
  assert len(os.listdir(tmp_path / 'cells')) == len(cells)
  merged = grid.merge.table(cells, config, str(tmp_path))
  pd.testing.assert_frame_equal(_untimed(merged), _untimed(frame),
                                check_exact=True)


def test_shards_share_a_work_directory_but_not_a_shard(tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from tfp_robust.core import files  # pylint: disable=g-import-not-at-top
  from tfp_robust.core import locks  # pylint: disable=g-import-not-at-top
  locks.start_run(str(tmp_path), lock_file='.lock-shard-0', clean=False)
  probe = ('import sys; from tfp_robust.core import files, locks; '
           'locks.start_run(sys.argv[1], lock_file=sys.argv[2], clean=False);'
           ' print("locked")')
  other = subprocess.run([sys.executable, '-c', probe, str(tmp_path),
                          '.lock-shard-1'], capture_output=True, text=True)
  assert other.returncode == 0 and 'locked' in other.stdout, other.stderr
  same = subprocess.run([sys.executable, '-c', probe, str(tmp_path),
                         '.lock-shard-0'], capture_output=True, text=True)
  assert same.returncode != 0 and 'another run is using it' in same.stderr


def test_figure4_plots_the_grid(whole):
  # Every panel, the width boxplots included (matplotlib 3.9 renamed their
  # `labels` to `tick_labels`; the CPU grid's merge failed on it).
  from tfp_robust.reports import plots
  _, frame = whole
  figure = plots.figure4(frame, 'half_moons', 'paper')
  assert figure is not None
  assert any(axis.get_xticklabels() and axis.get_xticklabels()[0].get_text()
             for axis in figure.axes)


def test_figure4_under_the_strong_protocol_plots_its_worst_case(tmp_path):
  # The strong figure's second row is the per-image worst case that a real
  # strong cell writes (it read a column no cell has, and came out with the
  # paper's row alone, in session 12's run).
  from tfp_robust.reports import plots
  config = _config()
  config.methods = ('sgd',)
  config.sgd.epochs = (1,)
  config.protocols = ('paper', 'strong')
  config.attack.apgd_steps, config.attack.apgd_restarts = 5, 1
  config.attack.square_queries = 20
  frame = _run(config, tmp_path)
  figure = plots.figure4(frame, 'mnist', 'strong')
  labels = [axis.get_ylabel() for axis in figure.axes]
  assert len(figure.axes) == 6
  assert labels[3] == 'adversarial accuracy (worst case)'
  worst = frame['strong_worst_case_all_acc']
  assert worst.between(0, 1).all()
  assert (worst <= frame['strong_pgd_expected_acc']).all()
  # A table with no cell under a protocol has no figure for it; one whose
  # protocol columns lack the plotted ones is refused by name.
  assert plots.figure4(frame.drop(columns=[
      c for c in frame.columns if c.startswith('strong_')]), 'mnist',
                       'strong') is None
  with pytest.raises(ValueError, match='strong_worst_case_all_acc'):
    plots.figure4(frame.drop(columns=['strong_worst_case_all_acc']), 'mnist',
                  'strong')


def test_in_process_asks_for_a_fresh_process_near_the_map_limit(whole,
                                                                  tmp_path):
  use = grid.executors.memory_map_use()
  assert use is not None and 0 < use < grid.executors.MAX_MAP_FRACTION
  # Units done already never trigger it: a restarted process gets past them.
  workdir, frame = whole
  config = _config()
  cells = grid.cells.grid_cells(config, config.datasets, config.methods)
  grid.executors.in_process(grid.cells.plan(cells), config, str(workdir),
                            max_map_fraction=0.0)
  # A unit not done yet is refused before any of its work starts.
  with pytest.raises(grid.executors.RestartProcess, match='max_map_count'):
    grid.executors.in_process(grid.cells.plan(cells), config,
                              str(tmp_path), max_map_fraction=0.0)
  assert grid.merge.table(cells, config, str(tmp_path)).empty
  with pytest.raises(validate.InvalidArgument, match='--max_map_fraction=1.5'):
    grid.executors.in_process([], config, str(tmp_path), max_map_fraction=1.5)


def test_hmc_cells_can_start_where_the_original_code_did(whole, tmp_path):
  # 'uniform' (Pyro's init_to_uniform): other chains, other numbers, and a
  # wide start; the default keeps the digests of cells written before the
  # setting existed.
  _, frame = whole
  config = _config()
  config.methods = ('hmc',)
  default = grid.runner.digest(config, grid.cells.grid_cells(
      config, config.datasets, ('hmc',))[0])
  del config.training['hmc_init']
  cell = grid.cells.grid_cells(config, config.datasets, ('hmc',))[0]
  assert grid.runner.digest(config, cell) == default
  config = _config()
  config.methods = ('hmc',)
  config.training.hmc_init = 'uniform'
  assert grid.runner.digest(config, cell) != default
  uniform = _run(config, tmp_path)
  ours = frame[frame['method'] == 'hmc'].reset_index(drop=True)
  assert not np.allclose(uniform['clean_accuracy'].to_numpy(dtype=float),
                         ours['clean_accuracy'].to_numpy(dtype=float)) or (
      not np.allclose(uniform['hmc_ess_median'].to_numpy(dtype=float),
                      ours['hmc_ess_median'].to_numpy(dtype=float)))
  config.training.hmc_init = 'pyro'
  with pytest.raises(validate.InvalidArgument,
                     match="--config.training.hmc_init='pyro'"):
    config_checks.check(config)


def test_apgd_targets_keep_older_cells_digests_until_set():
  config = _config()
  cell = grid.cells.grid_cells(config, config.datasets, ('sgd',))[0]
  default = grid.runner.digest(config, cell)
  del config.attack['apgd_targets']  # A config from before the setting.
  assert grid.runner.digest(config, cell) == default
  config = _config()
  config.attack.apgd_targets = 9
  assert grid.runner.digest(config, cell) != default
  config.attack.apgd_targets = -1
  with pytest.raises(validate.InvalidArgument,
                     match='--config.attack.apgd_targets=-1'):
    config_checks.check(config)


def test_merge_only_leaves_a_running_shards_staging_alone(tmp_path):
  # Issue 27, item 2: the merge's clean-up deleted shard 1's live
  # .tmp-state-* directory, and the shard died.
  import signal  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from test_locks import _SHARD, _entries  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path)
  shard = subprocess.Popen([sys.executable, '-c', _SHARD, workdir],
                           stdout=subprocess.PIPE, text=True, cwd=REPO)
  try:
    assert shard.stdout.readline().strip() == 'staged'
    live = _entries(workdir)
    merge = subprocess.run(
        [sys.executable, 'binaries/grid.py', '--merge_only',
         f'--workdir={workdir}'], cwd=REPO, capture_output=True, text=True,
        timeout=300)
    assert merge.returncode == 0, merge.stderr[-2000:]
    assert len(live) == 3 and _entries(workdir) == live
    assert shard.poll() is None  # Still running.
  finally:
    shard.send_signal(signal.SIGKILL)
    shard.wait()
