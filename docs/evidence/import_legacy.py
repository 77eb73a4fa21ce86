r"""Ties the results measured before commands wrote evidence to their files.

  PYTHONPATH=. python docs/evidence/import_legacy.py

For each claim below: copies the output files a command wrote (under
`docs/reproduce_cpu/`, `docs/samplers_*`, `docs/table1_mixing_*`) into
`docs/evidence/<claim>/`, byte for byte, and writes `evidence.json` with
`tfp_robust.evidence.write`: the command from the run's own record (the
`reproduce` step marker, or as the notes give it when the run kept none), the
config resolved from the config file at the run's commit with the command's
overrides, the commit, and the locator of every value. No number is typed
here: every value is read from a copied file. New commands call
`evidence.write` themselves; this script is for the runs made before.
"""

import json
import os
import shutil

from tfp_robust.reports import claims
from tfp_robust.reports import evidence

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DOCS = os.path.join(REPO, 'docs')
OUT = os.path.join(DOCS, 'evidence')


def resolved_config(commit, spec, overrides=()):
  """`configs/<file>.py:<variant>` at `commit`, with `--config.x=v` applied
  (`claims.resolved_config`: the commit's own config and package)."""
  return claims.resolved_config(REPO, commit,
                                ['python', '--config=' + spec, *overrides])


def step_command(step):
  """A reproduce step's marker: its command (repository-relative), commit."""
  with open(os.path.join(DOCS, 'reproduce_cpu', 'steps', step + '.json')) as f:
    marker = json.load(f)
  command = [part.replace('/work/run_tree/', '') for part in
             marker['command']]
  command[0] = 'python'
  commit = marker['code_version'].split(' git ')[-1]
  return command, marker['code_version'], commit


def copy(claim, sources):
  """Copies {name in the claim: path under docs/} into the claim's folder."""
  directory = os.path.join(OUT, claim)
  os.makedirs(directory, exist_ok=True)
  for name, source in sources.items():
    shutil.copyfile(os.path.join(DOCS, source), os.path.join(directory, name))
  return directory


def from_step(claim, step, sources, values, extra_note=''):
  command, version, commit = step_command(step)
  config_spec = next(p for p in command if p.startswith('--config='))
  spec = config_spec.split('=', 1)[1].replace('/work/run_tree/', '')
  overrides = [p for p in command if p.startswith('--config.')]
  config = resolved_config(commit, spec, overrides)
  sources = dict(sources, **{'step.json': f'reproduce_cpu/steps/{step}.json'})
  directory = copy(claim, sources)
  note = ('Copied from ' + ', '.join(f'docs/{s}' for s in sources.values()) +
          ': step `' + step + '` of `python binaries/reproduce.py --scale=cpu '
          '--workdir=/work/runs/reproduce_cpu` (step.json is its marker). '
          'Config resolved from ' + spec + ' at ' + commit + ' with the '
          'step\'s overrides.' + extra_note)
  evidence.write(directory, claim, list(sources), values, config,
                 command=command, commit=version, note=note)


def csv_value(file, column, scale=None, aggregate=None, **row):
  locator = {'file': file, 'row': row, 'column': column}
  if scale is not None:
    locator['scale'] = scale
  if aggregate:
    locator['aggregate'] = aggregate
  return locator


def json_value(file, *key, scale=None):
  locator = {'file': file, 'key': list(key)}
  if scale is not None:
    locator['scale'] = scale
  return locator


STRONG_COLUMNS = {
    'clean': 'clean_acc', 'random': 'random_acc', 'fgsm': 'fgsm_expected_acc',
    'pgd_expected': 'pgd_expected_acc', 'pgd_predictive': 'pgd_predictive_acc',
    'apgd': 'apgd_ce+dlr_acc', 'square': 'square_margin_acc',
    'transfer_half': 'transfer_half_predictive_acc',
    'transfer_surrogate': 'transfer_surrogate_predictive_acc',
    'worst_case': 'worst_case_all_acc', 'certified': 'certified_ibp_acc'}


