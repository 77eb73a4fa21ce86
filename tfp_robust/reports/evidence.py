"""Evidence files: every claimed number read from the file a command wrote.

`docs/evidence/<claim>/` holds the output files of the command that measured
a claim and `evidence.json`: {"claim", "command" (argv, or a list of them),
"config" (resolved, as a dict), "commit" (`files.code_version()`), "files"
(name -> SHA-256, checked on every read), "values" (name -> locator), and an
optional "note"}. A value is never copied, only located, so a rebuild shows
what the file holds. Locators:

    {"file": "x.csv", "row": {"method": "hmc"}, "column": "clean_acc"}
        (the one matching row, or "aggregate": "min" | "max" over them);
    {"file": "x.json", "key": ["a", "b"]};
    {"op": "ratio" | "min" | "max", "of": ["value name", ...]};

each with an optional "scale" (e.g. 1/60: seconds to minutes). Documents tag
a claimed number with a link to its value,
`[0.092](docs/evidence/table1_mnist_cpu/evidence.json#hmc_pgd_expected)`, or
to a top-level key of a JSON file of the claim
(`.../mixed_mnist/diagnostics.json#fn_split_rhat_max`); it agrees when it is
the value rounded to the digits shown. Commands write evidence with `write`;
`binaries/verdict.py` renders the claims table (`TEMPLATE`) into BUILD_NOTES
and checks the documents (`check_repository`).
"""

import csv
import dataclasses
import json
import math
import os
import re
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from tfp_robust.core import files as files_lib

EVIDENCE_FILE = 'evidence.json'
ROOT = os.path.join('docs', 'evidence')
TEMPLATE = os.path.join(ROOT, 'claims.md')  # The claims table, to render.
NOTES = 'BUILD_NOTES.md'  # Holds the rendered table between BEGIN and END.
DOCUMENTS = ('README.md', NOTES)
BEGIN, END = '<!-- claims:begin -->', '<!-- claims:end -->'
VERDICT = ('<!-- verdict:begin -->', '<!-- verdict:end -->')  # README's.
# A tagged number: [text](docs/evidence/<claim>/<file>#<name>).
TAG = re.compile(r'\[([^\]\n]*)\]\(docs/evidence/([A-Za-z0-9_.-]+)/'
                 r'([A-Za-z0-9_.-]+)#([A-Za-z0-9_.+/-]+)\)')
NUMBER = re.compile(r'^[-+]?(\d{1,3}(,\d{3})+|\d+)(\.(\d+))?(%?)$')
_OPS = ('ratio', 'min', 'max')


class EvidenceError(ValueError):
  """An evidence file or a value it names is missing, malformed or edited."""


@dataclasses.dataclass(frozen=True)
class Mismatch:
  """A tagged number that disagrees with its file (or cannot be read)."""
  document: str
  line: int
  number: str
  file: str
  value: Optional[float]
  problem: str

  def __str__(self):
    value = 'unreadable' if self.value is None else repr(self.value)
    return (f'{self.document}:{self.line}: {self.number!r} against '
            f'{self.file} = {value}: {self.problem}')


# -- reading ----------------------------------------------------------------

def _fail(path: str, problem: str):
  raise EvidenceError(f'{path}: {problem}')


def load(directory: str) -> Dict:
  """A claim's `evidence.json`, checked for shape and file digests."""
  path = os.path.join(directory, EVIDENCE_FILE)
  try:
    evidence = files_lib.read_json(path, 'an evidence description')
  except ValueError as error:
    raise EvidenceError(str(error)) from None
  missing = [key for key in ('claim', 'command', 'config', 'commit', 'files',
                             'values') if key not in evidence]
  if missing:
    _fail(path, f'it lacks {missing}; an evidence file names the claim, the '
          'command, config and commit that wrote its files, the files and '
          'the values read from them')
  for name, digest in evidence['files'].items():
    file_path = os.path.join(directory, name)
    if not os.path.isfile(file_path):
      _fail(path, f'its file {name!r} is missing')
    if files_lib.sha256_file(file_path) != digest:
      _fail(path, f'its file {name!r} was changed after the evidence was '
            'written (SHA-256 differs); rerun the command that writes it')
  return evidence


