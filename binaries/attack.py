r"""Tables 1 and 2 of the paper: attacks on posterior ensembles.

  python binaries/attack.py --config=configs/table1.py:cpu --workdir=workdir/table1

One command: methods without a saved ensemble in --workdir are trained first
(as binaries/train.py would), then all are attacked.

Every ensemble is attacked and evaluated with the same samples (the first
`attack.num_samples`) on the first `attack.num_points` test images. Writes
<workdir>/<dataset>/attacks_<protocol>.{csv,md} (all rows, with the checks
each evaluation failed) and summary_<protocol>.{csv,md}, and checks.md: the
sanity checks of `tfp_robust.evaluation.checks` on --check_points images (gradient
masking, attacks weaker than noise or than gradient-free ones, the paper's
attack against APGD and Square). --config.attack.protocol=paper|strong picks
the protocol (see tfp_robust/evaluation/protocols.py).

Resumable: each method's rows are kept in
<workdir>/<dataset>/<method>/attacks_<protocol>.json as soon as it is done,
so the same command after a kill starts at the next method (a method whose
config or trained ensemble changed since is evaluated again).

--evidence_dir=docs/evidence/<claim> also copies summary_<protocol>.csv
into that claim folder with its evidence.json (command, config, commit, and
every figure of the summary by method), so the rows become claims that
`binaries/verdict.py --check` holds the documents to.

--print_config lists every config field (set one with --config.<field>=<value>)
and exits before TensorFlow is imported.
"""

import _quiet  # pylint: disable=unused-import  # First: quiet TF, --print_config.
import _experiment
import os

from absl import app
from absl import flags

from tfp_robust.core import validate

_CHECK_POINTS = flags.DEFINE_integer(
    'check_points', 100, 'Test points for the gradient-masking checks '
    '(checks.md); 0 skips them.')
_EVIDENCE = flags.DEFINE_string(
    'evidence_dir', None, 'Also copy the summary table into this claim '
    'folder (docs/evidence/<claim>) and write its evidence.json.')


def main(argv):
  del argv
  validate.integer('--check_points', _CHECK_POINTS.value, 0,
                   fix='0 skips the checks.')
  version = _experiment.evidence_version('--evidence_dir', _EVIDENCE.value)
  config, methods, workdir = _experiment.start()
  # pylint: disable=g-import-not-at-top  # Heavy: after the checks.
  from tfp_robust.experiments import paper as experiments
  from tfp_robust.reports import tables as reports
  frame, summary = experiments.attack_saved(config, methods, workdir)
  out = os.path.join(workdir, config.dataset)
  protocol = config.attack.protocol
  reports.write_table(frame, os.path.join(out, f'attacks_{protocol}'))
  reports.write_table(summary, os.path.join(out, f'summary_{protocol}'))
  print(summary.to_string(index=False, float_format=lambda v: f'{v:.3f}'))
  if _EVIDENCE.value:
    import sys  # pylint: disable=g-import-not-at-top
    from tfp_robust.reports import evidence  # pylint: disable=g-import-not-at-top
    path = evidence.write_table(
        _EVIDENCE.value, os.path.join(out, f'summary_{protocol}.csv'),
        keys=('method',),
        columns=[c for c in summary.columns if c not in ('method', 'samples')],
        config=config,
        command=['python', 'binaries/attack.py'] + sys.argv[1:],
        commit=version)  # The code that ran, read when it started.
    print(f'Evidence: {path}')
  if _CHECK_POINTS.value:
    report = experiments.check_saved(config, methods, workdir,
                                     _CHECK_POINTS.value)
    reports.write_text(os.path.join(out, 'checks.md'), report)
    print(report)
  print(f'\nTables: {os.path.abspath(out)}')
  print('TensorBoard: tensorboard --logdir '
        f"{os.path.abspath(os.path.join(workdir, 'tensorboard'))}")


if __name__ == '__main__':
  app.run(main)
