r"""Has an HMC run mixed? Its diagnostics, and their trajectory over compute.

  python binaries/mixing.py --config=configs/mixed_mnist.py:train_1k \
      --workdir=workdir/mixed_mnist_1k [--out=docs/evidence/mixed_mnist]

Reads the kept draws checkpointed so far in
<workdir>/<dataset>/hmc/hmc_checkpoint (run it while binaries/train.py is
still sampling, or after), predicts the class probabilities of every draw at
the first `config.diagnostic_points` test images, and judges them by
`config.mixing` (`tfp_robust.fit.mcmc.mixing`: rank-normalised split R-hat and
bulk ESS from ArviZ, the log-joint's split R-hat and trend). Writes to --out
(default <workdir>/<dataset>/hmc/mixing):

  diagnostics.json  the figures on every draw so far (`fn_split_rhat_max`,
                    `logjoint_split_rhat`, `fn_bulk_ess_min`, ...), `mixed`,
                    the criteria failed, and the command, config and commit;
  trajectory.{csv,md}, trajectory.png
                    the same after each segment, against compute.
"""

import _quiet  # pylint: disable=unused-import  # First: quiets TensorFlow.
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from tfp_robust.core import config_checks
from tfp_robust.core import files

_CONFIG = config_flags.DEFINE_config_file('config', None,
                                          'Experiment config (file:variant).')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir', 'Work directory of the '
                               'HMC run (as given to binaries/train.py).')
_OUT = flags.DEFINE_string('out', '', 'Output directory (default '
                           '<workdir>/<dataset>/hmc/mixing).')
flags.mark_flags_as_required(['config'])


# The figures of diagnostics.json that the claims table reads.
_EVIDENCE_KEYS = ('fn_split_rhat_max', 'fn_split_rhat_median',
                  'fn_split_rhat_over', 'fn_bulk_ess_min', 'fn_bulk_ess_median',
                  'fn_tail_ess_min', 'fn_fraction_varying',
                  'logjoint_split_rhat', 'logjoint_bulk_ess',
                  'logjoint_trend_z', 'num_draws', 'num_chains',
                  'test_accuracy', 'sampler_seconds')

_TRAJECTORY_KEYS = ('fn_split_rhat_max', 'fn_split_rhat_over',
                    'fn_bulk_ess_min', 'logjoint_split_rhat',
                    'logjoint_trend_z', 'kept_chain_leapfrogs', 'seconds')


def main(argv):
  del argv
  config = _CONFIG.value
  config_checks.check(config, ['hmc'])
  if 'mixing' not in config:
    raise ValueError('--config has no `mixing` section (the criteria: '
                     'split_rhat, bulk_ess, trend_z); use '
                     'configs/mixed_mnist.py or add one.')
  run_dir = os.path.join(_WORKDIR.value, config.dataset, 'hmc')
  checkpoint_dir = os.path.join(run_dir, 'hmc_checkpoint')
  out = _OUT.value or os.path.join(run_dir, 'mixing')

  import pandas as pd  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import fitting  # pylint: disable=g-import-not-at-top
  from tfp_robust.reports import plots  # pylint: disable=g-import-not-at-top
  from tfp_robust.reports import tables as reports  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit.mcmc import mixing  # pylint: disable=g-import-not-at-top
  from tfp_robust.reports import evidence  # pylint: disable=g-import-not-at-top

  params, log_joint, num_segments = mixing.read_segments(checkpoint_dir)
  dataset = fitting.load_dataset_for(config, 'hmc')
  architecture = fitting.architecture_from_config(
      config.hmc, dataset.input_shape, dataset.num_classes)
  x = dataset.x_test[:int(config.diagnostic_points)]
  logging.info('Mixing: %d draws x %d chains from %d segments, class '
               'probabilities at %d test images.', log_joint.shape[0],
               log_joint.shape[1], num_segments, len(x))
  probs = mixing.class_probabilities(architecture, params, x)
  criteria = dict(config.mixing)
  timings = _timings(checkpoint_dir)
  rows = mixing.trajectory(probs, log_joint, int(config.hmc.segment_size),
                           criteria, timings)
  final = mixing.report(probs, log_joint, criteria)
  final.update(
      criteria=criteria, segments=num_segments,
      planned_segments=-(-int(config.hmc.num_results) //
                         int(config.hmc.segment_size)),
      sampler_seconds=rows[-1]['seconds'] if rows else None,
      test_accuracy=float((probs.mean(axis=(0, 1)).argmax(-1) ==
                           dataset.y_test[:len(x)]).mean()),
      command=' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
      config=config.to_dict(), commit=files.code_version())
  os.makedirs(out, exist_ok=True)
  reports.write_json(os.path.join(out, 'diagnostics.json'), final)
  frame = pd.DataFrame([{k: v for k, v in row.items() if k != 'failed'}
                        for row in rows])
  reports.write_table(frame, os.path.join(out, 'trajectory'))
  if len(frame):
    reports.save_figure(plots.mixing_trajectory(frame, criteria),
                        os.path.join(out, 'trajectory.png'))
  # The evidence of the claim named by the output folder
  # (docs/evidence/mixed_mnist): every figure read back from the files.
  # A figure a run too short cannot give (NaN: a trend from one segment,
  # an R-hat from fewer than 4 draws) is no value to claim: left out.
  values = {key: {'file': 'diagnostics.json', 'key': [key]}
            for key in _EVIDENCE_KEYS if evidence.finite_number(final[key])}
  for row in rows:  # The trajectory against compute, point by point.
    for key in _TRAJECTORY_KEYS:
      if evidence.finite_number(row[key]):
        values[f"{key}_at_{row['num_draws']}"] = {
            'file': 'trajectory.csv', 'row': {'num_draws': row['num_draws']},
            'column': key}
  evidence.write(out, os.path.basename(os.path.normpath(out)),
                 ['diagnostics.json', 'trajectory.csv'], values, config,
                 command=['python', 'binaries/mixing.py'] + sys.argv[1:])
  verdict = 'MIXED' if final['mixed'] else 'not mixed: ' + '; '.join(
      final['failed'])
  print(f"{num_segments} segments, {final['num_draws']} draws x "
        f"{final['num_chains']} chains: fn split R-hat max "
        f"{final['fn_split_rhat_max']:.3f}, log-joint split R-hat "
        f"{final['logjoint_split_rhat']:.3f}, fn bulk ESS min "
        f"{final['fn_bulk_ess_min']:.1f}, trend {final['logjoint_trend_z']:.2f}"
        f" MCSE -> {verdict}")
  print(f'Files: {os.path.abspath(out)}')


def _timings(checkpoint_dir):
  """The run's measured phase times (`timings.json`), or none."""
  import json  # pylint: disable=g-import-not-at-top
  path = os.path.join(checkpoint_dir, 'timings.json')
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      value = json.load(f)
    return value if isinstance(value, dict) else None
  except (OSError, ValueError):
    logging.warning('Mixing: ignoring the unreadable %s.', path)
    return None


if __name__ == '__main__':
  app.run(main)