def _number(raw, where: str) -> float:
  try:
    value = float(raw)
  except (TypeError, ValueError):
    raise EvidenceError(f'{where}: {raw!r} is not a number') from None
  if not math.isfinite(value):
    raise EvidenceError(f'{where}: {raw!r} is not finite')
  return value


def _read_csv(path: str, locator: Mapping) -> float:
  with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
  wanted = {str(k): str(v) for k, v in locator.get('row', {}).items()}
  column = locator['column']
  matching = [row for row in rows
              if all(row.get(k) == v for k, v in wanted.items())]
  where = f'{path}, row {wanted}, column {column!r}'
  if not matching:
    _fail(path, f'no row has {wanted}')
  if column not in matching[0]:
    _fail(path, f'it has no column {column!r}')
  values = [_number(row[column], where) for row in matching]
  aggregate = locator.get('aggregate')
  if aggregate in ('min', 'max'):
    return min(values) if aggregate == 'min' else max(values)
  if len(values) != 1:
    _fail(path, f'{len(values)} rows have {wanted}; narrow the row or give '
          '"aggregate"')
  return values[0]


def _read_json_key(path: str, keys: Sequence[str]) -> float:
  value = files_lib.read_json(path)
  for key in keys:
    if not isinstance(value, dict) or key not in value:
      _fail(path, f'it has no key {list(keys)!r}')
    value = value[key]
  return _number(value, f'{path}, key {list(keys)!r}')


def read_locator(directory: str, locator: Mapping,
                 named: Optional[Mapping] = None) -> float:
  """The number a locator points at, in a claim's directory."""
  if 'op' in locator:
    if locator['op'] not in _OPS:
      _fail(directory, f'unknown op {locator["op"]!r}; known: {_OPS}')
    try:
      parts = [read_locator(directory, named[name], named)
               for name in locator['of']]
    except (KeyError, TypeError):
      raise EvidenceError(f'{directory}: op {locator} names a value that is '
                          'not defined') from None
    if locator['op'] == 'ratio':
      value = parts[0] / parts[1]
    else:
      value = min(parts) if locator['op'] == 'min' else max(parts)
  else:
    name = locator.get('file', '')
    path = os.path.join(directory, name)
    if not name or os.path.basename(name) != name or not os.path.isfile(path):
      _fail(directory, f'locator {dict(locator)} names no file in it')
    if name.endswith('.csv'):
      value = _read_csv(path, locator)
    elif name.endswith('.json'):
      value = _read_json_key(path, locator.get('key', []))
    else:
      _fail(path, 'values are read from .csv or .json files only')
  return value * float(locator.get('scale', 1.0))


def read_values(directory: str) -> Dict[str, float]:
  """Every value of a claim, read from its files (digests checked)."""
  evidence = load(directory)
  named = evidence['values']
  return {name: read_locator(directory, locator, named)
          for name, locator in named.items()}


def read_tag(root: str, claim: str, file: str, name: str) -> float:
  """The value a tag points at: an `evidence.json` value or a JSON key."""
  directory = os.path.join(root, claim)
  if file == EVIDENCE_FILE:
    evidence = load(directory)
    if name not in evidence['values']:
      _fail(os.path.join(directory, file), f'it defines no value {name!r}')
    return read_locator(directory, evidence['values'][name],
                        evidence['values'])
  return read_locator(directory, {'file': file, 'key': [name]})


# -- numbers as shown -------------------------------------------------------

def parse_shown(text: str) -> Optional[Tuple[float, int]]:
  """A number as a document shows it: (value, decimals), or None.

  `0.092`, `1,288`, `97.5%` (0.975, 3 decimals); None for anything else.
  """
  found = NUMBER.match(text.strip())
  if not found:
    return None
  decimals = len(found.group(4) or '')
  value = float(text.strip().rstrip('%').replace(',', ''))
  if found.group(5):
    return value / 100.0, decimals + 2
  return value, decimals


def agrees(text: str, value: float) -> bool:
  """Whether `text` shows `value` rounded to the digits it shows."""
  shown = parse_shown(text)
  if shown is None:
    return False
  number, decimals = shown
  return abs(number - value) <= 0.5 * 10.0 ** -decimals + 1e-9