def table1(claim, dataset, step):
  values = {}
  for method in ('hmc', 'vi'):
    for name, column in STRONG_COLUMNS.items():
      values[f'{method}_{name}'] = csv_value('summary_strong.csv', column,
                                             method=method)
    values[f'{method}_full_test'] = csv_value(
        'attacks_strong.csv', 'full_test_accuracy', method=method,
        attack='worst_case')
    label = f'{method} ({method.upper()})'
    for ours, paper in (('random', 'random (paper)'), ('fgsm', 'FGSM (paper)'),
                        ('pgd', 'PGD (paper)')):
      values[f'paper_{method}_{ours}'] = csv_value('beside_paper.csv', paper,
                                                   method=label)
  values['eps'] = csv_value('attacks_strong.csv', 'eps', method='hmc',
                            attack='worst_case')
  values['minutes'] = json_value('step.json', 'seconds', scale=1 / 60)
  from_step(claim, step, {
      'summary_strong.csv': f'reproduce_cpu/table1/{dataset}/summary_strong.csv',
      'attacks_strong.csv': f'reproduce_cpu/table1/{dataset}/attacks_strong.csv',
      'beside_paper.csv':
          f'reproduce_cpu/report/table1_{dataset}_strong_beside_paper.csv',
  }, values)


def table2():
  values = {}
  rows = {'sgd': 'sgd (Deterministic NN)', 'ensemble': 'ensemble (Ensemble NN)',
          'vi': 'vi (Bayesian NN)'}
  for method, label in rows.items():
    for name, column in (('clean', 'clean_acc'), ('fgsm', 'fgsm_expected_acc'),
                         ('pgd', 'pgd_expected_acc'),
                         ('members', 'samples')):
      values[f'{method}_{name}'] = csv_value('summary_paper.csv', column,
                                             method=method)
    for name, column in (('clean', 'test accuracy (paper)'),
                         ('fgsm', 'FGSM (paper)'), ('pgd', 'PGD (paper)')):
      values[f'paper_{method}_{name}'] = csv_value('beside_paper.csv', column,
                                                   method=label)
  from_step('table2_mnist_cpu', 'table2_mnist_paper', {
      'summary_paper.csv': 'reproduce_cpu/table2/mnist/summary_paper.csv',
      'beside_paper.csv':
          'reproduce_cpu/report/table2_mnist_paper_beside_paper.csv'}, values)
  values = {f'sgd_{name}': csv_value('summary_strong.csv', column, method='sgd')
            for name, column in STRONG_COLUMNS.items()
            if name not in ('transfer_half', 'transfer_surrogate')}
  from_step('table2_mnist_strong_cpu', 'table2_mnist_strong', {
      'summary_strong.csv': 'reproduce_cpu/table2/mnist/summary_strong.csv'},
            values)


def gradients(dataset, step):
  values = {}
  for method in ('hmc', 'vi'):
    for n in (1, 10, 50, 100):
      values[f'{method}_mean_abs_{n}'] = csv_value(
          'gradient_magnitudes.csv', 'mean_abs', method=method, num_samples=n)
  name = 'mnist' if dataset == 'mnist' else 'fashion'
  from_step(f'gradients_{name}_cpu', step, {
      'gradient_magnitudes.csv':
          f'reproduce_cpu/gradients/{dataset}/gradient_magnitudes.csv'},
            values)


