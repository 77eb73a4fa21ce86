r"""Does a posterior saturate its softmax? The replay's measurements, as a command.

  python binaries/saturation.py --config=configs/table1.py:cpu \
      --workdir=workdir/table1 --methods=hmc,hmc_original

For each saved posterior (methods without one are trained first, as the
other experiment binaries do) and for prior draws of dense nets of each
width in --prior_widths (N(0, prior_scale) on every weight and bias, the
paper's prior, and uniform(-2, 2) on every parameter, Pyro's start of the
original code), on the first --points test images: the median top-2 logit
gap of the (sample, image) pairs, the share above 87.3 (where the float32
softmax is one-hot and every loss on probabilities has an exactly zero
gradient), the share of images with an exactly zero expected- and
predictive-loss input gradient, and the first layer's weight spread
(`tfp_robust.evaluation.checks.saturation_statistics`). Writes
<workdir>/<dataset>/saturation.{csv,md}.
"""

import _quiet  # pylint: disable=unused-import  # First: quiets TensorFlow.
import _experiment
import os

from absl import app
from absl import flags

_WIDTHS = flags.DEFINE_list('prior_widths', ['128', '512', '1024'],
                            'Hidden widths of the prior-draw nets (784-w-10).')
_DRAWS = flags.DEFINE_integer('prior_draws', 20, 'Draws per prior net.')
_POINTS = flags.DEFINE_integer('points', 500, 'Test images measured.')
_EVIDENCE = flags.DEFINE_string(
    'evidence_dir', None, 'Also copy the table into this claim folder '
    '(docs/evidence/<claim>) and write its evidence.json: command, config, '
    'commit and every figure of the table by model '
    '(`reports.evidence.write_table`).')

# The table's figures that become evidence values, per model row.
_EVIDENCE_COLUMNS = ('saturated_frac', 'logit_gap_median',
                     'grad_zero_frac_expected', 'grad_zero_frac_predictive',
                     'weight_std')


def main(argv):
  del argv
  widths = [int(w) for w in _WIDTHS.value]  # A bad width fails here, early.
  version = _experiment.evidence_version('--evidence_dir', _EVIDENCE.value)
  config, methods, workdir = _experiment.start()
  import pandas as pd  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_robust.evaluation import checks  # pylint: disable=g-import-not-at-top
  from tfp_robust import ensemble as ensemble_lib  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import fitting  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import hmc  # pylint: disable=g-import-not-at-top
  from tfp_robust import networks  # pylint: disable=g-import-not-at-top
  from tfp_robust.reports import tables as reports  # pylint: disable=g-import-not-at-top

  dataset = fitting.load_dataset_for(config, methods[0])
  x, y = dataset.x_test[:_POINTS.value], dataset.y_test[:_POINTS.value]
  rows = []
  for method in methods:
    ensemble, _ = fitting.load_trained(config, method, workdir)
    rows.append(dict(model=method, samples=ensemble.num_samples,
                     **checks.saturation_statistics(ensemble, x, y)))
  scale = float(config.hmc.get('prior_scale', 1.0))
  for width in widths:
    architecture = networks.Architecture.mlp(784, [width], 10)
    seed = tf.constant([int(config.seed), width], tf.int32)
    normal = [scale * tf.random.stateless_normal(
        (_DRAWS.value,) + shape,
        tf.random.experimental.stateless_fold_in(seed, index))
              for index, (_, shape) in enumerate(architecture.param_shapes())]
    uniform = hmc.initial_network_state(architecture, _DRAWS.value, seed,
                                        'uniform')
    for name, params in ((f'N(0, {scale:g}) prior', normal),
                         ('uniform(-2, 2) start', uniform)):
      ensemble = ensemble_lib.ArchitectureEnsemble(architecture, params,
                                                   method='prior')
      rows.append(dict(model=f'784-{width}-10, {name}',
                       samples=_DRAWS.value,
                       **checks.saturation_statistics(ensemble, x, y)))
  frame = pd.DataFrame(rows)
  out = os.path.join(workdir, config.dataset, 'saturation')
  reports.write_table(frame, out)
  print(frame.to_string(index=False, float_format=lambda v: f'{v:.3f}'))
  print(f'\nTable: {os.path.abspath(out)}.md')
  if _EVIDENCE.value:
    import sys  # pylint: disable=g-import-not-at-top
    from tfp_robust.reports import evidence  # pylint: disable=g-import-not-at-top
    path = evidence.write_table(
        _EVIDENCE.value, out + '.csv', keys=('model',),
        columns=_EVIDENCE_COLUMNS, config=config,
        command=['python', 'binaries/saturation.py'] + sys.argv[1:],
        commit=version)
    print(f'Evidence: {path}')


if __name__ == '__main__':
  app.run(main)
