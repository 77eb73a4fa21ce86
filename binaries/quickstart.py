r"""Quickstart: three posteriors on half moons, attacked and tabulated.

Trains a deterministic net, a VI BNN and an HMC BNN on half moons, attacks
each with FGSM and PGD under the `expected` (the paper's Eq. 2) and
`predictive` losses, prints a table and writes plots, checkpoints and
TensorBoard logs to --workdir.

  python binaries/quickstart.py --workdir=/tmp/quickstart
  python binaries/quickstart.py --config=configs/quickstart.py:paper

--print_config lists every config field (set one with --config.<field>=<value>)
and exits before TensorFlow is imported.
"""

import _quiet  # pylint: disable=unused-import  # First: quiet TF, --print_config.
import os

import numpy as np

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from tfp_robust.core import config_checks
from tfp_robust.core import files
from tfp_robust.core import locks

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                           'configs', 'quickstart.py:cpu'),
    'Experiment config (file:variant); --print_config lists its fields.')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir/quickstart',
                               'Where results, plots and logs go.')


def _write_hparams(config, table, workdir):
  """Each model's settings and its row of the table, for the HParams tab
  (`<workdir>/tensorboard/half_moons/<method>/hparams`)."""
  from tfp_robust.reports import summaries  # pylint: disable=g-import-not-at-top
  for record in table.to_dict('records'):
    method = record['method']
    section = config.get(method, {})
    values = {'method': method, 'samples': int(record['samples']),
              'hidden': str(tuple(section.get('hidden', config.model.hidden))),
              'activation': section.get('activation',
                                        config.model.activation),
              'num_train': int(config.data.num_train),
              'eps': float(config.attack.eps[0]), 'seed': int(config.seed)}
    metrics = {f'hparams/{name}': float(value)
               for name, value in record.items()
               if name not in ('method', 'samples') and
               isinstance(value, (int, float, np.number)) and
               np.isfinite(value)}
    writer = summaries.open_writer(
        summaries.run_dir(workdir, 'half_moons', method, 'hparams'))
    summaries.hparams(writer, values, metrics)
    writer.close()


def main(argv):
  del argv
  config = _CONFIG.value
  workdir = _WORKDIR.value
  config_checks.check_run(config, None, workdir)
  locks.start_run(_WORKDIR.value)  # One run per work directory.
  # pylint: disable=g-import-not-at-top  # Heavy: after the checks.
  from tfp_robust import data
  from tfp_robust.evaluation import rows as evaluation
  from tfp_robust.experiments import paper as experiments
  from tfp_robust.evaluation import gradients
  from tfp_robust.fit import fitting
  from tfp_robust.reports import tables as reports
  from tfp_robust.reports import plots
  from tfp_robust.reports import summaries
  dataset = data.half_moons(config.data.num_train, config.data.num_test,
                            config.data.noise, seed=config.seed)
  architecture = fitting.architecture_from_config(
      config.model, dataset.input_shape, dataset.num_classes)
  rows, fit_info, ensembles, components, adversarial = [], {}, {}, {}, {}
  shown = np.arange(int(config.num_adversarial_shown))
  num_gradient_points = min(100, len(dataset.x_test))
  for method in config.methods:
    log_dir = summaries.run_dir(workdir, 'half_moons', method, 'fit')
    ensemble, info = fitting.fit(method, architecture, dataset.x_train,
                                 dataset.y_train, config, seed=config.seed,
                                 workdir=workdir, log_dir=log_dir)
    info.update(fitting.fit_facts(method, ensemble, config, dataset.x_test,
                                  dataset.y_test))
    fitting.write_fit_summaries(log_dir, method, ensemble, info)
    ensemble.save(os.path.join(workdir, 'ensembles', method), extra=info)
    info.update(evaluation.gradient_statistics(ensemble, dataset.x_test,
                                              dataset.y_test))
    fit_info[method] = info
    method_rows = evaluation.attack_rows(
        ensemble, dataset.x_test, dataset.y_test, config.attack,
        seed=config.seed, labels={'method': method})
    experiments.write_evaluation_summaries(
        summaries.run_dir(workdir, 'half_moons', method, 'attacks_paper'),
        ensemble, method_rows, dataset.x_test, dataset.y_test, config.attack,
        seed=config.seed)
    rows += method_rows
    adversarial[method] = (shown, evaluation.adversarial_examples(
        ensemble, dataset.x_test[shown], dataset.y_test[shown], config.attack,
        seed=config.seed, max_images=len(shown))[1])
    ensembles[method] = ensemble
    components[method] = gradients.expected_gradients_by_num_samples(
        ensemble, dataset.x_test[:num_gradient_points],
        dataset.y_test[:num_gradient_points],
        [ensemble.num_samples])[ensemble.num_samples]
  import pandas as pd  # pylint: disable=g-import-not-at-top
  reports.write_table(pd.DataFrame(rows), os.path.join(workdir, 'attacks'))
  table = reports.summary_table(rows, fit_info)
  reports.write_table(table, os.path.join(workdir, 'summary'))
  reports.write_json(os.path.join(workdir, 'fit_info.json'), fit_info)
  figures = {
      'decision_regions': plots.decision_regions(
          ensembles, dataset.x_test, dataset.y_test,
          'Half moons: predictive probability and test points',
          adversarial=adversarial, eps=float(config.attack.eps[0])),
      'expected_gradients': plots.gradient_components_by_model(
          components, 'Expected loss gradient per input coordinate, half '
          'moons', loss='expected cross-entropy (Eq. 2)',
          where=f'{num_gradient_points} clean test points (eps = 0; FGSM at '
          f'eps = {float(config.attack.eps[0]):g} steps along its sign)',
          coordinate_names=['x1', 'x2'])}
  writer = summaries.open_writer(
      summaries.run_dir(workdir, 'half_moons', 'all', 'figures'))
  for name, figure in figures.items():
    summaries.figure(writer, f'figures/{name}', figure)
    reports.save_figure(figure, os.path.join(workdir, f'{name}.png'))
  writer.close()
  _write_hparams(config, table, workdir)
  logging.info('Wrote results to %s', os.path.abspath(workdir))
  print(table.to_string(index=False, float_format=lambda v: f'{v:.3f}',
                        na_rep='-'))
  for warning in reports.mixing_warnings(fit_info):
    print(warning)  # Beside the table it qualifies (stdout), once.
  print(f'\nResults and plots: {os.path.abspath(workdir)}\n'
        'TensorBoard: tensorboard --logdir '
        f"{os.path.abspath(os.path.join(workdir, 'tensorboard'))}")


if __name__ == '__main__':
  app.run(main)