def figure1():
  values = {
      'grad_min': csv_value('figure1_summary.csv', 'grad_mean_abs',
                            aggregate='min'),
      'grad_max': csv_value('figure1_summary.csv', 'grad_mean_abs',
                            aggregate='max'),
      'fn_rhat_max_min': csv_value('figure1_summary.csv', 'fn_rhat_max',
                                   aggregate='min'),
      'fn_rhat_max_max': csv_value('figure1_summary.csv', 'fn_rhat_max',
                                   aggregate='max'),
      'accuracy_min': csv_value('figure1_summary.csv', 'test_accuracy',
                                aggregate='min'),
      'minutes': json_value('step.json', 'seconds_all_attempts', scale=1 / 60),
  }
  for width in (32, 256):
    for train, warmup in ((500, 100), (2000, 200)):
      values[f'grad_{width}_{train}_{warmup}'] = csv_value(
          'figure1_summary.csv', 'grad_mean_abs', hidden=width,
          num_train=train, warmup=warmup)
  from_step('figure1_cpu', 'figure1', {
      'figure1_summary.csv': 'reproduce_cpu/figure1/figure1_summary.csv'},
            values)


def figure4():
  values = {}
  for dataset, short in (('mnist', 'mnist'), ('fashion_mnist', 'fashion')):
    for method in ('hmc', 'sgd', 'vi'):
      for protocol, measure, name in (
          ('strong', 'adversarial accuracy (worst case)', 'worst'),
          ('paper', 'adversarial accuracy (PGD)', 'pgd'),
          ('paper', 'softmax robustness (FGSM)', 'softmax')):
        row = dict(dataset=dataset, protocol=protocol, measure=measure,
                   method=method)
        values[f'{short}_{method}_{name}_median'] = csv_value(
            'figure4_answers.csv', 'median', **row)
        values[f'{short}_{method}_{name}_spearman_accuracy'] = csv_value(
            'figure4_answers.csv', 'spearman_accuracy', **row)
        values[f'{short}_{method}_{name}_spearman_width'] = csv_value(
            'figure4_answers.csv', 'spearman_width', **row)
        if method != 'sgd':
          values[f'{short}_{method}_{name}_dominated_by_sgd'] = csv_value(
              'figure4_answers.csv', 'dominated_by_sgd', **row)
        else:
          values[f'{short}_sgd_{name}_dominated_by_hmc'] = csv_value(
              'figure4_answers.csv', 'dominated_by_hmc', **row)
  values['minutes'] = json_value('step.json', 'seconds', scale=1 / 60)
  from_step('figure4_cpu', 'figure4', {
      'figure4_answers.csv': 'reproduce_cpu/figure4/figure4_answers.csv'},
            values)


def replay():
  values = {}
  for method, short in (('hmc', 'ours'), ('hmc_original', 'replay')):
    values[f'{short}_clean'] = csv_value(
        'ablation.csv', 'clean_accuracy', method=method, attack='fgsm',
        loss='expected', other_samples='False')
    for attack in ('fgsm', 'pgd', 'pgd_original', 'pgd_unprojected'):
      for loss in ('expected', 'double_softmax', 'clipped'):
        row = dict(method=method, attack=attack, loss=loss,
                   other_samples='False')
        values[f'{short}_{attack}_{loss}'] = csv_value(
            'ablation.csv', 'adversarial_accuracy', **row)
        values[f'{short}_{attack}_{loss}_zero_gradient'] = csv_value(
            'ablation.csv', 'zero_gradient_fraction', **row)
  values['replay_kept_share'] = {'op': 'ratio', 'of': ['replay_fgsm_clipped',
                                                       'replay_clean']}
  from_step('replay_mnist_cpu', 'ablation_mnist', {
      'ablation.csv': 'reproduce_cpu/table1/mnist/ablation.csv'}, values)