def tag(claim: str, name: str, value: float, digits: int = 3,
        file: str = EVIDENCE_FILE) -> str:
  """A value as a tagged number, `[0.092](docs/evidence/...#name)`."""
  return f'[{value:,.{digits}f}](docs/evidence/{claim}/{file}#{name})'


# -- documents --------------------------------------------------------------

def _code_spans(line: str) -> str:
  return re.sub(r'`[^`]*`', lambda m: ' ' * len(m.group(0)), line)


def check_document(path: str, repo: str,
                   regions: Sequence[Tuple[str, str]] = ()) -> List[Mismatch]:
  """Every tagged number of a document against its file.

  Args:
    path: the Markdown document.
    repo: the repository root (tags are relative to it).
    regions: (begin, end) marker lines; inside them every decimal number
      must be tagged, or be a setting written in a code span.

  Returns:
    The mismatches, in document order (empty when all agree).
  """
  root = os.path.join(repo, ROOT)
  document = os.path.relpath(path, repo)
  found = []
  inside = False
  with open(path) as f:
    lines = f.read().split('\n')
  for number, line in enumerate(lines, 1):
    if any(line.strip() == begin for begin, _ in regions):
      inside = True
    elif any(line.strip() == end for _, end in regions):
      inside = False
    for match in TAG.finditer(line):
      text, claim, file, name = match.groups()
      where = f'docs/evidence/{claim}/{file}#{name}'
      try:
        value = read_tag(root, claim, file, name)
      except (EvidenceError, ValueError, OSError) as error:
        found.append(Mismatch(document, number, text, where, None,
                              str(error)))
        continue
      if not agrees(text, value):
        found.append(Mismatch(document, number, text, where, value,
                              'the document does not show the file\'s value'))
    if inside:
      untagged = _code_spans(TAG.sub(lambda m: ' ', line))
      for loose in re.finditer(r'(?<![\w.])\d+\.\d+%?', untagged):
        found.append(Mismatch(document, number, loose.group(0), '-', None,
                              'a number in a claims region without a tag '
                              '(tag it, or write a setting in a code span)'))
  return found


PLACEHOLDER = re.compile(r'\{\{([A-Za-z0-9_.-]+):([A-Za-z0-9_.+/#-]+)'
                         r'(?:\|(\d))?\}\}')


def render(template: str, root: str) -> Tuple[str, List[str]]:
  """A template's `{{claim:name}}` placeholders as tagged numbers.

  `{{claim:name|1}}` shows 1 decimal (3 by default); `{{claim:file.json#key}}`
  reads a top-level key of a JSON file in the claim's directory. A value
  whose file is absent renders as `pending`.

  Returns:
    The rendered text and the placeholders that rendered as pending.
  """
  pending = []
  cache = {}

  def value_of(claim, ref):
    file, name = (ref.split('#', 1) if '#' in ref else (EVIDENCE_FILE, ref))
    key = (claim, file, name)
    if key not in cache:
      if not os.path.isfile(os.path.join(root, claim, file)):
        cache[key] = None
      else:
        cache[key] = read_tag(root, claim, file, name)
    return file, name, cache[key]

  def substitute(match):
    claim, ref, digits = match.groups()
    file, name, value = value_of(claim, ref)
    if value is None:
      pending.append(f'{claim}:{ref}')
      return 'pending'
    return tag(claim, name, value, int(digits or 3), file)

  return PLACEHOLDER.sub(substitute, template), pending


def _markers(lines: List[str], begin: str, end: str) -> Tuple[int, int]:
  try:
    start = lines.index(begin)
    return start, lines.index(end, start)
  except ValueError:
    raise EvidenceError(f'the markers {begin!r} and {end!r} are not both in '
                        'the document, in that order') from None


def replace_region(text: str, begin: str, end: str, body: str) -> str:
  """`text` with the lines between the `begin` and `end` markers replaced."""
  lines = text.split('\n')
  start, stop = _markers(lines, begin, end)
  return '\n'.join(lines[:start + 1] + body.rstrip('\n').split('\n') +
                   lines[stop:])


# -- the repository: the claims table and the documents ---------------

def rebuild_table(repo: str) -> Tuple[str, List[str]]:
  """The claims table rendered from the evidence, and what is pending."""
  with open(os.path.join(repo, TEMPLATE)) as f:
    return render(f.read(), os.path.join(repo, ROOT))


