"""`experiments.attack_saved` keeps each method's rows and resumes from them.

Each test runs in a fresh Python process (`isolation.fresh_process`): the
full suite in one pytest process segfaulted in the C++ unwinder at a later test once
these in-process trainings and jit-compiled attacks were added (session 9,
BUILD_NOTES), so their TensorFlow state is kept out of the shared process.
"""

import copy
import os
import shutil

import pandas as pd
import pytest

from configs import table1
from tfp_robust.evaluation import rows as evaluation
from tfp_robust.experiments import paper as experiments
from tfp_robust.fit import fitting

import isolation


def _config():
  config = table1.get_config('cpu')
  config.num_train, config.num_test = 300, 50
  config.methods = ('sgd',)
  config.sgd.hidden, config.sgd.epochs = (8,), 1
  config.attack.num_points = 20
  config.attack.pgd_steps = 3
  return config


@pytest.fixture(name='trained')
def _trained(tmp_path):
  if not isolation.CHILD:
    return None  # The child process trains.
  config = _config()
  fitting.ensure_trained(config, ['sgd'], str(tmp_path))
  return config, str(tmp_path)


def _no_attacks(*args, **kwargs):
  raise AssertionError('attacked again although its rows were saved')


@isolation.fresh_process
def test_killed_run_resumes_with_the_same_table(trained, monkeypatch):
  config, workdir = trained
  first, summary = experiments.attack_saved(config, ['sgd'], workdir)
  path = experiments.rows_path(workdir, 'mnist', 'sgd', 'attacks', 'paper')
  assert os.path.exists(path)
  assert set(first['attack']) >= {'random', 'fgsm', 'pgd'}
  monkeypatch.setattr(evaluation, 'attack_rows', _no_attacks)
  again, again_summary = experiments.attack_saved(config, ['sgd'], workdir)
  pd.testing.assert_frame_equal(first, again)
  pd.testing.assert_frame_equal(summary, again_summary)


@isolation.fresh_process
def test_rows_survive_a_retrain_to_the_same_weights(trained, monkeypatch):
  # After a machine change or a deleted checkpoint, training again from the
  # same seed gives the same weights but another description (its wall
  # time): the saved rows still belong to it.
  config, workdir = trained
  first, _ = experiments.attack_saved(config, ['sgd'], workdir)
  saved = os.path.join(fitting.ensemble_dir(workdir, 'mnist', 'sgd'),
                       'ensemble.json')
  with open(saved) as f:
    description = f.read()
  shutil.rmtree(os.path.dirname(saved))
  fitting.ensure_trained(config, ['sgd'], workdir)
  with open(saved) as f:
    assert f.read() != description  # fit_seconds differs
  monkeypatch.setattr(evaluation, 'attack_rows', _no_attacks)
  again, _ = experiments.attack_saved(config, ['sgd'], workdir)
  pd.testing.assert_frame_equal(first, again)


@isolation.fresh_process
def test_changed_settings_or_ensemble_evaluate_again(trained, monkeypatch):
  config, workdir = trained
  experiments.attack_saved(config, ['sgd'], workdir)
  calls = []
  real = evaluation.attack_rows

  def counted(*args, **kwargs):
    calls.append(1)
    return real(*args, **kwargs)

  monkeypatch.setattr(evaluation, 'attack_rows', counted)
  config.attack.eps = (0.05,)
  rows, _ = experiments.attack_saved(config, ['sgd'], workdir)
  assert len(calls) == 1 and set(rows['eps']) == {0.05}
  # A retrained ensemble (here with another seed) is another ensemble, under
  # the same config.
  other = copy.deepcopy(config)
  other.seed = 1
  fitting.train_and_save(other, 'sgd', workdir)
  experiments.attack_saved(config, ['sgd'], workdir)
  assert len(calls) == 2
  # A corrupt rows file is not trusted: evaluated again, and rewritten.
  path = experiments.rows_path(workdir, 'mnist', 'sgd', 'attacks', 'paper')
  with open(path, 'w') as f:
    f.write('{"digest": ')
  experiments.attack_saved(config, ['sgd'], workdir)
  assert len(calls) == 3
  experiments.attack_saved(config, ['sgd'], workdir)
  assert len(calls) == 3