def samplers_csv(claim, folder, commit, targets, extra_files=None,
                 extra_values=None):
  """The sampler comparison's rows: configs/samplers.py:cpu at `commit`."""
  sources = {'samplers.csv': f'{folder}/samplers.csv'}
  sources.update(extra_files or {})
  directory = copy(claim, sources)
  config = resolved_config(commit, 'configs/samplers.py:cpu')
  values = dict(extra_values or {})
  rows = []
  with open(os.path.join(directory, 'samplers.csv')) as f:
    import csv  # pylint: disable=g-import-not-at-top
    rows = list(csv.DictReader(f))
  for row in rows:
    key = f"{row['target'].replace('halfmoons_', '')}_{row['variant']}"
    sel = dict(target=row['target'], variant=row['variant'])
    for column in ('fn_rhat_max', 'fn_split_rhat_max', 'fn_ess_min',
                   'rhat_log_joint', 'pgd_predictive_acc',
                   'mean_abs_expected_grad', 'sampler_seconds', 'step_size',
                   'leapfrogs_per_iteration'):
      if column in row and row[column] != '':
        values[f'{key}_{column}'] = csv_value('samplers.csv', column, **sel)
  for column in ('fn_rhat_max', 'fn_split_rhat_max', 'fn_ess_min',
                 'pgd_predictive_acc', 'mean_abs_expected_grad'):
    if column in rows[0] and all(r[column] != '' for r in rows):
      for aggregate in ('min', 'max'):
        values[f'{aggregate}_{column}'] = csv_value(
            'samplers.csv', column, aggregate=aggregate)
  command = ['python', 'binaries/samplers.py', '--config=configs/samplers.py:cpu',
             '--targets=' + ','.join(targets), '--workdir=/work/runs/samplers']
  evidence.write(directory, claim, list(sources), values, config,
                 command=command,
                 commit=f'not recorded by the run; its files were committed '
                        f'in git {commit}',
                 note='Copied from ' + ', '.join(f'docs/{s}' for s in
                                                 sources.values()) +
                 '. Config resolved from configs/samplers.py:cpu at the '
                 'commit that committed the files.')


def samplers():
  samplers_csv('samplers_halfmoons', 'samplers_halfmoons_long', '5ebb9d3',
               ['halfmoons_long'])
  widths = (32, 64, 128, 256)
  strong = {}
  for w in widths:
    for key in ('worst_case/all', 'apgd/ce+dlr', 'square/margin',
                'pgd/expected', 'certified/ibp'):
      short = key.split('/')[0]
      strong[f'width_{w}_strong_{short}'] = json_value('strong.json', str(w),
                                                       key)
  strong['strong_worst_case_min'] = {
      'op': 'min', 'of': [f'width_{w}_strong_worst_case' for w in widths]}
  strong['strong_worst_case_max'] = {
      'op': 'max', 'of': [f'width_{w}_strong_worst_case' for w in widths]}
  samplers_csv(
      'samplers_width', 'samplers_width', '9585a86',
      [f'halfmoons_width_{w}' for w in widths],
      extra_files={'strong.json': 'samplers_width/strong.json'},
      extra_values=strong)
  # strong.json was written by a script, not by a command: say so.
  path = os.path.join(OUT, 'samplers_width', evidence.EVIDENCE_FILE)
  with open(path) as f:
    data = json.load(f)
  data['note'] += (' strong.json (the strong protocol on the same chains) '
                   'was written by a short script that read the chains back '
                   'from their checkpoints and called '
                   '`evaluation.attack_rows`: no command of the package writes '
                   'it yet (issue 24, item 3).')
  data['command'] = [data['command'],
                     'strong.json: a script (not in the package) calling '
                     'tfp_robust.evaluation.attack_rows, eps 0.1, 200 test '
                     'points, 250 samples']
  from tfp_robust.core import files  # pylint: disable=g-import-not-at-top
  files.write_text_atomically(path, json.dumps(data, indent=2) + '\n')


