r"""Speed and memory benchmarks; results as JSON.

  python binaries/benchmark.py --output=workdir/benchmark.json

Each figure is a ratio of two measurements taken in this one run:
vectorised vs looped expected gradients (targets: 50x on the MNIST 2x1024
net, 20x on the half-moons grid net), achieved vs `tf.matmul` GFLOP/s
(target 60%), one HMC leapfrog step vs one forward and backward pass on
full-batch MNIST (target 1.1x or less; the full-batch gradient's fraction of
the matmul peak beside it), and the peak memory of PGD over 250 samples x
500 images for the default budget (4 GiB) and smaller ones, and a repeated
PGD call on 400 half-moons points (its compiled loop cached: no retrace)
against cleverhans' eager PGD on the same ensemble as one tf_keras model
(`--pgd_reference`; cleverhans comes with `pip install -e ".[benchmark]"`).

`--only=figure4_paper_grid` (not run by default: about 20 minutes) measures
the rates of every net of the paper's Figure 4 grids on full MNIST and
projects the grids' cost after sharing, on 1 to 128 workers like this
machine (`tfp_robust.experiments.grid.projection`).

--print_config prints this binary's flags and exits before TensorFlow is
imported; the flags are checked before it is.
"""

import _quiet  # pylint: disable=unused-import  # First: quiet TF, --print_config.
import importlib.util
import json
import os

from absl import app
from absl import flags
from absl import logging

from tfp_robust.core import config_checks
from tfp_robust.core import config_lib
from tfp_robust.core import validate

_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                        'configs')
_OUTPUT = flags.DEFINE_string('output', 'workdir/benchmark.json',
                              'Where the JSON results go.')
_BUDGET_GIB = flags.DEFINE_float('memory_budget_gib', 4.0,
                                 'PGD memory budget in GiB.')
_LOOP_IMAGES = flags.DEFINE_integer(
    'loop_images', 5, 'Images the per-image loop runs on (scaled to 500).')
_ONLY = flags.DEFINE_list('only', None, 'Run only these benchmarks.')
_PAPER_CONFIGS = flags.DEFINE_list(
    'paper_configs', ['table1', 'table2', 'gradients'],
    'Experiments whose paper-scale cost is measured and projected '
    '(benchmark "paper_costs").')
_FIGURE4_PROTOCOLS = flags.DEFINE_list(
    'figure4_protocols', ['paper', 'strong'],
    'Protocols each cell of the projected Figure 4 grids is evaluated with.')
_REFERENCE_ACTIVATION = flags.DEFINE_string(
    'figure4_reference_activation', 'relu',
    'Measure each Figure 4 net with this activation only and use its rates '
    'for every activation (empty: measure every activation).')
_PGD_REFERENCE = flags.DEFINE_string(
    'pgd_reference', 'cleverhans', 'cleverhans | eager_tape: the eager PGD '
    'the repeated PGD call ("pgd_repeated") is measured against.')
_WORKERS = flags.DEFINE_list(
    'workers', ['1', '8', '32', '128'],
    'Worker counts the Figure 4 projection schedules the units on.')


DEFAULT_BENCHMARKS = ('mnist_gradient', 'halfmoons_gradient', 'hmc_leapfrog',
                      'pgd_memory', 'paper_costs', 'halfmoons_paper_grid',
                      'pgd_overhead', 'gradient_forms', 'pgd_repeated')
BENCHMARKS = DEFAULT_BENCHMARKS + ('figure4_paper_grid',)


def _check_flags():
  """Every flag, before TensorFlow is imported."""
  for name in _ONLY.value or ():
    validate.one_of('--only', name, BENCHMARKS)
  validate.positive('--memory_budget_gib', _BUDGET_GIB.value, 'e.g. 4.')
  validate.integer('--loop_images', _LOOP_IMAGES.value, 1)
  known = sorted(n[:-3] for n in os.listdir(_CONFIGS) if n.endswith('.py'))
  for name in _PAPER_CONFIGS.value:
    validate.one_of('--paper_configs', name, known)
  for name in _FIGURE4_PROTOCOLS.value:
    validate.one_of('--figure4_protocols', name, config_checks.PROTOCOLS)
  if _REFERENCE_ACTIVATION.value:
    validate.one_of('--figure4_reference_activation',
                    _REFERENCE_ACTIVATION.value, config_checks.ACTIVATIONS)
  validate.one_of('--pgd_reference', _PGD_REFERENCE.value,
                  ('cleverhans', 'eager_tape'))
  if (_PGD_REFERENCE.value == 'cleverhans' and
      'pgd_repeated' in (_ONLY.value or DEFAULT_BENCHMARKS) and
      importlib.util.find_spec('cleverhans') is None):
    validate.fail('--pgd_reference', _PGD_REFERENCE.value,
                  'cleverhans is not installed',
                  'pip install -e ".[benchmark]", or pass '
                  '--pgd_reference=eager_tape.')
  for count in _WORKERS.value:
    if not count.isdigit() or int(count) < 1:
      validate.fail('--workers', count, 'each must be an integer >= 1',
                    'e.g. --workers=1,8,32.')
  validate.workdir('--output', os.path.dirname(os.path.abspath(_OUTPUT.value)))