@isolation.fresh_process
def test_a_views_fingerprint_covers_its_variational_model(tmp_path):
  config = _config()
  config.vi.hidden, config.vi.epochs, config.vi.num_samples = (8,), 1, 4
  workdir = str(tmp_path)
  with pytest.raises(FileNotFoundError, match='binaries/train.py --method=vi'):
    fitting.saved_fingerprint(config, 'vi_resampled', workdir)
  fitting.ensure_trained(config, ['vi'], workdir)
  before = fitting.saved_fingerprint(config, 'vi_resampled', workdir)
  assert before != fitting.saved_fingerprint(config, 'vi', workdir)
  path = tmp_path / 'mnist' / 'vi' / 'variational' / 'variational.json'
  path.write_text(path.read_text() + ' ')
  assert fitting.saved_fingerprint(config, 'vi_resampled', workdir) != before


def _killed_at_second_radius(monkeypatch, config, methods, workdir):
  """Runs `attack_saved`, killed as it starts its second radius."""
  real = evaluation.attack_rows

  def killed(*args, **kwargs):
    if tuple(args[3].eps) == tuple(config.attack.eps[1:2]):
      raise KeyboardInterrupt
    return real(*args, **kwargs)

  monkeypatch.setattr(evaluation, 'attack_rows', killed)
  with pytest.raises(KeyboardInterrupt):
    experiments.attack_saved(config, methods, workdir)
  monkeypatch.setattr(evaluation, 'attack_rows', real)


def _resumes_between_radii(config, method, workdir, monkeypatch):
  config.attack.eps = (0.05, 0.1)
  first, _ = experiments.attack_saved(config, [method], workdir)
  path = experiments.rows_path(workdir, 'mnist', method, 'attacks', 'paper')
  parts = [experiments._eps_path(path, eps) for eps in config.attack.eps]
  assert not any(os.path.exists(p) for p in parts)  # Cleared once finished.
  os.remove(path)
  _killed_at_second_radius(monkeypatch, config, [method], workdir)
  assert os.path.exists(parts[0]) and not os.path.exists(parts[1])
  assert not os.path.exists(path)
  calls = []
  real = evaluation.attack_rows

  def counted(*args, **kwargs):
    calls.append(tuple(args[3].eps))
    return real(*args, **kwargs)

  monkeypatch.setattr(evaluation, 'attack_rows', counted)
  again, _ = experiments.attack_saved(config, [method], workdir)
  assert calls == [(0.1,)]  # The finished radius is read, not attacked.
  assert not any(os.path.exists(p) for p in parts)
  timing = ['attack_seconds']
  pd.testing.assert_frame_equal(first.drop(columns=timing),
                                again.drop(columns=timing))


@isolation.fresh_process
def test_a_run_killed_between_radii_resumes_from_the_finished_ones(
    trained, monkeypatch):
  config, workdir = trained
  _resumes_between_radii(config, 'sgd', workdir, monkeypatch)


@isolation.fresh_process
def test_a_resampling_model_gives_the_same_rows_after_a_kill(tmp_path,
                                                             monkeypatch):
  # Every radius starts from a freshly seeded model, so the second radius's
  # draws do not depend on whether the first ran in the same process.
  config = _config()
  config.vi.hidden, config.vi.epochs, config.vi.num_samples = (8,), 1, 4
  config.attack.num_samples = 4
  fitting.ensure_trained(config, ['vi'], str(tmp_path))
  _resumes_between_radii(config, 'vi_resampled', str(tmp_path), monkeypatch)
