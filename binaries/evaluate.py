r"""The evaluation card of a saved model, on any data.

  python binaries/evaluate.py --model=workdir/table1/mnist/hmc/ensemble \
      --config=configs/evaluate.py:cpu --workdir=workdir/evaluate
  python binaries/evaluate.py --model=net.keras --data=test.npz \
      --config.attack.eps='(0.01, 0.03)' --workdir=workdir/card

--model is an ensemble directory (binaries/train.py), a SavedModel
(tfp_robust.export.save_model) or a tf_keras model file (.keras / .h5;
logits out). --data is an .npz file with x_test and y_test (optionally
x_train, y_train, num_classes) or the name of a prepared TFDS dataset
(`dataset` in the config by default; half_moons too). Data in another range
than [0, 1] is declared with --input_range=0,255 (eps is then in those
units); a model that expects normalised inputs with --mean and --std.
The model is evaluated on the first `attack.num_points` test points under
`attack.protocol` (strong by default) at every `attack.eps`; --baseline adds
a reference model's card side by side, --surrogate a transfer source. A
model that resamples on every call gets EOT (`attack.eot_iter` calls per
gradient, --square_eot for Square) and the worst of --repeats evaluations.

Everything is checked before anything heavy runs: the config, the data's
description (shape, classes), then the model's input shape against it.
Writes <workdir>/card.{md,json} with reliability.png and robustness.png,
<workdir>/evaluation.{csv,md} (one row per attack), TensorBoard summaries
to <workdir>/tensorboard/<dataset>/<model name>/evaluate_<protocol>, and
prints the summary.
"""

import _quiet  # pylint: disable=unused-import  # First: quiets TensorFlow.
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from tfp_robust.core import validate

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                           'configs', 'evaluate.py:cpu'),
    'Experiment config (file:variant).')
_MODEL = flags.DEFINE_string('model', None, 'The model to evaluate.')
_DATA = flags.DEFINE_string(
    'data', None, 'An .npz file with x_test, y_test, or a prepared TFDS '
    'dataset name; default: --config.dataset.')
_BASELINE = flags.DEFINE_string('baseline', None,
                                'A reference model, carded side by side.')
_SURROGATE = flags.DEFINE_string('surrogate', None,
                                 'A model to craft transfer attacks on.')
_NAME = flags.DEFINE_string('name', None, "The model's name in the card "
                            '(default: from its path).')
_INPUT_RANGE = flags.DEFINE_list('input_range', ['0', '1'],
                                 'low,high of the data as given.')
_MEAN = flags.DEFINE_list('mean', None, 'Normalisation mean the model '
                          'expects (one value, or one per channel).')
_STD = flags.DEFINE_list('std', None, 'Normalisation std the model expects.')
_REPEATS = flags.DEFINE_integer(
    'repeats', 5, 'Independent evaluations of a model that resamples on '
    'every call; the card keeps the worst and shows the spread.')
_SQUARE_EOT = flags.DEFINE_integer(
    'square_eot', 20, "Square's margin is that of square_eot x S resampled "
    'calls (models that resample on every call).')
_CERTIFY = flags.DEFINE_enum('certify', 'crown', ['ibp', 'crown', 'alpha_crown'],
                             'The certified bound (tfp_robust.evaluation.certify); '
                             'interval bounds where it cannot read the model.')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir/evaluate',
                               'Output directory.')
flags.mark_flags_as_required(['model'])


def _floats(flag, values):
  try:
    return tuple(float(v) for v in values)
  except ValueError:
    validate.fail(flag, ','.join(values), 'it must be numbers separated by '
                  'commas', f'e.g. {flag}=0,255.')