def evidence_problems(repo: str) -> List[str]:
  """Every claim whose evidence.json or values cannot be read."""
  root = os.path.join(repo, ROOT)
  problems = []
  for claim in sorted(os.listdir(root)):
    directory = os.path.join(root, claim)
    if os.path.isfile(os.path.join(directory, EVIDENCE_FILE)):
      try:
        read_values(directory)
      except (ValueError, OSError) as error:
        problems.append(f'{os.path.relpath(directory, repo)}: {error}')
  return problems


def table_mismatches(repo: str, table: str) -> List[str]:
  """Lines of the claims table in BUILD_NOTES.md that are not the rebuild."""
  with open(os.path.join(repo, NOTES)) as f:
    lines = f.read().split('\n')
  try:
    start, stop = _markers(lines, BEGIN, END)
  except EvidenceError as error:
    return [f'{NOTES}: {error}']
  current, wanted = lines[start + 1:stop], table.rstrip('\n').split('\n')
  return [f'{NOTES}:{start + 2 + i}: the claims table is not the rebuild '
          '(run python binaries/verdict.py):\n'
          f'  has:  {(current + [""] * len(wanted))[i][:200]}\n'
          f'  want: {(wanted + [""] * len(current))[i][:200]}'
          for i in range(max(len(current), len(wanted)))
          if (current + [None] * len(wanted))[i] !=
          (wanted + [None] * len(current))[i]]


def check_repository(repo: str) -> List[str]:
  """Every disagreement, one message each (empty: all agree)."""
  problems = evidence_problems(repo)
  try:
    table, _ = rebuild_table(repo)
  except (ValueError, OSError) as error:
    problems.append(f'{TEMPLATE}: the claims table cannot be rebuilt: {error}')
  else:
    problems += table_mismatches(repo, table)
  for name in DOCUMENTS:
    mismatches = check_document(os.path.join(repo, name), repo,
                                regions=[(BEGIN, END), VERDICT])
    problems += [str(m) for m in mismatches]
  return problems


# -- writing ----------------------------------------------------------------

def config_dict(config) -> Dict:
  """A config as plain JSON: ml_collections, dataclasses or mappings."""
  if hasattr(config, 'to_dict'):
    config = config.to_dict()
  elif dataclasses.is_dataclass(config):
    config = dataclasses.asdict(config)
  return json.loads(json.dumps(config, default=str))


def _command(command):
  if command is None:
    return list(sys.argv)
  if isinstance(command, str):
    return command
  return [c if isinstance(c, str) else list(c) for c in command]


def write(directory: str, claim: str, files: Sequence[str],
          values: Mapping[str, Mapping], config,
          command: Optional[Sequence[str]] = None,
          commit: Optional[str] = None, note: Optional[str] = None) -> str:
  """Writes a claim's `evidence.json` atomically, after reading every value.

  Args:
    directory: `docs/evidence/<claim>` (or any directory holding the files).
    claim: the claim's name.
    files: the output files in `directory` the values are read from.
    values: value name -> locator (see the module docstring).
    config: the resolved config (ml_collections, dataclass or dict).
    command: the command line (a list, or a list of command lines run in
      order); `sys.argv` by default.
    commit: the code version; `files.code_version()` by default.
    note: optional provenance (e.g. where the files were copied from).

  Returns:
    The path written. Raises `EvidenceError` before writing anything when a
    value cannot be read from its file.
  """
  evidence = {
      'claim': claim,
      'command': _command(command),
      'config': config_dict(config),
      'commit': files_lib.code_version() if commit is None else commit,
      'files': {name: files_lib.sha256_file(os.path.join(directory, name))
                for name in files},
      'values': {name: dict(locator) for name, locator in values.items()},
  }
  if note:
    evidence['note'] = note
  for name, locator in evidence['values'].items():
    if 'file' in locator and locator['file'] not in evidence['files']:
      _fail(directory, f'value {name!r} reads {locator["file"]!r}, which is '
            'not among the files')
    read_locator(directory, locator, evidence['values'])
  path = os.path.join(directory, EVIDENCE_FILE)
  files_lib.write_text_atomically(path, json.dumps(evidence, indent=2) + '\n')
  return path