def samplers_mnist():
  variants = ('fixed_2', 'fixed', 'fixed_prior', 'diagonal_jittered',
              'diagonal_jittered_single', 'nuts_diagonal_4',
              'nuts_diagonal_4_single', 'chees_30')
  sources = {f'{v}.json': f'samplers_mnist/mnist/{v}/row.json'
             for v in variants}
  directory = copy('samplers_mnist', sources)
  values = {}
  for v in variants:
    for key in ('fn_rhat_max', 'fn_rhat_median', 'fn_ess_min', 'rhat_log_joint',
                'pgd_predictive_acc', 'mean_abs_expected_grad', 'step_size',
                'test_accuracy', 'sampler_seconds', 'chains'):
      values[f'{v}_{key}'] = json_value(f'{v}.json', key)
  for key in ('fn_rhat_max', 'pgd_predictive_acc', 'mean_abs_expected_grad'):
    for op in ('min', 'max'):
      values[f'{op}_{key}'] = {'op': op,
                               'of': [f'{v}_{key}' for v in variants]}
  with open(os.path.join(directory, 'fixed.json')) as f:
    settings = json.load(f)['settings']
  evidence.write(
      directory, 'samplers_mnist', list(sources), values,
      {'configs/samplers.py:cpu': 'target mnist; each <variant>.json holds '
                                  'its resolved settings', 'fixed': settings},
      command=['python', 'binaries/samplers.py',
               '--config=configs/samplers.py:cpu', '--targets=mnist',
               '--workdir=/work/runs/samplers'],
      commit='not recorded by the run; its rows were committed in git '
             '260cf66, e59298b and a746eac',
      note='Copied from docs/samplers_mnist/mnist/<variant>/row.json: the '
           'comparison binary\'s row of each variant, with its settings.')


def table1_mixing(scale):
  folder = f'table1_mixing_{scale}'
  sources = {'attacks_strong.csv': f'{folder}/attacks_strong.csv',
             'attacks_paper.csv': f'{folder}/attacks_paper.csv',
             'ensemble_info.json': f'{folder}/ensemble_info.json'}
  if scale == 'paper':
    sources['diagnostics_subsets.json'] = f'{folder}/diagnostics_subsets.json'
  directory = copy(folder, sources)
  values = {}
  for attack, loss, name in (
      ('random', 'none', 'random'), ('fgsm', 'expected', 'fgsm'),
      ('pgd', 'expected', 'pgd_expected'),
      ('pgd', 'predictive', 'pgd_predictive'), ('apgd', 'ce+dlr', 'apgd'),
      ('square', 'margin', 'square'),
      ('transfer_half', 'predictive', 'transfer_half'),
      ('transfer_surrogate', 'predictive', 'transfer_surrogate'),
      ('worst_case', 'all', 'worst_case'), ('certified', 'ibp', 'certified')):
    values[name] = csv_value('attacks_strong.csv', 'adversarial_accuracy',
                             attack=attack, loss=loss)
  values['clean'] = csv_value('attacks_strong.csv', 'clean_accuracy',
                              attack='worst_case', loss='all')
  for key in ('test_accuracy', 'acceptance_rate', 'step_size', 'fn_rhat_max',
              'fn_rhat_median', 'fn_ess_min', 'fn_ess_median', 'rhat_log_joint',
              'ess_log_joint', 'num_kept_samples', 'sampler_seconds',
              'leapfrog_steps_per_iteration', 'warm_up_seconds'):
    values[key] = json_value('ensemble_info.json', 'extra', key)
  values['sampler_minutes'] = json_value('ensemble_info.json', 'extra',
                                         'sampler_seconds', scale=1 / 60)
  if scale == 'cpu':
    values['fn_split_rhat_max'] = json_value('ensemble_info.json', 'extra',
                                             'fn_split_rhat_max')
  else:
    values['fn_split_rhat_max'] = json_value('diagnostics_subsets.json',
                                             'all 4', 'fn_split_rhat_max')
    values['fn_rhat_max_chains_01'] = json_value(
        'diagnostics_subsets.json', 'chains 0-1', 'fn_rhat_max')
    values['grad_mean_abs'] = json_value('diagnostics_subsets.json',
                                         'gradient', 'grad_mean_abs')
  with open(os.path.join(directory, 'ensemble_info.json')) as f:
    version = json.load(f)['produced_by']['code_version']
  commit = version.split(' git ')[-1]
  config = resolved_config(commit, f'configs/table1_mixing.py:{scale}')
  workdir = f'/work/runs/table1_mixing_{scale}'
  command = [
      ['python', 'binaries/train.py',
       f'--config=configs/table1_mixing.py:{scale}', '--method=hmc',
       f'--workdir={workdir}'],
      ['python', 'binaries/attack.py',
       f'--config=configs/table1_mixing.py:{scale}', '--methods=hmc',
       '--config.attack.protocol=paper', f'--workdir={workdir}'],
      ['python', 'binaries/attack.py',
       f'--config=configs/table1_mixing.py:{scale}', '--methods=hmc',
       '--config.attack.protocol=strong', f'--workdir={workdir}']]
  note = ('Copied from ' + ', '.join(f'docs/{s}' for s in sources.values()) +
          '. The commit is the training\'s (ensemble_info.json); the attacks '
          'ran after it without recording theirs.')
  if scale == 'paper':
    note += (' diagnostics_subsets.json (split R-hat and R-hat of chain '
             'pairs, the expected gradient) was written by a script calling '
             '`mcmc.diagnostics` on the saved chains: no command of the '
             'package writes it yet.')
    command.append('diagnostics_subsets.json: a script (not in the package) '
                   'calling tfp_robust.mcmc.diagnostics on the saved chains')
  evidence.write(directory, folder, list(sources), values, config,
                 command=command, commit=version, note=note)