def main(argv):
  del argv
  from tfp_robust.evaluation import rows as evaluation  # pylint: disable=g-import-not-at-top
  config = _CONFIG.value
  input_range = _floats('--input_range', _INPUT_RANGE.value)
  if len(input_range) != 2 or not input_range[0] < input_range[1]:
    validate.fail('--input_range', ','.join(_INPUT_RANGE.value),
                  'it must be low,high with low < high', 'e.g. 0,255.')
  evaluation.check_config(config, input_range)
  settings = evaluation.settings(config, repeats=_REPEATS.value,
                                 square_eot=_SQUARE_EOT.value,
                                 certify_method=_CERTIFY.value)
  validate.workdir('--workdir', _WORKDIR.value)
  normalization = None
  if (_MEAN.value is None) != (_STD.value is None):
    validate.fail('--mean' if _MEAN.value is None else '--std', None,
                  'a normalisation needs both --mean and --std',
                  'Pass both, e.g. --mean=0.5 --std=0.25.')
  if _MEAN.value is not None:
    normalization = (_floats('--mean', _MEAN.value),
                     _floats('--std', _STD.value))
  # Heavy imports after the flags and config are known to be good.
  from tfp_robust.evaluation import card as card_lib  # pylint: disable=g-import-not-at-top
  from tfp_robust.evaluation import card_report  # pylint: disable=g-import-not-at-top
  from tfp_robust import data  # pylint: disable=g-import-not-at-top
  from tfp_robust import ensemble as ensemble_lib  # pylint: disable=g-import-not-at-top
  from tfp_robust.core import files  # pylint: disable=g-import-not-at-top
  from tfp_robust.core import locks  # pylint: disable=g-import-not-at-top
  from tfp_robust.reports import tables as reports  # pylint: disable=g-import-not-at-top
  from tfp_robust.reports import summaries  # pylint: disable=g-import-not-at-top
  from tfp_robust.evaluation import instrumented  # pylint: disable=g-import-not-at-top
  data.check_range(input_range)
  data_name = _DATA.value or config.dataset
  data_flag = (f'--data={data_name!r}' if _DATA.value
               else f'--config.dataset={data_name!r}')
  # The data's description (shape, classes) from its header or builder info.
  spec = data.spec(data_name, config.data_dir or None)
  if not data_name.endswith('.npz') and input_range != (0.0, 1.0):
    validate.fail('--input_range', ','.join(_INPUT_RANGE.value),
                  f'{data_name} is loaded with inputs in [0, 1] already',
                  'Declare a range for .npz data only.')
  locks.start_run(_WORKDIR.value)  # One run per work directory.
  models = {}
  for flag, path in (('--model', _MODEL.value), ('--baseline', _BASELINE.value),
                     ('--surrogate', _SURROGATE.value)):
    if path is None:
      continue
    model = ensemble_lib.load_any(path)
    card_lib.compatible(model.input_shape, model.num_classes, spec.input_shape,
                        spec.num_classes, f'{flag}={path!r}', data_flag)
    instrumented.affine(model.input_shape, input_range, normalization)
    models[flag] = card_lib.thin(model, int(config.attack.num_samples),
                                 int(config.seed))
  num_points = int(config.attack.num_points)
  if data_name.endswith('.npz'):
    # As stored: the card maps them from --input_range into [0, 1].
    arrays = data.npz_arrays(data_name, num_points)
    x, y = arrays['x_test'], arrays['y_test']
  elif data_name == 'half_moons':
    dataset = data.half_moons(1, num_points, seed=int(config.seed))
    x, y = dataset.x_test, dataset.y_test
  else:
    dataset = data.load_tfds(data_name, config.data_dir or None, flat=False,
                             num_train=1 if spec.splits.get('train') else None,
                             num_test=num_points)
    x, y = dataset.x_test, dataset.y_test
  name = _NAME.value or evaluation.model_name(_MODEL.value)
  card = card_lib.evaluate(
      models['--model'], x, y, eps=list(config.attack.eps),
      settings=settings,
      surrogate=models.get('--surrogate'), baseline=models.get('--baseline'),
      input_range=input_range, normalization=normalization, name=name,
      data_name=os.path.basename(data_name))
  baseline_name = None
  if 'baseline' in card:
    baseline_name = evaluation.model_name(_BASELINE.value, taken={name})
    card['baseline']['model'] = baseline_name
  card_report.write(card, _WORKDIR.value)
  import pandas as pd  # pylint: disable=g-import-not-at-top
  dataset_label = spec.name if data_name.endswith('.npz') else data_name
  rows = []
  for model_card, model_name in ((card, name),
                                 (card.get('baseline'), baseline_name)):
    if model_card is None:
      continue
    model_rows = evaluation.card_rows(model_card, {
        'model': model_name, 'method': model_card['method'],
        'dataset': dataset_label})
    rows += model_rows
    writer = summaries.open_writer(summaries.run_dir(
        _WORKDIR.value, dataset_label, model_name,
        f"evaluate_{config.attack.protocol}"))
    summaries.attack_rows(writer, model_rows)
    writer.close()
  frame = pd.DataFrame(rows)
  reports.write_table(frame, os.path.join(_WORKDIR.value, 'evaluation'))
  for model_card in (card, card.get('baseline')):
    if model_card is None:
      continue
    print(f"{model_card['model']}: clean accuracy "
          f"{model_card['clean_accuracy']:.3f}, NLL {model_card['nll']:.3f}, "
          f"ECE {model_card['ece']:.3f}, Brier {model_card['brier']:.3f}")
    for entry in model_card['robust']:
      bound = ('not available' if entry['certified'] is None
               else f"{entry['certified']:.3f}")
      print(f"  eps {entry['eps']:g}: attacked {entry['accuracy']:.3f}, "
            f"certified {bound}: {entry['status']}")
  failed = sorted({f['name'] for f in card['checks'] if not f['passed']})
  print('Checks failed: ' + (', '.join(failed) if failed else 'none'))
  print(f"Wall time {card['wall_seconds']:.1f} s")
  print(f"\nCard: {os.path.abspath(os.path.join(_WORKDIR.value, 'card.md'))}")
  print('TensorBoard: tensorboard --logdir '
        f"{os.path.abspath(os.path.join(_WORKDIR.value, 'tensorboard'))}")


if __name__ == '__main__':
  app.run(main)
