r"""Quickstart: three posteriors on half moons, attacked and tabulated.

Trains a deterministic net, a VI BNN and an HMC BNN on half moons, attacks
each with FGSM and PGD under the `expected` (the paper's Eq. 2) and
`predictive` losses, prints a table and writes plots, checkpoints and
TensorBoard logs to --workdir.

  python binaries/quickstart.py --workdir=/tmp/quickstart
  python binaries/quickstart.py --config=configs/quickstart.py:paper
"""

import _quiet  # pylint: disable=unused-import  # First: quiets TensorFlow.
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from tfp_robust import data
from tfp_robust import evaluation
from tfp_robust import gradients
from tfp_robust import fitting
from tfp_robust import reports
from tfp_robust import plots

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                           'configs', 'quickstart.py:cpu'),
    'Experiment config (file:variant).')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir/quickstart',
                               'Where results, plots and logs go.')


def main(argv):
  del argv
  config = _CONFIG.value
  workdir = _WORKDIR.value
  dataset = data.half_moons(config.data.num_train, config.data.num_test,
                            config.data.noise, seed=config.seed)
  architecture = fitting.architecture_from_config(
      config.model, dataset.input_shape, dataset.num_classes)
  rows, fit_info, ensembles, components = [], {}, {}, {}
  for method in config.methods:
    ensemble, info = fitting.fit(method, architecture, dataset.x_train,
                                   dataset.y_train, config, seed=config.seed,
                                   workdir=workdir)
    ensemble.save(os.path.join(workdir, 'ensembles', method), extra=info)
    info.update(evaluation.gradient_statistics(ensemble, dataset.x_test,
                                              dataset.y_test))
    fit_info[method] = info
    rows += evaluation.attack_rows(ensemble, dataset.x_test, dataset.y_test,
                                  config.attack, seed=config.seed,
                                  labels={'method': method})
    ensembles[method] = ensemble
    components[method] = gradients.expected_gradients_by_num_samples(
        ensemble, dataset.x_test[:100], dataset.y_test[:100],
        [ensemble.num_samples])[ensemble.num_samples]
  import pandas as pd  # pylint: disable=g-import-not-at-top
  reports.write_table(pd.DataFrame(rows), os.path.join(workdir, 'attacks'))
  table = reports.summary_table(rows, fit_info)
  reports.write_table(table, os.path.join(workdir, 'summary'))
  reports.write_json(os.path.join(workdir, 'fit_info.json'), fit_info)
  reports.save_figure(plots.decision_regions(ensembles, dataset.x_test,
                                               dataset.y_test),
                        os.path.join(workdir, 'decision_regions.png'))
  reports.save_figure(
      plots.gradient_components_by_model(
          components, 'Expected loss gradient components, 100 test points'),
      os.path.join(workdir, 'expected_gradients.png'))
  logging.info('Wrote results to %s', os.path.abspath(workdir))
  print(table.to_string(index=False, float_format=lambda v: f'{v:.3f}'))
  print(f'\nResults, plots and TensorBoard logs: {os.path.abspath(workdir)}')


if __name__ == '__main__':
  app.run(main)
