r"""Speed against a peer: ESS per hour of our NUTS and NumPyro's, one run.

  nice -n 10 python binaries/peer.py --config=configs/peer.py:cpu \
      --workdir=docs/evidence/peer_numpyro

Needs the benchmark extra (`pip install -e ".[benchmark]"`: jax[cpu],
numpyro). Samples one target (configs/peer.py) with our sampler through
`tfp_robust.fit.hmc.fit` and with NumPyro's NUTS, side by side, after
checking that the two log-joints and their gradients agree at the same
weights (`tfp_robust.experiments.peer`). Writes to --workdir:

  peer.json      every figure of both runs, their ratios and the factors
                 of the difference, the same-target check, the machine;
  peer.md        the same as a table, and where the difference comes from;
  evidence.json  the command, config and commit, and the headline values
                 located in peer.json (`tfp_robust.reports.evidence`).
"""

import _quiet  # pylint: disable=unused-import  # First: quiets TensorFlow.
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from tfp_robust.core import files

from tfp_robust.core import locks

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'The comparison\'s config (configs/peer.py:cpu or :tiny).')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir/peer', 'Output directory.')
flags.mark_flags_as_required(['config'])

CLAIM = 'peer_numpyro'
# Headline values of evidence.json: name -> key path in peer.json.
_VALUES = {
    f'{side}_{name}': [side, name]
    for side in ('ours', 'numpyro')
    for name in ('fn_bulk_ess_min_per_hour', 'fn_bulk_ess_median_per_hour',
                 'logjoint_bulk_ess_per_hour',
                 'fn_bulk_ess_median_per_kept_hour', 'leapfrogs_per_draw',
                 'gradient_evaluations_per_second', 'seconds_per_leapfrog',
                 'warm_up_seconds', 'sampling_seconds')}
_VALUES.update({
    f'ratio_{name}': ['ours_over_numpyro', name]
    for name in ('fn_bulk_ess_median_per_hour',
                 'fn_bulk_ess_median_per_kept_hour',
                 'fn_bulk_ess_median_per_draw', 'leapfrogs_per_draw',
                 'seconds_per_leapfrog', 'gradient_alone', 'sampler_overhead')})
_VALUES.update(value_rel_gap=['same_target', 'value_rel_gap'],
               gradient_rel_gap=['same_target', 'gradient_rel_gap'])


def main(argv):
  del argv
  config, workdir = _CONFIG.value, _WORKDIR.value
  from tfp_robust.experiments import peer  # pylint: disable=g-import-not-at-top
  peer.check(config, deep=False)  # Before TensorFlow does anything.
  peer.peer_numpyro.require()  # Before any work: the extra is installed.
  locks.start_run(workdir)
  import sys  # pylint: disable=g-import-not-at-top
  from tfp_robust.reports import evidence  # pylint: disable=g-import-not-at-top
  from tfp_robust.reports import tables  # pylint: disable=g-import-not-at-top
  report = peer.run(config)
  command = ['python', 'binaries/peer.py'] + sys.argv[1:]
  report.update(command=' '.join(command), config=config.to_dict(),
                commit=files.code_version())
  tables.write_json(os.path.join(workdir, 'peer.json'), report)
  files.write_text_atomically(os.path.join(workdir, 'peer.md'),
                              peer.markdown(report))
  evidence.write(workdir, CLAIM, ['peer.json', 'peer.md'],
                 {name: {'file': 'peer.json', 'key': keys}
                  for name, keys in _VALUES.items()}, config, command=command,
                 commit=report['commit'])
  ratio = report['ours_over_numpyro']
  logging.info('Peer: done.')
  print(peer.markdown(report))
  print(f"ESS per hour, ours / NumPyro's: "
        f"{ratio['fn_bulk_ess_median_per_hour']:.3g} (all wall time), "
        f"{ratio['fn_bulk_ess_median_per_kept_hour']:.3g} (kept phase)")
  print(f'Files: {os.path.abspath(workdir)}')


if __name__ == '__main__':
  app.run(main)
