"""Evidence for a finished `reproduce` step: its files, command, config, commit.

A step of `binaries/reproduce.py` leaves a marker (`steps/<step>.json`: the
command it ran and the code version that ran it) beside its output files.
`from_step` turns that into a claim's folder under `docs/evidence/`: the
output files copied byte for byte, and `evidence.json` (`evidence.write`)
with the command, the config resolved *at the step's commit* (the commit's
own config file and `tfp_robust`, loaded in a subprocess, with the
command's `--config.x=v` overrides) and the locator of every value. No
number is typed: every value is read from a copied file.

`CLAIMS` names the claims a step can write; `binaries/evidence.py` runs one.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

from tfp_robust.core import files as files_lib
from tfp_robust.core import validate
from tfp_robust.reports import evidence


def csv_value(file: str, column: str, aggregate=None, **row) -> Dict:
  """A locator: `column` of the row of `file` whose fields equal `row`."""
  locator = {'file': file, 'row': row, 'column': column}
  if aggregate:
    locator['aggregate'] = aggregate
  return locator


@dataclasses.dataclass(frozen=True)
class Claim:
  """A claim a reproduce step writes: its step, files and values."""
  step: str
  # name in the claim's folder -> path under the run's work directory.
  files: Mapping[str, str]
  values: Callable[[], Dict[str, Dict]]


def _curves_values() -> Dict[str, Dict]:
  values = {}
  for method in ('sgd', 'ensemble', 'vi', 'hmc'):
    for eps in ('0.0', '0.01', '0.02', '0.05', '0.1'):
      key = eps.replace('0.', '').replace('.', '') or '0'
      for column in ('strongest', 'certified'):
        values[f'{method}_{column}_{key}'] = csv_value(
            'curves_band.csv', column, method=method, eps=eps)
    for eps, key in (('0.05', '05'), ('0.1', '1')):
      values[f'{method}_paper_pgd_{key}'] = csv_value(
          'curves_band.csv', 'paper_pgd', method=method, eps=eps)
    # Each bound's certified accuracy, and the cost of the bounds against
    # one attack, on the strong protocol's rows (the process alone on the
    # machine then): seconds of IBP, CROWN and one PGD under the expected
    # loss at the same radius.
    for eps, key in (('0.01', '01'), ('0.02', '02'), ('0.05', '05')):
      for bound in ('ibp', 'crown'):
        values[f'{method}_{bound}_{key}'] = csv_value(
            'curves.csv', 'adversarial_accuracy', method=method,
            protocol='strong', attack='certified', loss=bound, eps=eps)
        values[f'{method}_{bound}_seconds_{key}'] = csv_value(
            'curves.csv', 'attack_seconds', method=method, protocol='strong',
            attack='certified', loss=bound, eps=eps)
      values[f'{method}_pgd_seconds_{key}'] = csv_value(
          'curves.csv', 'attack_seconds', method=method, protocol='strong',
          attack='pgd', loss='expected', eps=eps)
      values[f'{method}_crown_per_pgd_{key}'] = {
          'op': 'ratio', 'of': [f'{method}_crown_seconds_{key}',
                                f'{method}_pgd_seconds_{key}']}
  return values


def _curves(dataset: str) -> Claim:
  step = 'curves_mnist' if dataset == 'mnist' else 'curves_fashion_mnist'
  return Claim(step, {'curves_band.csv': f'table1/{dataset}/curves_band.csv',
                      'curves.csv': f'table1/{dataset}/curves.csv'},
               _curves_values)


CLAIMS = {
    'curves_mnist_cpu': _curves('mnist'),
    'curves_fashion_cpu': _curves('fashion_mnist'),
}


def read_marker(run_dir: str, step: str) -> Tuple[List[str], str]:
  """A finished step's command (repository-relative) and code version."""
  marker = files_lib.read_json(os.path.join(run_dir, 'steps', step + '.json'),
                               'a reproduce step marker')
  try:
    command, version = list(marker['command']), str(marker['code_version'])
  except (KeyError, TypeError):
    raise files_lib.InvalidFile(
        f'{run_dir}/steps/{step}.json has no command or code_version; run '
        'the step again with binaries/reproduce.py') from None
  root = _checkout_of(command)
  command = ['python'] + [part.replace(root, '') for part in command[1:]]
  return command, version


def _checkout_of(command: Sequence[str]) -> str:
  """The checkout prefix of a marker's absolute paths ('/x/binaries/a.py')."""
  script = next((p for p in command if p.endswith('.py')), '')
  if '/binaries/' not in script:
    return ''
  return script[:script.index('/binaries/') + 1]


