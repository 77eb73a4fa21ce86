r"""The full evaluation of a saved model: attacks, checks, certified bounds.

  python binaries/evaluate.py --model=workdir/table1/mnist/hmc/ensemble \
      --config=configs/evaluate.py:cpu --workdir=workdir/evaluate

--model is an ensemble directory (binaries/train.py), a SavedModel
(tfp_robust.export.save_model) or a tf_keras model file (.keras / .h5;
logits out). The model is evaluated on the first `attack.num_points` test
images of `dataset` under `attack.protocol` (strong by default) at every
`attack.eps`, with the sanity checks on every row. Writes
<workdir>/evaluation.{csv,md}, TensorBoard summaries to
<workdir>/tensorboard/<dataset>/<model>/evaluate_<protocol>, and prints the
summary.
"""

import _quiet  # pylint: disable=unused-import  # First: quiets TensorFlow.
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from tfp_robust import config_checks
from tfp_robust import data
from tfp_robust import ensemble as ensemble_lib
from tfp_robust import evaluation
from tfp_robust import experiments
from tfp_robust import files
from tfp_robust import reports
from tfp_robust import summaries

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                           'configs', 'evaluate.py:cpu'),
    'Experiment config (file:variant).')
_MODEL = flags.DEFINE_string('model', None, 'The model to evaluate.')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir/evaluate',
                               'Output directory.')
flags.mark_flags_as_required(['model'])


def main(argv):
  del argv
  config = _CONFIG.value
  config_checks.check_run(config, [], _WORKDIR.value)
  files.start_run(_WORKDIR.value)  # One run per work directory.
  model = ensemble_lib.load_any(_MODEL.value)
  if int(config.attack.num_samples) < model.num_samples:
    model = model.evenly_spaced(int(config.attack.num_samples))
  dataset = data.load_tfds(config.dataset, data_dir=config.data_dir or None,
                           flat=len(model.input_shape) == 1, num_train=1,
                           num_test=int(config.attack.num_points))
  rows = evaluation.attack_rows(
      model, dataset.x_test, dataset.y_test, config.attack,
      seed=int(config.seed),
      labels={'model': os.path.basename(os.path.normpath(_MODEL.value)),
              'method': model.method, 'dataset': config.dataset})
  name = os.path.basename(os.path.normpath(_MODEL.value))
  experiments.write_evaluation_summaries(
      summaries.run_dir(_WORKDIR.value, config.dataset, name,
                        f'evaluate_{config.attack.protocol}'),
      model, rows, dataset.x_test, dataset.y_test, config.attack,
      seed=int(config.seed))
  import pandas as pd  # pylint: disable=g-import-not-at-top
  frame = pd.DataFrame(rows)
  reports.write_table(frame, os.path.join(_WORKDIR.value, 'evaluation'))
  summary = reports.summary_table(rows)
  print(summary.to_string(index=False, float_format=lambda v: f'{v:.3f}'))
  failed = sorted({c for cell in frame['checks_failed'] for c in
                   str(cell).split(',') if c and c != 'nan'})
  print('Checks failed: ' + (', '.join(failed) if failed else 'none'))
  print(f'\nTables: {os.path.abspath(_WORKDIR.value)}')
  print('TensorBoard: tensorboard --logdir '
        f"{os.path.abspath(os.path.join(_WORKDIR.value, 'tensorboard'))}")


if __name__ == '__main__':
  app.run(main)