def _slug(text) -> str:
  """A value-name part: 'apgd_ce+dlr_acc' stays, '0.1' -> '0.1', spaces -> _."""
  return re.sub(r'[^A-Za-z0-9_.+-]+', '_', str(text)).strip('_')


def write_table(directory: str, table_csv: str, keys: Sequence[str],
                columns: Optional[Sequence[str]], config,
                command: Optional[Sequence[str]] = None,
                file_name: Optional[str] = None,
                commit: Optional[str] = None,
                note: Optional[str] = None) -> str:
  """Copies a command's CSV table into a claim folder and writes its evidence.

  Every cell of `columns` becomes one value, named by the row's `keys`
  cells and the column (`hmc_worst_case_all_acc`, or with an `eps` key
  `hmc_0.1_pgd_expected_acc`), located by those cells (never copied). A
  column missing from the table, or two rows with the same keys, is refused
  before anything is written.

  Args:
    directory: the claim folder (`docs/evidence/<claim>`); its name is the
      claim's.
    table_csv: the CSV a command of the package wrote.
    keys: the columns that name a row (e.g. `('method',)`).
    columns: the columns whose cells become values; columns the table lacks
      are refused. None: every column, keys aside, whose filled cells are
      all numbers.
    config: the resolved config of the command.
    command: its command line (`sys.argv` by default).
    file_name: the copy's name in `directory` (the CSV's own by default).

  Returns:
    The `evidence.json` path.
  """
  import shutil  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  try:
    with open(table_csv, newline='') as stream:
      rows = list(csv.DictReader(stream))
  except (OSError, UnicodeDecodeError, csv.Error) as error:
    _fail(table_csv, f'unreadable as a CSV table ({error})')
  header = list(rows[0]) if rows else []
  if columns is None:  # Numeric columns (a non-finite cell is skipped below).
    columns = [c for c in header if c not in keys and all(
        _parses(row[c]) for row in rows if row[c] != '')]
  missing = [c for c in list(keys) + list(columns) if c not in header]
  if not rows or missing:
    _fail(table_csv, f'the table has no rows or lacks the columns {missing}; '
          f'it has {header}')
  values, seen = {}, set()
  name = file_name or os.path.basename(table_csv)
  for row in rows:
    if None in row or any(row[c] is None for c in header):
      _fail(table_csv, f'a row has more or fewer cells than the header: {row}')
    key = tuple(row[k] for k in keys)
    if key in seen:
      _fail(table_csv, f'two rows share {dict(zip(keys, key))}; name rows '
            'by more key columns')
    seen.add(key)
    for column in columns:
      if row[column] == '':
        continue  # A blank cell (an attack not run for this row).
      if not _parses(row[column]):
        _fail(table_csv, f'row {dict(zip(keys, key))}, column {column!r}: '
              f'{row[column]!r} is not a number')
      if not finite_number(row[column]):
        continue  # No finite figure to claim (NaN: not measurable here).
      value_name = '_'.join([_slug(k) for k in key] + [_slug(column)])
      if value_name in values:
        _fail(table_csv, f'the rows {values[value_name]["row"]} and '
              f'{dict(zip(keys, key))} both name the value {value_name!r}; '
              'choose key columns whose joined cells differ')
      values[value_name] = {'file': name, 'row': dict(zip(keys, key)),
                            'column': column}
  # Everything is read back from a copy first; only then do the table and
  # its evidence.json replace what the folder held (never one without the
  # other's digest).
  os.makedirs(directory, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=directory) as staging:
    shutil.copyfile(table_csv, os.path.join(staging, name))
    write(staging, os.path.basename(os.path.normpath(directory)), [name],
          values, config, command=command, commit=commit, note=note)
    os.replace(os.path.join(staging, name), os.path.join(directory, name))
    os.replace(os.path.join(staging, EVIDENCE_FILE),
               os.path.join(directory, EVIDENCE_FILE))
  return os.path.join(directory, EVIDENCE_FILE)


def _parses(text) -> bool:
  """A cell that reads as a number (finite or not)."""
  try:
    float(text)
    return True
  except (TypeError, ValueError):
    return False


def finite_number(value) -> bool:
  """A value a claim can hold: it reads as a finite number (a NaN from a run
  too short to measure it, a blank or None does not)."""
  return _parses(value) and math.isfinite(float(value))