def projection():
  sources = {'paper_grid_projection.json':
                 'figure4_cpu/paper_grid_projection.json'}
  directory = copy('figure4_paper_projection', sources)
  grid = 'figure4_paper_grid'
  values = {'total_hours': json_value('paper_grid_projection.json', grid,
                                      'total_hours'),
            'longest_unit_hours': json_value('paper_grid_projection.json',
                                             grid, 'longest_unit_hours'),
            'units': json_value('paper_grid_projection.json', grid, 'units')}
  for workers in ('1', '8', '32', '128'):
    values[f'hours_on_{workers}'] = json_value(
        'paper_grid_projection.json', grid, 'wall_hours_on_workers', workers)
  for method in ('hmc', 'sgd', 'vi'):
    for key in ('train_hours', 'attack_hours', 'units'):
      values[f'{method}_{key}'] = json_value('paper_grid_projection.json',
                                             grid, method, key)
  evidence.write(
      directory, 'figure4_paper_projection', list(sources), values,
      {'flags': {'only': ['figure4_paper_grid'],
                 'figure4_protocols': ['paper', 'strong'],
                 'figure4_reference_activation': 'relu',
                 'workers': ['1', '8', '32', '128']},
       'configs': 'configs/figure4.py:paper'},
      command=['python', 'binaries/benchmark.py', '--only=figure4_paper_grid',
               '--output=docs/figure4_cpu/paper_grid_projection.json'],
      commit='not recorded by the run; committed in git 83b14c9',
      note='Copied from docs/figure4_cpu/paper_grid_projection.json.')


def main():
  projection()
  table1('table1_mnist_cpu', 'mnist', 'table1_mnist_strong')
  table1('table1_fashion_cpu', 'fashion_mnist', 'table1_fashion_mnist_strong')
  table2()
  figure1()
  gradients('mnist', 'gradients_mnist')
  gradients('fashion_mnist', 'gradients_fashion_mnist')
  # The curves claims are written by `binaries/evidence.py` from their
  # reproduce steps (`tfp_robust.reports.claims`), no longer copied here.
  figure4()
  replay()
  samplers()
  samplers_mnist()
  table1_mixing('cpu')
  table1_mixing('paper')


if __name__ == '__main__':
  main()
