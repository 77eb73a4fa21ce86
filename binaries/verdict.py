r"""The claims table, rebuilt from the evidence files; `--check` for CI.

  python binaries/verdict.py            # writes the table into BUILD_NOTES.md
  python binaries/verdict.py --check    # exit 1 on any disagreement

The table's template is `docs/evidence/claims.md`: prose with
`{{claim:value}}` placeholders, each rendered as the value read from its
claim's files (`tfp_robust.reports.evidence`), linked to them; a value whose file is
absent renders as "pending". The result goes between the
`<!-- claims:begin -->` and `<!-- claims:end -->` lines of BUILD_NOTES.md.

`--check` writes nothing and lists, one line each (document, line, number,
file, value), every disagreement: the table in BUILD_NOTES.md is not the
rebuild; a tagged number in README.md or BUILD_NOTES.md
(`[0.092](docs/evidence/<claim>/evidence.json#<value>)`) differs from its
file or cannot be read; an untagged decimal number inside the claims table
or the README's verdict (`<!-- verdict:begin -->` ... `<!-- verdict:end -->`);
an evidence file whose files were edited or whose values cannot be read.
"""

import _quiet  # pylint: disable=unused-import  # First: quiets TensorFlow.
import os
import sys

from absl import app
from absl import flags

from tfp_robust.reports import evidence
from tfp_robust.core import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CHECK = flags.DEFINE_bool('check', False,
                           'Compare instead of writing; exit 1 on a mismatch.')
_REPO = flags.DEFINE_string('repo', REPO, 'The repository root.')


def main(argv):
  del argv
  repo = _REPO.value
  if _CHECK.value:
    problems = evidence.check_repository(repo)
    for problem in problems:
      print(problem)
    if problems:
      print(f'verdict: {len(problems)} disagreement(s) with the evidence.')
      sys.exit(1)
    print('verdict: the claims table and every tagged number agree with '
          'their files.')
    return
  table, pending = evidence.rebuild_table(repo)
  path = os.path.join(repo, evidence.NOTES)
  with open(path) as f:
    text = f.read()
  files.write_text_atomically(path, evidence.replace_region(
      text, evidence.BEGIN, evidence.END, table))
  print(f'verdict: wrote the claims table into {path}'
        + (f'; pending: {", ".join(pending)}' if pending else ''))


if __name__ == '__main__':
  app.run(main)
