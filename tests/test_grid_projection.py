"""Projected grid cost: the work counted per unit, the schedule, the rates."""

import math
import os

import numpy as np
import pytest

from tfp_robust.core import config_lib
from tfp_robust.experiments.grid import projection

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _figure4(variant):
  return config_lib.load_config_file(
      os.path.join(REPO, 'configs', 'figure4.py'), variant)


def test_units_count_the_work_of_their_longest_run_and_every_cell():
  config = _figure4('paper')
  works = projection.grid_works(config, 'mnist', ('hmc', 'sgd', 'vi'))
  assert len(works) == 324 + 180 + 192  # the shared plan's trainings
  hmc = next(w for w in works if w.method == 'hmc' and
             w.net == (512, 3, 'relu') and w.leapfrog_steps == 20 * 475)
  # 2 chains: 750 samples are 375 per chain after 100 burn-in iterations;
  # cells of 250, 500, 750 samples attacked with at most 250 of them.
  assert dict(hmc.attacked_sample_images) == {'paper': 3 * 250 * 500}
  sgd = next(w for w in works if w.method == 'sgd')
  assert sgd.epochs == 15 and sgd.batch_size in (128, 256, 512, 1024)
  assert dict(sgd.attacked_sample_images) == {'paper': 6 * 1 * 500}
  vi = next(w for w in works if w.method == 'vi')
  assert vi.epochs == 25 and vi.batch_size == 256
  assert dict(vi.attacked_sample_images) == {'paper': 5 * 250 * 500}
  config.protocols = ('paper', 'strong')
  both = projection.grid_works(config, 'mnist', ('sgd',))[0]
  assert dict(both.attacked_sample_images) == {'paper': 3000, 'strong': 3000}


def test_makespan_schedules_longest_first():
  jobs = [5.0, 4.0, 3.0, 3.0, 3.0]
  assert projection.makespan(jobs, 1) == 18.0
  assert projection.makespan(jobs, 10) == 5.0
  # LPT: {5, 3, 3} and {4, 3}... here 5+3 | 4+3+3 -> 10 (the optimum is 9).
  assert projection.makespan(jobs, 2) == 10.0
  with pytest.raises(ValueError, match='num_workers must be >= 1, got 0'):
    projection.makespan(jobs, 0)


def test_project_prices_the_work_by_the_rates():
  net = (8, 1, 'relu')
  works = [
      projection.UnitWork('a', 'hmc', net, 0, 1000, 0, (('paper', 100),)),
      projection.UnitWork('b', 'sgd', net, 64, 0, 10, (('paper', 20),))]
  rates = projection.Rates(
      leapfrog_seconds={net: 3.6}, epoch_seconds={('sgd', net, 64): 36.0},
      training_fixed_seconds={('sgd', net, 64): 360.0},
      attack_seconds={('paper', net): 36.0})
  result = projection.project(works, rates, num_workers=(1, 2))
  assert math.isclose(result['hmc']['train_hours'], 1.0)
  assert math.isclose(result['hmc']['attack_hours'], 1.0)
  assert math.isclose(result['sgd']['train_hours'], 0.2)
  assert math.isclose(result['sgd']['attack_hours'], 0.2)
  assert math.isclose(result['total_hours'], 2.4)
  assert math.isclose(result['wall_hours_on_workers'][1], 2.4)
  assert math.isclose(result['wall_hours_on_workers'][2], 2.0)


def test_measured_rates_cover_every_unit(moons):
  config = _figure4('cpu')
  config.protocols = ('paper', 'strong')
  config.training.hmc_burn_in = 2
  config.training.vi_num_samples = 4
  config.hmc = dict(num_samples=(4,), step_size=(0.001,),
                    num_leapfrog_steps=(3,), hidden=(4,),
                    activation=('relu',), depth=(1,))
  config.sgd = dict(batch_size=(50,), hidden=(8,), activation=('tanh',),
                    depth=(1,), epochs=(1, 2), learning_rate=(0.001,))
  config.vi = dict(learning_rate=(0.01,), hidden=(8,), activation=('relu',),
                   depth=(1,), epochs=(1,))
  config.attack.update(num_points=10, num_samples=4, pgd_steps=2,
                       apgd_steps=2, apgd_restarts=1, square_queries=5)
  works = projection.grid_works(config, 'moons', ('hmc', 'sgd', 'vi'))
  rates, facts = projection.measure_rates(
      works, config, moons.x_train, moons.y_train, epoch_images=200,
      timed_epochs=(1, 2),
      attack_samples=2, attack_points=5, log=lambda _: None)
  result = projection.project(works, rates, num_workers=(1, 4))
  seconds = [projection.unit_seconds(w, rates) for w in works]
  for s in seconds:
    assert np.isfinite(s['train']) and s['train'] > 0
    assert np.isfinite(s['attack']) and s['attack'] > 0
  assert set(rates.attack_seconds) == {(p, n) for p in ('paper', 'strong')
                                       for n in ((4, 1, 'relu'),
                                                 (8, 1, 'tanh'),
                                                 (8, 1, 'relu'))}
  assert facts['num_train'] == 1000 and facts['hmc_timed_images'] == 100
  assert result['wall_hours_on_workers'][4] <= result['total_hours']
  assert result['wall_hours_on_workers'][4] >= result['longest_unit_hours']


def test_a_reference_activation_stands_for_the_others(moons):
  config = _figure4('cpu')
  config.training.hmc_burn_in = 2
  config.hmc = dict(num_samples=(4,), step_size=(0.001,),
                    num_leapfrog_steps=(3,), hidden=(4,),
                    activation=('relu', 'tanh'), depth=(1,))
  config.attack.update(num_points=10, num_samples=4, pgd_steps=2)
  works = projection.grid_works(config, 'moons', ('hmc',))
  rates, facts = projection.measure_rates(
      works, config, moons.x_train, moons.y_train, attack_samples=2,
      attack_points=5, reference_activation='relu', log=lambda _: None)
  assert facts['reference_activation'] == 'relu'
  assert (rates.leapfrog_seconds[(4, 1, 'tanh')] ==
          rates.leapfrog_seconds[(4, 1, 'relu')] > 0)
  assert (rates.attack_seconds[('paper', (4, 1, 'tanh'))] ==
          rates.attack_seconds[('paper', (4, 1, 'relu'))] > 0)
  assert len(projection.project(works, rates)) > 0