def main(argv):
  del argv
  _check_flags()
  # pylint: disable=g-import-not-at-top  # Heavy: after the checks.
  from tfp_robust.experiments import benchmarks
  from tfp_robust import data
  from tfp_robust.reports import tables as reports
  from tfp_robust.experiments.grid import projection
  results = {}
  wanted = set(_ONLY.value or DEFAULT_BENCHMARKS)
  if 'mnist_gradient' in wanted:
    results['mnist_gradient'] = benchmarks.expected_gradient_speed(
        loop_images=_LOOP_IMAGES.value)
    logging.info('%s', results['mnist_gradient'])
  if 'halfmoons_gradient' in wanted:
    results['halfmoons_gradient'] = benchmarks.halfmoons_gradient_speed()
    logging.info('%s', results['halfmoons_gradient'])
  if 'hmc_leapfrog' in wanted:
    mnist = data.load_tfds('mnist', num_test=1)
    results['hmc_leapfrog'] = benchmarks.hmc_leapfrog_cost(mnist.x_train,
                                                           mnist.y_train)
    logging.info('%s', results['hmc_leapfrog'])
  if 'gradient_forms' in wanted:
    results['gradient_forms'] = benchmarks.expected_gradient_forms()
    logging.info('%s', results['gradient_forms'])
  if 'pgd_overhead' in wanted:
    results['pgd_overhead'] = benchmarks.pgd_step_overhead()
    logging.info('%s', results['pgd_overhead'])
  if 'pgd_repeated' in wanted:
    results['pgd_repeated'] = benchmarks.pgd_repeated_call(
        use_cleverhans=_PGD_REFERENCE.value == 'cleverhans')
    logging.info('%s', results['pgd_repeated'])
  if 'pgd_memory' in wanted:
    results['pgd_memory'] = [
        benchmarks.pgd_peak_memory(int(gib * (1 << 30)))
        for gib in sorted({_BUDGET_GIB.value, 1.0, 0.5}, reverse=True)]
    logging.info('%s', results['pgd_memory'])
  if 'paper_costs' in wanted:
    mnist = data.load_tfds('mnist', num_test=1)
    for name in _PAPER_CONFIGS.value:
      config = config_lib.load_config_file(
          os.path.join(_CONFIGS, name + '.py'), 'paper')
      results[f'paper_costs_{name}'] = benchmarks.projected_costs(config,
                                                                  mnist)
      logging.info('%s: %s', name, results[f'paper_costs_{name}'])
  if 'halfmoons_paper_grid' in wanted:
    results['halfmoons_paper_grid'] = benchmarks.halfmoons_grid_projection(
        config_lib.load_config_file(os.path.join(_CONFIGS, 'halfmoons_grid.py'),
                                   'paper'))
    logging.info('%s', results['halfmoons_paper_grid'])
  if 'figure4_paper_grid' in wanted:
    config = config_lib.load_config_file(
        os.path.join(_CONFIGS, 'figure4.py'), 'paper')
    config.protocols = tuple(_FIGURE4_PROTOCOLS.value)
    works = [w for dataset in config.datasets
             for w in projection.grid_works(config, dataset, config.methods)]
    mnist = data.load_tfds('mnist', num_test=1)
    rates, facts = projection.measure_rates(
        works, config, mnist.x_train, mnist.y_train,
        reference_activation=_REFERENCE_ACTIVATION.value or None,
        log=logging.info)
    results['figure4_paper_grid'] = dict(
        projection.project(works, rates,
                           [int(n) for n in _WORKERS.value]),
        measured=facts, protocols=list(config.protocols),
        datasets=list(config.datasets))
    logging.info('%s', results['figure4_paper_grid'])
  reports.write_json(_OUTPUT.value, results)
  print(json.dumps(results, indent=2))
  print(f'\nWritten to {os.path.abspath(_OUTPUT.value)}')


if __name__ == '__main__':
  app.run(main)
