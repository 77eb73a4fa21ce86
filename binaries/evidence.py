r"""Ties a finished `reproduce` step to its claim's evidence folder.

  python binaries/evidence.py --run_dir=/work/runs/reproduce_cpu \
      --claims=curves_mnist_cpu,curves_fashion_cpu

For each claim (`tfp_robust.reports.claims.CLAIMS`): copies the step's
output files and its marker from --run_dir into `<output>/<claim>/` and writes
`evidence.json` with the step's command, the config resolved at the step's
commit and the locator of every value (`tfp_robust.reports.claims`). Then
`python binaries/verdict.py` rebuilds the claims table from them.

A finished run that is not a reproduce step (a sampler comparison, a long
chain) is tied by its table instead:

  python binaries/evidence.py --table=/work/runs/samplers_strong/samplers.csv \
      --keys=target,variant --commit=5979cbf \
      --command="python binaries/samplers.py --config=configs/samplers.py:cpu \
          --config.strong=True --targets=halfmoons_long" \
      --claim_dir=docs/evidence/samplers_halfmoons_strong

copies the table, resolves the command's config at --commit (the commit the
run started from) and makes every numeric cell a value named by the row's
--keys and the column.
"""

import _quiet  # pylint: disable=unused-import  # First: quiets TensorFlow.
import os

from absl import app
from absl import flags

from tfp_robust.core import validate
from tfp_robust.reports import claims

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_RUN_DIR = flags.DEFINE_string('run_dir', None, 'The reproduce work '
                               'directory holding steps/<step>.json.')
_CLAIMS = flags.DEFINE_list('claims', None,
                            f'Claims to write, of {sorted(claims.CLAIMS)}.')
_TABLE = flags.DEFINE_string('table', None, 'A finished run\'s CSV table '
                             '(instead of --run_dir).')
_KEYS = flags.DEFINE_list('keys', None, 'With --table: the columns that '
                          'name a row, e.g. target,variant.')
_COMMAND = flags.DEFINE_string('command', None, 'With --table: the command '
                               'line that wrote it (with its --config=).')
_COMMIT = flags.DEFINE_string('commit', None, 'With --table: the commit the '
                              'run started from.')
_CLAIM_DIR = flags.DEFINE_string('claim_dir', None, 'With --table: the claim '
                                 'folder to write (docs/evidence/<claim>).')
_OUT = flags.DEFINE_string('output', os.path.join(REPO, 'docs', 'evidence'),
                           'Where the claim folders go.')


def _from_table():
  import shlex  # pylint: disable=g-import-not-at-top
  missing = [name for name, flag in (('--keys', _KEYS), ('--command', _COMMAND),
                                     ('--commit', _COMMIT),
                                     ('--claim_dir', _CLAIM_DIR))
             if not flag.value]
  if missing:
    raise app.UsageError(f'--table needs {", ".join(missing)} too (see '
                         '--helpfull).')
  import subprocess  # pylint: disable=g-import-not-at-top
  from tfp_robust.reports import evidence  # pylint: disable=g-import-not-at-top
  try:
    command = shlex.split(_COMMAND.value)
  except ValueError as error:
    raise app.UsageError(f'--command={_COMMAND.value!r} does not split into '
                         f'words ({error}); quote it as a shell would.') from None
  try:
    path = claims.from_table(REPO, _TABLE.value, _KEYS.value, command,
                             _COMMIT.value, _CLAIM_DIR.value)
  except evidence.EvidenceError as error:
    raise app.UsageError(f'--table/--keys: {error}') from None
  except validate.InvalidArgument as error:
    raise app.UsageError(str(error)) from None
  except subprocess.CalledProcessError as error:
    raise app.UsageError(
        f'--command={_COMMAND.value!r}: its config did not resolve at '
        f'--commit={_COMMIT.value} ({(error.stderr or "").strip()[-500:]}); '
        'give the command line the run used, with its --config=.') from None
  print(f'evidence: wrote {path}')


def main(argv):
  del argv
  if _TABLE.value:
    return _from_table()
  if not _RUN_DIR.value or not _CLAIMS.value:
    raise app.UsageError('--run_dir and --claims are required, e.g. '
                         '--run_dir=/work/runs/reproduce_cpu '
                         '--claims=curves_mnist_cpu.')
  unknown = [c for c in _CLAIMS.value if c not in claims.CLAIMS]
  if unknown:
    raise app.UsageError(f'--claims={",".join(unknown)} is unknown; choose '
                         f'from {",".join(sorted(claims.CLAIMS))}.')
  if not os.path.isdir(os.path.join(_RUN_DIR.value, 'steps')):
    raise app.UsageError(f'--run_dir={_RUN_DIR.value} has no steps/ folder; '
                         'give the --workdir of binaries/reproduce.py.')
  for claim in _CLAIMS.value:
    try:
      path = claims.from_step(REPO, _RUN_DIR.value, claim, _OUT.value)
    except validate.InvalidArgument as error:
      raise app.UsageError(str(error)) from None
    print(f'evidence: wrote {path}')


if __name__ == '__main__':
  app.run(main)
