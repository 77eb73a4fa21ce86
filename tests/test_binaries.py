"""The absl binaries run end to end on tiny settings and write their outputs."""

import os
import re
import subprocess
import sys

import pandas as pd
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, workdir, with_stderr=False):
  # As a user runs them: TensorFlow's log level left to the binaries.
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  result = subprocess.run([sys.executable] + args + [f'--workdir={workdir}'],
                          cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return (result.stdout, result.stderr) if with_stderr else result.stdout


# Start-up and library noise that must not reach a user's terminal.
_NOISE = ('oneDNN', 'cuInit', 'cuda drivers', 'absl::InitializeLog',
          'retracing', 'Sharding callback', 'add_variable', 'distutils',
          'lambda', 'Traceback', 'default backend', 'Shape validation')


def test_quickstart_prints_table_and_writes_outputs(tmp_path):
  out = _run(['binaries/quickstart.py', '--config=configs/quickstart.py:cpu',
              '--config.data.num_train=300', '--config.data.num_test=100',
              '--config.model.hidden=(8,8)', '--config.sgd.epochs=5',
              '--config.vi.epochs=5', '--config.vi.num_samples=10',
              '--config.hmc.num_results=10', '--config.hmc.num_burnin_steps=10'],
             tmp_path, with_stderr=True)
  out, err = out
  assert not [n for n in _NOISE if n in err], err[:3000]
  # Progress, not a line per epoch: at most ~10 per training.
  assert err.count(' epoch ') <= 3 * 11
  assert 'fgsm_expected_acc' in out and 'pgd_predictive_acc' in out
  # Three decimals, never a raw float; HMC's 10 samples have not mixed.
  assert not re.search(r'\d\.\d{4,}', out.split('WARNING')[0])
  assert 'WARNING: the hmc chains have not mixed' in out
  assert 'have not mixed' not in err  # Once, beside the table, not twice.
  assert 'fn_rhat_max' in out
  for method in ('sgd', 'vi', 'hmc'):
    assert method in out
    assert os.path.exists(tmp_path / 'ensembles' / method / 'ensemble.json')
  summary = pd.read_csv(tmp_path / 'summary.csv')
  assert list(summary['method']) == ['sgd', 'vi', 'hmc']
  assert summary['clean_acc'].between(0, 1).all()
  assert (tmp_path / 'decision_regions.png').stat().st_size > 1000
  board = tmp_path / 'tensorboard' / 'half_moons'
  assert sorted(os.listdir(board)) == ['all', 'hmc', 'sgd', 'vi']
  from tfp_robust.reports import summaries  # pylint: disable=g-import-not-at-top
  assert 'vi/elbo' in summaries.read_scalars(str(board / 'vi' / 'fit'))
  # One eps: the results are a table (Text tab), not charts of one dot.
  attacked = board / 'hmc' / 'attacks_paper'
  assert not [t for t in summaries.read_scalars(str(attacked))
              if t.startswith('attack/')]
  [(_, table)] = summaries.read_text(str(attacked))['attack/paper/results']
  pgd = [line for line in table.splitlines()
         if line.startswith('| hmc | pgd | predictive | 0.100 |')]
  assert len(pgd) == 1, table
  assert float(pgd[0].split('|')[5]) == pytest.approx(
      float(summary.loc[2, 'pgd_predictive_acc']), abs=5e-4)
  assert summaries.read_tags(str(board / 'all' / 'figures'))[
      'figures/decision_regions'] == 'images'
  # HParams for each model, its table row as the metrics.
  for index, method in enumerate(('sgd', 'vi', 'hmc')):
    run = str(board / method / 'hparams')
    assert summaries.read_tags(run)['_hparams_/session_start_info'] == (
        'hparams')
    assert summaries.read_scalars(run)['hparams/clean_acc'] == [
        (0, pytest.approx(float(summary.loc[index, 'clean_acc'])))]
  assert not [n for n in os.listdir(tmp_path) if n.startswith('.tmp')]


def test_train_attack_gradients_on_mnist_subset(tmp_path):
  common = ['--config.num_train=500', '--config.num_test=100']
  hmc = ['--config.hmc.num_results=6', '--config.hmc.num_burnin_steps=4',
         '--config.hmc.segment_size=3', '--config.hmc.num_train=0',
         '--config.hmc.hidden=(16,)', '--config.hmc.init_sgd.epochs=1']
  vi = ['--config.vi.epochs=1', '--config.vi.num_samples=8',
        '--config.vi.hidden=(16,)']
  out = _run(['binaries/train.py', '--config=configs/table1.py:cpu',
              '--method=hmc'] + common + hmc, tmp_path)
  assert 'hmc on mnist: test accuracy' in out
  _run(['binaries/train.py', '--config=configs/table1.py:cpu',
        '--method=vi'] + common + vi, tmp_path)
  out = _run(['binaries/attack.py', '--config=configs/table1.py:cpu',
              '--config.attack.num_points=20', '--config.attack.num_samples=5',
              '--check_points=10'] + common + hmc + vi, tmp_path)
  rows = pd.read_csv(tmp_path / 'mnist' / 'attacks_paper.csv')
  assert set(rows['method']) == {'hmc', 'vi'}
  assert set(rows['protocol']) == {'paper'}
  assert set(rows['attack']) == {'random', 'fgsm', 'pgd', 'certified'}
  assert set(rows['loss']) == {'none', 'expected', 'predictive', 'ibp',
                               'crown'}
  assert (rows['num_samples'] == 5).all()
  attacked = rows[rows['attack'] != 'certified']
  assert (attacked['max_perturbation'] <= 0.1 + 1e-6).all()
  assert 'random_weaker_than_every_attack' in out
  from tfp_robust.reports import summaries  # pylint: disable=g-import-not-at-top
  board = tmp_path / 'tensorboard' / 'mnist'
  fit = summaries.read_scalars(str(board / 'hmc' / 'fit'))
  # 4 warm-up and 6 kept iterations, two chains.
  assert [s for s, _ in fit['hmc/log_joint/chain_1']] == list(range(10))
  assert 'hmc/diagnostics/fn_rhat_max' in fit
  tags = summaries.read_tags(str(board / 'vi' / 'attacks_paper'))
  assert tags['adversarial/pgd_predictive'] == 'images'
  assert tags['attack/paper/results'] == 'text'
  assert summaries.read_tags(str(board / 'vi' / 'fit'))[
      'posterior/dense_0/kernel'] == 'histograms'
  # The strong protocol through the same binary: a deterministic surrogate
  # is trained for the transfer attack, and the worst case is reported.
  strong = ['--config.attack.protocol=strong', '--config.attack.apgd_steps=5',
            '--config.attack.apgd_restarts=1',
            '--config.attack.square_queries=10', '--config.sgd.epochs=1',
            '--config.sgd.hidden=(16,)']
  _run(['binaries/attack.py', '--config=configs/table1.py:cpu',
        '--config.attack.num_points=20', '--config.attack.num_samples=5',
        '--check_points=0', '--methods=vi',
        f"--evidence_dir={tmp_path / 'claim'}"] + common + vi + strong,
       tmp_path)
  rows = pd.read_csv(tmp_path / 'mnist' / 'attacks_strong.csv')
  # The summary became a claim: each figure read back from the folder's copy.
  from tfp_robust.reports import evidence  # pylint: disable=g-import-not-at-top
  values = evidence.read_values(str(tmp_path / 'claim'))
  assert values['vi_worst_case_all_acc'] == pytest.approx(
      rows.set_index('attack').loc['worst_case', 'adversarial_accuracy'])
  assert set(rows['protocol']) == {'strong'}
  assert {'apgd', 'square', 'transfer_half', 'transfer_surrogate',
          'worst_case', 'certified'} <= set(rows['attack'])
  by_attack = rows.set_index('attack')['adversarial_accuracy']
  assert by_attack['worst_case'] <= rows[
      ~rows['attack'].isin(['certified', 'random'])][
          'adversarial_accuracy'].min() + 1e-9
  assert 'checks_failed' in rows.columns
  # Which images survive, class by class, on the same saved VI.
  _run(['binaries/survivors.py', '--config=configs/table1.py:cpu',
        '--config.attack.num_points=20', '--config.attack.num_samples=5',
        '--methods=vi', '--steps=3', '--restarts=1'] + common + vi, tmp_path)
  rows = pd.read_csv(tmp_path / 'mnist' / 'survivors.csv')
  assert rows['images'].sum() == 20 and set(rows['method']) == {'vi'}
  overall = ((rows['adversarial_accuracy'] * rows['images']).sum() / 20)
  assert abs(rows['overall_adversarial_accuracy'][0] - overall) < 1e-9
  assert (rows['adversarial_accuracy'] <= rows['clean_accuracy'] + 1e-9).all()


@pytest.mark.slow
def test_mixing_binary_judges_a_run_and_writes_its_evidence(tmp_path):
  # A tiny run of the mixing config (plain HMC, 2 segments of 3 draws), then
  # its judgement: diagnostics against the criteria, the trajectory point by
  # point, and an evidence folder that reads back.
  tiny = ['--config=configs/mixed_mnist.py:train_1k',
          '--config.hmc.kernel=hmc', '--config.hmc.mass_matrix=identity',
          '--config.hmc.num_leapfrog_steps=3', '--config.hmc.hidden=(8,)',
          '--config.hmc.num_train=200', '--config.hmc.num_burnin_steps=4',
          '--config.hmc.num_results=6', '--config.hmc.segment_size=3',
          '--config.hmc.warm_up_checkpoint_every=0',
          '--config.hmc.init_sgd.epochs=1', '--config.diagnostic_points=20',
          '--config.num_test=100']
  _run(['binaries/train.py', '--method=hmc'] + tiny, tmp_path)
  out = tmp_path / 'mixing'
  printed = _run(['binaries/mixing.py', f'--out={out}'] + tiny, tmp_path)
  assert 'not mixed' in printed  # 6 draws cannot give a bulk ESS of 100.
  import json  # pylint: disable=g-import-not-at-top
  diagnostics = json.loads((out / 'diagnostics.json').read_text())
  assert diagnostics['num_draws'] == 6 and diagnostics['num_chains'] == 4
  assert diagnostics['mixed'] is False
  assert diagnostics['fn_bulk_ess_min'] < 100
  assert diagnostics['fn_split_rhat_max'] >= 1.0
  trajectory = pd.read_csv(out / 'trajectory.csv')
  # Points at segment ends with draws enough for a split R-hat (3 are not).
  assert list(trajectory['num_draws']) == [6]
  from tfp_robust.reports import evidence  # pylint: disable=g-import-not-at-top
  values = evidence.read_values(str(out))
  assert values['fn_bulk_ess_min'] == pytest.approx(
      diagnostics['fn_bulk_ess_min'])
  assert values['fn_split_rhat_max_at_6'] == pytest.approx(
      diagnostics['fn_split_rhat_max'])
  # Two segments give no trend: a NaN in the diagnostics, no claimed value.
  assert diagnostics['logjoint_trend_z'] != diagnostics['logjoint_trend_z']
  assert 'logjoint_trend_z' not in values
  # A config without the criteria is refused by name.
  result = subprocess.run(
      [sys.executable, 'binaries/mixing.py', '--config=configs/table1.py:cpu',
       f'--workdir={tmp_path}'], cwd=REPO, capture_output=True, text=True,
      timeout=300)
  assert result.returncode != 0 and 'no `mixing` section' in result.stderr
  assert 'Traceback' not in result.stderr


@pytest.mark.slow
def test_gradients_binary_conv_vi(tmp_path):
  common = ['--config.num_train=300', '--config.num_test=50',
            '--config.gradients.num_points=20', '--methods=vi']
  _run(['binaries/train.py', '--config=configs/gradients.py:cpu',
        '--method=vi', '--config.vi.epochs=1', '--config.vi.num_samples=10',
        '--config.num_train=300', '--config.num_test=50'], tmp_path)
  _run(['binaries/gradients.py', '--config=configs/gradients.py:cpu'] +
       common, tmp_path)
  table = pd.read_csv(tmp_path / 'mnist' / 'gradient_magnitudes.csv')
  assert list(table['num_samples']) == [1, 10]
  assert (tmp_path / 'mnist' / 'figure3_vi.png').exists()


def test_curves_binary_gives_both_protocols_and_the_certified_band(tmp_path):
  out = _run(['binaries/curves.py', '--config=configs/curves.py:cpu',
              '--methods=sgd,ensemble', '--config.num_train=500',
              '--config.num_test=50', '--config.attack.num_points=20',
              "--config.attack.eps=(0.0, 0.1, 1.0)",
              '--config.attack.apgd_steps=5', '--config.attack.apgd_restarts=1',
              '--config.attack.square_queries=10', '--config.sgd.epochs=1',
              '--config.sgd.hidden=(16,)', '--config.ensemble.num_members=2'],
             tmp_path)
  rows = pd.read_csv(tmp_path / 'mnist' / 'curves.csv')
  assert set(rows['protocol']) == {'paper', 'strong'}
  assert set(rows['method']) == {'sgd', 'ensemble'}
  # IBP and CROWN rows (configs/table1.py); the band's bound is the larger.
  assert set(rows[rows['attack'] == 'certified']['loss']) == {'ibp', 'crown'}
  certified = rows[rows['attack'] == 'certified'].groupby(
      ['method', 'protocol', 'eps'])['adversarial_accuracy'].max()
  clean = rows.groupby('method')['clean_accuracy'].first()
  for method in ('sgd', 'ensemble'):
    assert certified[(method, 'strong', 0.0)] == pytest.approx(clean[method])
    assert certified[(method, 'strong', 1.0)] == 0.0
  worst = rows[rows['attack'] == 'worst_case'].set_index(['method', 'eps'])[
      'adversarial_accuracy']
  assert worst[('sgd', 1.0)] <= 0.05
  assert (tmp_path / 'mnist' / 'curves.png').stat().st_size > 5000
  assert 'eps_one_breaks_everything_sgd_strong' in out
  # The band: certified <= strongest attack at every radius, gap stated.
  band = pd.read_csv(tmp_path / 'mnist' / 'curves_band.csv')
  assert len(band) == 6
  assert (band['certified'] <= band['strongest'] + 1e-9).all()
  assert (band['gap'] == band['strongest'] - band['certified']).all()
  sgd = band.set_index(['method', 'eps']).loc[('sgd', 0.1)]
  assert sgd['strongest'] <= worst[('sgd', 0.1)]
  assert sgd['strongest'] <= sgd['paper_pgd']
  assert sgd['strongest_by'].split('/')[0] in ('paper', 'strong')


def test_evaluate_binary_takes_every_model_form(tmp_path):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from tfp_robust import data  # pylint: disable=g-import-not-at-top
  from tfp_robust import ensemble as ensemble_lib  # pylint: disable=g-import-not-at-top
  from tfp_robust import export  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import models  # pylint: disable=g-import-not-at-top
  from tfp_robust import networks  # pylint: disable=g-import-not-at-top
  mnist = data.load_tfds('mnist', num_train=2000, num_test=10)
  tf_keras.utils.set_random_seed(0)
  net = tf_keras.Sequential([tf_keras.Input((784,)),
                             tf_keras.layers.Dense(32, activation='relu'),
                             tf_keras.layers.Dense(10)])
  net.compile('adam', tf_keras.losses.SparseCategoricalCrossentropy(
      from_logits=True))
  net.fit(mnist.x_train, mnist.y_train, epochs=1, verbose=0)
  net.save(str(tmp_path / 'net.keras'))
  export.save_model(ensemble_lib.KerasEnsemble(net), str(tmp_path / 'sm'))
  ours = models.train_deterministic(
      networks.Architecture.mlp(784, [16], 10), mnist.x_train, mnist.y_train,
      models.TrainConfig(epochs=1, batch_size=64))
  ours.save(str(tmp_path / 'ens'))
  args = ['binaries/evaluate.py', '--config.attack.protocol=paper',
          '--config.attack.num_points=30', '--config.attack.pgd_steps=3']
  clean = {}
  for name in ('net.keras', 'sm', 'ens'):
    out = _run(args + [f'--model={tmp_path / name}'], tmp_path / f'out_{name}')
    assert 'Checks failed:' in out
    rows = pd.read_csv(tmp_path / f'out_{name}' / 'evaluation.csv')
    assert {'random', 'fgsm', 'pgd', 'certified'} & set(rows['attack'])
    clean[name] = rows['clean_accuracy'].iloc[0]
  assert clean['net.keras'] == pytest.approx(clean['sm'])
  assert np.isfinite(clean['ens'])
  bad = subprocess.run([sys.executable] + args + [
      f'--model={tmp_path / "missing"}', f'--workdir={tmp_path / "o"}'],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0 and 'No model at' in bad.stderr


def test_samplers_binary_writes_table_and_both_figures(tmp_path):
  # A tiny comparison through the binary: the shipped config, shrunk by a
  # config file of the user's own.
  config = tmp_path / 'tiny_samplers.py'
  config.write_text(
      'from tfp_robust.core import config_lib\n'
      'def get_config(variant="cpu"):\n'
      f'  config = config_lib.load_config_file({REPO!r} + '
      '"/configs/samplers.py", variant)\n'
      '  target = config.targets.halfmoons\n'
      '  target.num_train, target.num_test = 100, 100\n'
      '  target.fit.hmc.update(dict(hidden=(8,), num_results=10,\n'
      '                             num_burnin_steps=20, segment_size=5,\n'
      '                             jit_compile=False))\n'
      '  target.variants = ("fixed_2",)\n'
      '  config.target_order = ("halfmoons",)\n'
      '  config.diagnostic_points = config.attack_points = 20\n'
      '  config.pgd_steps = 3\n'
      '  return config\n')
  workdir = tmp_path / 'out'
  out = _run(['binaries/samplers.py', f'--config={config}:cpu'], workdir)
  assert 'of 1 variants reach function-space R-hat < 1.1' in out
  table = pd.read_csv(workdir / 'samplers.csv')
  assert list(table['variant']) == ['fixed_2']
  for name in ('samplers.md', 'samplers.png', 'mixing.png'):
    assert (workdir / name).stat().st_size > 0, name


# --print_config and the checks, before TensorFlow: each binary is run with a
# finder in front of sys.meta_path that refuses TensorFlow (and the other
# heavy imports), and reports at exit whether any of them was imported.
_WITHOUT_TENSORFLOW = r"""
import atexit, importlib.abc, os, runpy, sys
HEAVY = ('tensorflow', 'tensorflow_probability', 'tf_keras', 'pandas',
         'matplotlib', 'sklearn', 'tensorflow_datasets')
class Refuse(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in HEAVY:
      raise ImportError(f'{name} imported before the checks')
sys.meta_path.insert(0, Refuse())
atexit.register(lambda: sys.stderr.write('HEAVY_MODULES=%s\n' % sorted(
    {m.split('.')[0] for m in sys.modules} & set(HEAVY))))
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name='__main__')
"""


def _run_without_tensorflow(args):
  result = subprocess.run([sys.executable, '-c', _WITHOUT_TENSORFLOW] + args,
                          cwd=REPO, capture_output=True, text=True,
                          timeout=120)
  assert 'HEAVY_MODULES=[]' in result.stderr, result.stderr[-3000:]
  return result


_CONFIGS = {'ablation': 'table1', 'attack': 'table1', 'curves': 'curves',
            'gradients': 'gradients', 'survivors': 'table1',
            'train': 'table1', 'mixing': 'mixed_mnist.py:train_1k',
            'saturation': 'table1', 'peer': 'peer',
            'certify_check': 'certify_check'}
_WITHOUT_CONFIG = ('benchmark', 'evidence', 'reproduce', 'verdict')


@pytest.mark.parametrize('name', sorted(
    os.path.basename(p)[:-3] for p in os.listdir(os.path.join(REPO, 'binaries'))
    if p.endswith('.py') and not p.startswith('_')))
def test_print_config_answers_before_tensorflow(name):
  args = [f'binaries/{name}.py', '--print_config']
  if name in _CONFIGS:
    config = _CONFIGS[name]
    args.append(f'--config=configs/{config}' if ':' in config else
                f'--config=configs/{config}.py:cpu')
  if name == 'train':
    args.append('--method=hmc')
  if name == 'evaluate':
    args.append('--model=net.keras')  # Required; not read before main.
  if name not in _WITHOUT_CONFIG:
    args.append('--config.seed=7')  # An override, shown resolved.
  result = _run_without_tensorflow(args)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  if name in _WITHOUT_CONFIG:
    assert lines[0] == '# This binary takes no --config; its flags:'
  else:
    assert '--config.seed=7' in lines
    fields = [l for l in lines if l.startswith('--config.')]
    assert len(fields) >= 5 and fields == sorted(fields)
  assert any(l.startswith('--workdir=') or l.startswith('--output=') or
             l.startswith('# --workdir') or l.startswith('--repo=')
             for l in lines), lines


def test_print_config_lists_every_field_as_a_flag_that_parses():
  """Each printed line, given back as a flag, reproduces the config."""
  from tfp_robust.core import config_lib  # pylint: disable=g-import-not-at-top
  out = _run_without_tensorflow(
      ['binaries/attack.py', '--config=configs/table1.py:cpu',
       '--print_config', "--config.hmc.hidden=(32, 16)"]).stdout
  fields = [l for l in out.splitlines() if l.startswith('--config.')]
  assert '--config.hmc.hidden="(32, 16)"' in fields
  config = config_lib.load_config_file(
      os.path.join(REPO, 'configs', 'table1.py'), 'cpu')
  config.hmc.hidden = (32, 16)
  flat = {}
  def walk(section, prefix):
    for key, value in section.items():
      if hasattr(value, 'items') and not isinstance(value, dict):
        walk(value, f'{prefix}.{key}')
      else:
        flat[f'{prefix}.{key}'] = value
  walk(config, '--config')
  assert sorted(l.split('=')[0] for l in fields) == sorted(flat)
  # `--print_config` is what --helpfull points at.
  helpfull = subprocess.run(
      [sys.executable, 'binaries/attack.py', '--helpfull'], cwd=REPO,
      capture_output=True, text=True, timeout=120).stdout
  assert '--print_config' in helpfull and '--config.<field>' in helpfull


@pytest.mark.parametrize('args, message', [
    (['binaries/attack.py', '--config=configs/table1.py:cpu',
      '--config.attack.protocl=strong'],
     'Did you mean "protocol" instead of "protocl"'),
    (['binaries/attack.py', '--config=configs/table1.py:cpu',
      '--config.attack.protocol=strnog'],
     "--config.attack.protocol='strnog' is invalid"),
    (['binaries/attack.py', '--config=configs/table1.py:cpu',
      '--config.hmc.num_results=0'], '--config.hmc.num_results=0 is invalid'),
    (['binaries/attack.py', '--config=configs/table1_mixing.py:cpu',
      '--config.hmc.trajectory=jittred'],
     "--config.hmc.trajectory='jittred' is invalid"),
    (['binaries/attack.py', '--config=configs/table1.py:cpu',
      '--methods=hmcc'], "--methods='hmcc' is invalid"),
    (['binaries/train.py', '--config=configs/table1.py:cpu', '--method=vi',
      '--config.vi.learning_rate=nan'], '--config.vi.learning_rate=nan'),
    (['binaries/quickstart.py', '--config.model.hidden=(0,)'],
     '--config.model.hidden=0 is invalid'),
    (['binaries/survivors.py', '--config=configs/table1.py:cpu',
      '--steps=0'], '--steps=0 is invalid'),
    (['binaries/grid.py', '--shard_index=4', '--num_shards=2'],
     '--shard_index=4 is invalid'),
    (['binaries/halfmoons_grid.py', '--config.min_accuracy=2'],
     '--config.min_accuracy=2'),
    (['binaries/samplers.py', '--targets=halfmoon'],
     "--targets='halfmoon' is invalid"),
    (['binaries/benchmark.py', '--only=mnist_gradients'],
     "--only='mnist_gradients' is invalid"),
])
def test_bad_flags_and_config_are_answered_before_tensorflow(
    tmp_path, args, message):
  result = _run_without_tensorflow(args + [f'--workdir={tmp_path}'] if
                                   'benchmark' not in args[0] else args)
  assert result.returncode == 1, result.stderr[-3000:]
  assert message in result.stderr, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr


def test_light_copies_match_the_modules_they_copy():
  """config_checks holds the names heavy modules define, so that a config is
  checked without TensorFlow: the copies must stay equal."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from tfp_robust.core import config_checks  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import fitting  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import hmc  # pylint: disable=g-import-not-at-top
  from tfp_robust.attacks import losses  # pylint: disable=g-import-not-at-top
  from tfp_robust import networks  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import original as original_hmc  # pylint: disable=g-import-not-at-top
  from tfp_robust.evaluation import protocols  # pylint: disable=g-import-not-at-top
  from tfp_robust.experiments.grid import cells  # pylint: disable=g-import-not-at-top
  from tfp_robust.experiments.grid import executors  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit.mcmc import kernels  # pylint: disable=g-import-not-at-top
  assert config_checks.ACTIVATIONS == tuple(sorted(networks.ACTIVATIONS))
  assert config_checks.LOSSES == tuple(sorted(losses.LOSSES))
  assert config_checks.PROTOCOLS == protocols.PROTOCOLS
  from tfp_robust.evaluation import certify  # pylint: disable=g-import-not-at-top
  assert config_checks.CERTIFY_METHODS == certify.METHODS
  assert config_checks.METHODS == fitting.METHODS
  assert config_checks.VIEWS == fitting.VIEWS
  assert config_checks.HMC_INITS == hmc.INITS
  assert set(config_checks.HMC_FIELDS) == {
      f.name for f in dataclasses.fields(hmc.HMCConfig)} - {'seed'}
  assert set(config_checks.ORIGINAL_HMC_FIELDS) == {
      f.name for f in dataclasses.fields(original_hmc.OriginalHMCConfig)} - {
          'seed'}
  assert config_checks.HMC_CHOICES == {
      'kernel': kernels.KERNELS, 'mass_matrix': kernels.MASS_MATRICES,
      'mass_matrix_adaptation': kernels.MASS_MATRIX_ADAPTATIONS,
      'trajectory': kernels.TRAJECTORIES}
  assert config_checks.GRID_AXES == cells.AXES
  assert config_checks.GRID_EXECUTORS == executors.EXECUTORS
  out = _run_without_tensorflow(['binaries/grid.py', '--print_config']).stdout
  assert f'--max_map_fraction={executors.MAX_MAP_FRACTION}' in out