_LOAD_CONFIG = r'''
import ast, json, sys, importlib.util
path, variant, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
spec = importlib.util.spec_from_file_location('step_config', path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
config = module.get_config(variant)
for override in overrides:
  key, raw = override[len('--config.'):].split('=', 1)
  try:
    value = ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    value = raw
  node = config
  *parents, last = key.split('.')
  for parent in parents:
    node = node[parent]
  with node.unlocked():
    node[last] = value
print(json.dumps(json.loads(config.to_json_best_effort()), sort_keys=True))
'''


def resolved_config(repo: str, commit: str, command: Sequence[str]) -> Dict:
  """The step's config as its commit resolved it, overrides applied."""
  spec = next((p.split('=', 1)[1] for p in command
               if p.startswith('--config=')), None)
  if spec is None:
    raise validate.InvalidArgument(
        f'command={list(command)!r} has no --config=; only steps run from a '
        'config file can be tied to evidence.')
  path, _, variant = spec.partition(':')
  overrides = [p for p in command if p.startswith('--config.')]
  with tempfile.TemporaryDirectory() as tmp:
    archive = subprocess.run(['git', 'archive', commit, 'configs',
                              'tfp_robust'], cwd=repo, check=True,
                             capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', tmp], input=archive, check=True)
    env = dict(os.environ, PYTHONPATH=tmp, TF_CPP_MIN_LOG_LEVEL='3')
    out = subprocess.run(
        [sys.executable, '-c', _LOAD_CONFIG, os.path.join(tmp, path),
         variant or 'cpu', json.dumps(overrides)],
        cwd=tmp, env=env, check=True, capture_output=True, text=True).stdout
  return json.loads(out)


def from_step(repo: str, run_dir: str, claim: str, out_root: str) -> str:
  """Writes `<out_root>/<claim>/` from the finished step of `run_dir`."""
  if claim not in CLAIMS:
    raise validate.InvalidArgument(
        f'claim={claim!r} is unknown; choose one of {sorted(CLAIMS)}.')
  spec = CLAIMS[claim]
  command, version = read_marker(run_dir, spec.step)
  if ' git ' not in version or version.endswith('+dirty'):
    raise validate.InvalidArgument(
        f'the step {spec.step!r} ran from {version!r}: evidence needs a clean '
        'commit (run it from a committed checkout).')
  commit = version.split(' git ')[-1]
  config = resolved_config(repo, commit, command)
  missing = [p for p in spec.files.values()
             if not os.path.isfile(os.path.join(run_dir, p))]
  if missing:
    raise validate.InvalidArgument(
        f'run_dir={run_dir!r} lacks {missing}; finish the step first.')
  directory = os.path.join(out_root, claim)
  os.makedirs(directory, exist_ok=True)
  sources = dict(spec.files, **{'step.json': f'steps/{spec.step}.json'})
  for name, source in sources.items():
    shutil.copyfile(os.path.join(run_dir, source),
                    os.path.join(directory, name))
  note = (f'Files of step `{spec.step}` of `python binaries/reproduce.py` '
          f'(step.json is its marker); config resolved from the command\'s '
          f'config file at {commit} with its overrides.')
  return evidence.write(directory, claim, list(sources), spec.values(),
                        config, command=command, commit=version, note=note)


def from_table(repo: str, table: str, keys: Sequence[str],
               command: Sequence[str], commit: str, directory: str) -> str:
  """Writes the claim folder `directory` from a finished run's CSV table.

  For runs that are not `reproduce` steps (a sampler comparison, a long
  chain): `command` is the command line that wrote `table` (repository-
  relative, with its `--config=`), `commit` the clean commit it ran from;
  the config is resolved at that commit and every numeric cell becomes a
  value named by the row's `keys` (`evidence.write_table`).
  """
  if not os.path.isfile(table):
    raise validate.InvalidArgument(
        f'table={table!r} does not exist; give the CSV the run wrote.')
  try:
    full = subprocess.run(['git', 'rev-parse', '--verify', commit + '^{commit}'],
                          cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()
  except subprocess.CalledProcessError:
    raise validate.InvalidArgument(
        f'commit={commit!r} is not a commit of {repo}; give the commit the '
        'run started from (its log or run.json names it).') from None
  config = resolved_config(repo, full, command)
  note = (f'Copied from {table}, written by the command at {full[:12]}; '
          'config resolved from its config file at that commit with its '
          'overrides.')
  return evidence.write_table(directory, table, keys, None, config,
                              command=list(command),
                              commit=f'tfp_robust git {full[:12]}', note=note)
