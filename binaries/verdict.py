r"""The claims table, rebuilt from the evidence files; `--check` for CI.

  python binaries/verdict.py            # writes the table into BUILD_NOTES.md
  python binaries/verdict.py --check    # exit 1 on any disagreement

The table's template is `docs/evidence/claims.md`: prose with
`{{claim:value}}` placeholders, each rendered as the value read from its
claim's files (`tfp_robust.evidence`), linked to them; a value whose file is
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

from tfp_robust import evidence
from tfp_robust import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = '<!-- claims:begin -->', '<!-- claims:end -->'
VERDICT = ('<!-- verdict:begin -->', '<!-- verdict:end -->')
TEMPLATE = os.path.join('docs', 'evidence', 'claims.md')
DOCUMENTS = ('README.md', 'BUILD_NOTES.md')

_CHECK = flags.DEFINE_bool('check', False,
                           'Compare instead of writing; exit 1 on a mismatch.')
_REPO = flags.DEFINE_string('repo', REPO, 'The repository root.')


def rebuild(repo):
  """The claims table rendered from the evidence, and what is pending."""
  with open(os.path.join(repo, TEMPLATE)) as f:
    return evidence.render(f.read(), os.path.join(repo, evidence.ROOT))


def evidence_problems(repo):
  """Every claim whose evidence.json or values cannot be read."""
  root = os.path.join(repo, evidence.ROOT)
  problems = []
  for claim in sorted(os.listdir(root)):
    directory = os.path.join(root, claim)
    if os.path.isfile(os.path.join(directory, evidence.EVIDENCE_FILE)):
      try:
        evidence.read_values(directory)
      except (evidence.EvidenceError, ValueError, OSError) as error:
        problems.append(f'{os.path.relpath(directory, repo)}: {error}')
  return problems


def table_mismatches(repo, table):
  """Lines of BUILD_NOTES.md's claims table that differ from the rebuild."""
  path = os.path.join(repo, 'BUILD_NOTES.md')
  with open(path) as f:
    text = f.read()
  try:
    current = evidence.region(text, BEGIN, END).split('\n')
  except evidence.EvidenceError as error:
    return [f'BUILD_NOTES.md: {error}']
  start = text.split('\n').index(BEGIN) + 2
  wanted = table.rstrip('\n').split('\n')
  found = []
  for i in range(max(len(current), len(wanted))):
    have = current[i] if i < len(current) else '<missing>'
    want = wanted[i] if i < len(wanted) else '<nothing>'
    if have != want:
      found.append(f'BUILD_NOTES.md:{start + i}: the claims table differs '
                   f'from the rebuild (run python binaries/verdict.py):\n'
                   f'  has:  {have[:200]}\n  want: {want[:200]}')
  return found


def check(repo):
  """Every disagreement, one message each (empty: all agree)."""
  table, _ = rebuild(repo)
  problems = evidence_problems(repo) + table_mismatches(repo, table)
  for name in DOCUMENTS:
    mismatches = evidence.check_document(os.path.join(repo, name), repo,
                                         regions=[(BEGIN, END), VERDICT])
    problems += [str(m) for m in mismatches]
  return problems


def main(argv):
  del argv
  repo = _REPO.value
  if _CHECK.value:
    problems = check(repo)
    for problem in problems:
      print(problem)
    if problems:
      print(f'verdict: {len(problems)} disagreement(s) with the evidence.')
      sys.exit(1)
    print('verdict: the claims table and every tagged number agree with '
          'their files.')
    return
  table, pending = rebuild(repo)
  path = os.path.join(repo, 'BUILD_NOTES.md')
  with open(path) as f:
    text = f.read()
  files.write_text_atomically(path, evidence.replace_region(text, BEGIN, END,
                                                            table))
  print(f'verdict: wrote the claims table into {path}'
        + (f'; pending: {", ".join(pending)}' if pending else ''))


if __name__ == '__main__':
  app.run(main)
