"""Tests for reports.claims: a finished reproduce step tied to its evidence."""

import csv
import json
import os
import subprocess

import pytest

from tfp_robust.core import validate
from tfp_robust.reports import claims
from tfp_robust.reports import evidence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _head():
  return subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO, check=True,
                        capture_output=True, text=True).stdout.strip()


def _finished_step(run_dir, commit, overrides=()):
  """A curves step as reproduce leaves it: marker and output files."""
  os.makedirs(run_dir / 'steps')
  command = ['/venv/bin/python', '/x/checkout/binaries/curves.py',
             '--config=/x/checkout/configs/curves.py:cpu', *overrides,
             '--workdir=/r/table1']
  (run_dir / 'steps' / 'curves_mnist.json').write_text(json.dumps({
      'step': 'curves_mnist', 'command': command,
      'code_version': f'tfp_robust 0.1.0 git {commit[:12]}'}))
  table = run_dir / 'table1' / 'mnist'
  os.makedirs(table)
  with open(table / 'curves_band.csv', 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['method', 'eps', 'strongest', 'certified', 'paper_pgd'])
    for i, method in enumerate(('sgd', 'ensemble', 'vi', 'hmc')):
      for j, eps in enumerate(('0.0', '0.01', '0.02', '0.05', '0.1')):
        writer.writerow([method, eps, 0.9 - 0.1 * j, 0.01 * i, 0.5 + 0.01 * j])
  with open(table / 'curves.csv', 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['method', 'protocol', 'attack', 'loss', 'eps',
                     'adversarial_accuracy', 'attack_seconds'])
    for method in ('sgd', 'ensemble', 'vi', 'hmc'):
      for eps in ('0.01', '0.02', '0.05'):
        writer.writerow([method, 'strong', 'certified', 'ibp', eps, 0.1, 0.5])
        writer.writerow([method, 'strong', 'certified', 'crown', eps, 0.2, 2])
        writer.writerow([method, 'strong', 'pgd', 'expected', eps, 0.3, 8])
        writer.writerow([method, 'paper', 'pgd', 'expected', eps, 0.4, 1])
  return command


def test_a_finished_step_becomes_evidence(tmp_path):
  commit = _head()
  _finished_step(tmp_path / 'run', commit,
                 overrides=['--config.attack.num_points=50'])
  path = claims.from_step(REPO, str(tmp_path / 'run'), 'curves_mnist_cpu',
                          str(tmp_path / 'evidence'))
  written = json.loads(open(path).read())
  # The command is repository-relative; the config is the commit's own,
  # resolved with the step's override.
  assert written['command'][:3] == ['python', 'binaries/curves.py',
                                    '--config=configs/curves.py:cpu']
  assert written['config']['attack']['num_points'] == 50
  assert written['config']['methods'] == ['sgd', 'ensemble', 'vi', 'hmc']
  assert written['commit'].endswith(commit[:12])
  values = evidence.read_values(os.path.dirname(path))
  assert values['hmc_certified_05'] == pytest.approx(0.03)
  assert values['vi_strongest_1'] == pytest.approx(0.5)
  assert values['sgd_paper_pgd_05'] == pytest.approx(0.53)
  # Each bound, and its cost against one PGD of the strong protocol.
  assert values['vi_crown_01'] == pytest.approx(0.2)
  assert values['vi_ibp_05'] == pytest.approx(0.1)
  assert values['hmc_crown_per_pgd_02'] == pytest.approx(0.25)


def test_a_dirty_or_unfinished_step_is_refused(tmp_path):
  _finished_step(tmp_path / 'run', _head())
  marker = tmp_path / 'run' / 'steps' / 'curves_mnist.json'
  data = json.loads(marker.read_text())
  data['code_version'] += '+dirty'
  marker.write_text(json.dumps(data))
  with pytest.raises(validate.InvalidArgument, match='clean commit'):
    claims.from_step(REPO, str(tmp_path / 'run'), 'curves_mnist_cpu',
                     str(tmp_path / 'evidence'))
  with pytest.raises(validate.InvalidArgument, match="claim='nope'"):
    claims.from_step(REPO, str(tmp_path / 'run'), 'nope', str(tmp_path))
  os.remove(tmp_path / 'run' / 'steps' / 'curves_mnist.json')
  with pytest.raises(ValueError, match='curves_mnist.json'):
    claims.from_step(REPO, str(tmp_path / 'run'), 'curves_mnist_cpu',
                     str(tmp_path / 'evidence'))


def test_a_finished_run_table_becomes_evidence(tmp_path):
  commit = _head()
  table = tmp_path / 'samplers.csv'
  table.write_text('target,variant,settings,fn_split_rhat_max,'
                   'strong_worst_case_all_acc\n'
                   'halfmoons_long,nuts,"depth 6",1.038,0.165\n'
                   'halfmoons_long,fixed,"L 10",1.9,\n')
  command = ['python', 'binaries/samplers.py', '--config=configs/samplers.py:cpu',
             '--config.strong=True', '--targets=halfmoons_long']
  path = claims.from_table(REPO, str(table), ['target', 'variant'], command,
                           commit[:7], str(tmp_path / 'claim'))
  written = json.loads(open(path).read())
  assert written['command'] == command
  assert written['commit'].endswith(commit[:12])
  assert written['config']['strong'] is True  # The override, resolved.
  values = evidence.read_values(str(tmp_path / 'claim'))
  # Numeric cells only (not the settings text), blanks skipped.
  assert values == pytest.approx({
      'halfmoons_long_nuts_fn_split_rhat_max': 1.038,
      'halfmoons_long_nuts_strong_worst_case_all_acc': 0.165,
      'halfmoons_long_fixed_fn_split_rhat_max': 1.9})
  with pytest.raises(validate.InvalidArgument, match="commit='nope'"):
    claims.from_table(REPO, str(table), ['target'], command, 'nope',
                      str(tmp_path / 'other'))
