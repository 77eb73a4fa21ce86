"""Claims tied to their files: `binaries/verdict.py --check` and the evidence.

The repository's own README and BUILD_NOTES are checked against the files
under `docs/evidence/`; copies of them, changed one way at a time, show that
each kind of disagreement fails the check.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tfp_robust.reports import evidence
from tfp_robust.core import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = '[0.092](docs/evidence/table1_mnist_cpu/evidence.json#hmc_pgd_expected)'


def _verdict(*args):
  return subprocess.run([sys.executable, 'binaries/verdict.py', *args],
                        cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture
def copy(tmp_path):
  """The documents and the evidence, copied: a repository to break."""
  for name in evidence.DOCUMENTS:
    shutil.copy(os.path.join(REPO, name), tmp_path / name)
  shutil.copytree(os.path.join(REPO, evidence.ROOT), tmp_path / evidence.ROOT)
  return tmp_path


def _edit(path, old, new):
  text = path.read_text()
  assert old in text, old
  path.write_text(text.replace(old, new, 1))


def test_check_passes_on_the_repository_and_fails_on_a_changed_number(copy):
  result = _verdict('--check')
  assert result.returncode == 0, result.stdout + result.stderr
  assert evidence.check_repository(REPO) == []
  # The README's verdict says the paper's PGD leaves HMC 0.092: say 0.093.
  _edit(copy / 'README.md', TAG, TAG.replace('[0.092]', '[0.093]'))
  result = _verdict('--check', f'--repo={copy}')
  assert result.returncode == 1
  line = next(i for i, text in enumerate(
      (copy / 'README.md').read_text().split('\n'), 1) if '[0.093]' in text)
  assert (f"README.md:{line}: '0.093' against docs/evidence/table1_mnist_cpu/"
          'evidence.json#hmc_pgd_expected = 0.092') in result.stdout


def test_the_rendered_table_is_at_the_top_of_build_notes_and_alone():
  with open(os.path.join(REPO, evidence.NOTES)) as f:
    notes = f.read()
  assert notes.count(evidence.BEGIN) == 1 and notes.count(evidence.END) == 1
  assert notes.index(evidence.BEGIN) < notes.index('## Design')
  assert notes.count('| paper\'s claim') == 1  # One claims table.
  for name in evidence.DOCUMENTS:
    with open(os.path.join(REPO, name)) as f:
      assert 'session' not in f.read().lower(), name


def test_an_edited_table_a_loose_number_and_an_edited_file_each_fail(copy):
  notes = copy / evidence.NOTES
  # A number in the table changed by hand, not through its file.
  _edit(notes, '[0.002](docs/evidence/table1_mnist_cpu/evidence.json'
        '#hmc_worst_case)', '[0.2](docs/evidence/table1_mnist_cpu/'
        'evidence.json#hmc_worst_case)')
  problems = evidence.check_repository(str(copy))
  assert any('the claims table is not the rebuild' in p for p in problems)
  assert any("'0.2' against" in p for p in problems)
  # A claim written into the README's verdict without a tag.
  _edit(copy / 'README.md', '<!-- verdict:end -->',
        'HMC keeps 0.97 after all.\n<!-- verdict:end -->')
  problems = evidence.check_repository(str(copy))
  assert any("'0.97'" in p and 'without a tag' in p for p in problems)
  # An output file edited after its evidence was written.
  summary = copy / evidence.ROOT / 'table1_mnist_cpu' / 'summary_strong.csv'
  summary.write_text(summary.read_text().replace('0.0020000000949949026',
                                                 '0.5'))
  problems = evidence.check_repository(str(copy))
  assert any('summary_strong.csv' in p and 'SHA-256' in p for p in problems)


def test_the_mixed_posterior_row_is_pending_until_its_file_exists(copy):
  mixed = copy / evidence.ROOT / 'mixed_mnist'
  shutil.rmtree(mixed, ignore_errors=True)
  table, pending = evidence.rebuild_table(str(copy))
  assert 'mixed_mnist:fn_split_rhat_max' in pending
  mixed.mkdir()
  figures = {'fn_split_rhat_max': 1.0712, 'fn_split_rhat_median': 1.01,
             'logjoint_split_rhat': 1.04, 'logjoint_trend_z': 0.5,
             'fn_bulk_ess_min': 143.2, 'num_draws': 4500}
  (mixed / 'diagnostics.json').write_text(json.dumps(figures))
  evidence.write(str(mixed), 'mixed_mnist', ['diagnostics.json'],
                 {k: {'file': 'diagnostics.json', 'key': [k]}
                  for k in figures}, {'hmc': {'num_results': 4500}},
                 command=['python', 'binaries/mixing.py'], commit='test')
  table, pending = evidence.rebuild_table(str(copy))
  assert pending == []
  assert ('[1.071](docs/evidence/mixed_mnist/evidence.json'
          '#fn_split_rhat_max)') in table
  # The table in the notes is now stale; rebuilding it makes --check pass.
  assert evidence.check_repository(str(copy))
  notes = copy / evidence.NOTES
  notes.write_text(evidence.replace_region(
      notes.read_text(), evidence.BEGIN, evidence.END, table))
  problems = evidence.check_repository(str(copy))
  # Only the documents' own tags of the real run disagree with the test's
  # figures; the table itself is the rebuild.
  assert not [p for p in problems if 'claims table is not the rebuild' in p]


def _claim(parent):
  directory = parent / 'claim'
  directory.mkdir(parents=True)
  (directory / 'rows.csv').write_text(
      'method,eps,acc\nhmc,0.1,0.0920000001\nvi,0.1,0.222\nvi,0.2,0.1\n')
  (directory / 'run.json').write_text(json.dumps(
      {'extra': {'seconds': 1204.0}}))
  values = {
      'hmc': {'file': 'rows.csv', 'row': {'method': 'hmc'}, 'column': 'acc'},
      'vi_low': {'file': 'rows.csv', 'row': {'method': 'vi'}, 'column': 'acc',
                 'aggregate': 'min'},
      'minutes': {'file': 'run.json', 'key': ['extra', 'seconds'],
                  'scale': 1 / 60},
      'ratio': {'op': 'ratio', 'of': ['hmc', 'vi_low']}}
  evidence.write(str(directory), 'claim', ['rows.csv', 'run.json'], values,
                 {'eps': 0.1}, command=['python', 'binaries/x.py'])
  return directory


def test_values_are_read_from_the_files_a_command_wrote(tmp_path):
  directory = _claim(tmp_path)
  written = json.loads((directory / evidence.EVIDENCE_FILE).read_text())
  assert written['commit'] == files.code_version()
  assert written['config'] == {'eps': 0.1}
  assert written['files']['rows.csv'] == files.sha256_file(
      str(directory / 'rows.csv'))
  assert '0.092' not in json.dumps(written)  # Located, never copied.
  values = evidence.read_values(str(directory))
  assert values['hmc'] == pytest.approx(0.092)
  assert values['vi_low'] == pytest.approx(0.1)
  assert values['minutes'] == pytest.approx(1204.0 / 60)
  assert values['ratio'] == pytest.approx(0.92)
  # The number comes from the file each time, never from a copy.
  (directory / 'rows.csv').write_text('method,acc\nhmc,0.5\n')
  with pytest.raises(evidence.EvidenceError, match='SHA-256'):
    evidence.read_values(str(directory))


def test_write_refuses_a_value_it_cannot_read_before_writing(tmp_path):
  directory = tmp_path / 'claim'
  directory.mkdir()
  (directory / 'rows.csv').write_text('method,acc\nhmc,0.1\nhmc,0.2\n')
  for locator, problem in (
      ({'file': 'rows.csv', 'row': {'method': 'hmc'}, 'column': 'acc'},
       '2 rows'),
      ({'file': 'rows.csv', 'row': {'method': 'vi'}, 'column': 'acc'},
       'no row'),
      ({'file': 'rows.csv', 'row': {}, 'column': 'loss', 'aggregate': 'max'},
       'no column'),
      ({'file': 'other.csv', 'column': 'acc'}, 'not among the files')):
    with pytest.raises(evidence.EvidenceError, match=problem):
      evidence.write(str(directory), 'claim', ['rows.csv'], {'x': locator},
                     {})
  assert not (directory / evidence.EVIDENCE_FILE).exists()


def test_a_command_table_becomes_a_claim_cell_by_cell(tmp_path):
  table = tmp_path / 'summary_strong.csv'
  table.write_text('method,samples,clean_acc,apgd_ce+dlr_acc,pgd_expected_acc@0.1\n'
                   'hmc,250,0.908,0.28,\nsgd,1,0.9,0.01,0.02\n')
  directory = tmp_path / 'docs' / 'evidence' / 'strong_claim'
  evidence.write_table(str(directory), str(table), ('method',),
                       ('clean_acc', 'apgd_ce+dlr_acc', 'pgd_expected_acc@0.1'),
                       {'eps': 0.1}, command=['attack.py'])
  values = evidence.read_values(str(directory))
  # Every filled cell by row and column (a blank cell is no value), read
  # back from the copy in the claim folder.
  assert values == pytest.approx({
      'hmc_clean_acc': 0.908, 'hmc_apgd_ce+dlr_acc': 0.28,
      'sgd_clean_acc': 0.9, 'sgd_apgd_ce+dlr_acc': 0.01,
      'sgd_pgd_expected_acc_0.1': 0.02})
  written = json.loads((directory / evidence.EVIDENCE_FILE).read_text())
  assert written['claim'] == 'strong_claim'
  assert written['command'] == ['attack.py']
  assert evidence.read_tag(str(tmp_path / 'docs' / 'evidence'), 'strong_claim',
                           'evidence.json', 'hmc_apgd_ce+dlr_acc') == (
                               pytest.approx(0.28))
  # Rows that the keys cannot tell apart, or a missing column, are refused.
  table.write_text('method,clean_acc\nhmc,0.9\nhmc,0.8\n')
  with pytest.raises(evidence.EvidenceError, match='two rows share'):
    evidence.write_table(str(tmp_path / 'other'), str(table), ('method',),
                         ('clean_acc',), {})
  with pytest.raises(evidence.EvidenceError, match='lacks the columns'):
    evidence.write_table(str(tmp_path / 'other'), str(table), ('method',),
                         ('worst_acc',), {})
  assert not (tmp_path / 'other' / evidence.EVIDENCE_FILE).exists()
  # Cells whose joined names collide are refused, not one silently lost.
  table.write_text('target,variant,acc\nhalfmoons,long_nuts,0.1\n'
                   'halfmoons_long,nuts,0.2\n')
  with pytest.raises(evidence.EvidenceError, match='both name the value'):
    evidence.write_table(str(tmp_path / 'other'), str(table),
                         ('target', 'variant'), ('acc',), {})
  # A rewrite that fails leaves the folder's good claim as it was: the
  # table and its digest are replaced together or not at all.
  before = {p.name: p.read_bytes() for p in directory.iterdir()}
  table.write_text('method,clean_acc\nhmc,0.7\nsgd,high\n')
  with pytest.raises(evidence.EvidenceError):
    evidence.write_table(str(directory), str(table), ('method',),
                         ('clean_acc',), {})
  assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
  assert evidence.read_values(str(directory))['hmc_clean_acc'] == (
      pytest.approx(0.908))


@pytest.mark.parametrize('shown,value,agrees', [
    ('0.092', 0.0920000001, True), ('0.09', 0.092, True),
    ('0.093', 0.092, False), ('97.5%', 0.9752, True), ('97.5%', 0.98, False),
    ('1,288', 1288.0, True), ('20.1', 1204.0 / 60, True),
    ('-0.45', -0.4488, True), ('pending', 0.1, False)])
def test_a_shown_number_agrees_when_it_is_the_value_rounded(shown, value,
                                                            agrees):
  assert evidence.agrees(shown, value) == agrees


def test_a_document_is_checked_tag_by_tag(tmp_path):
  _claim(tmp_path / 'docs' / 'evidence')
  document = tmp_path / 'NOTES.md'
  document.write_text(
      'PGD leaves [0.092](docs/evidence/claim/evidence.json#hmc).\n'
      '<!-- b -->\n'
      'Tagged [0.09](docs/evidence/claim/evidence.json#hmc), at `eps 0.1`,\n'
      'but 0.5 is loose and [0.3](docs/evidence/claim/evidence.json#nope).\n'
      '<!-- e -->\n'
      'Outside the region 0.7 needs no tag.\n')
  found = evidence.check_document(str(document), str(tmp_path),
                                  regions=[('<!-- b -->', '<!-- e -->')])
  assert [(m.line, m.number) for m in found] == [(4, '0.3'), (4, '0.5')]
  assert 'no value' in found[0].problem and 'without a tag' in found[1].problem
