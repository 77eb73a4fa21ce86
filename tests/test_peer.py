"""Speed against a peer (`experiments.peer`, `binaries/peer.py`).

The NumPyro parts need the `benchmark` extra (jax[cpu], numpyro), which the
test extra does not install (too heavy for CI): those tests are skipped,
by `pytest.importorskip`, where JAX or NumPyro is missing. The end-to-end
run of the binary compiles both samplers (minutes on 2 shared cores), so
it is marked slow.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfp_robust.core import config_lib
from tfp_robust.core import validate
from tfp_robust.experiments import peer
from tfp_robust.experiments import peer_numpyro

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, 'configs', 'peer.py')
# The budget: the only settings the comparison may change from the rung.
BUDGET = ('num_burnin_steps', 'num_results', 'segment_size',
          'warm_up_checkpoint_every')


def _config(variant='tiny'):
  return config_lib.load_config_file(CONFIG, variant)


def test_the_cpu_config_is_the_train_1k_rung_but_for_its_budget():
  from tfp_robust.fit import fitting  # pylint: disable=g-import-not-at-top
  mine = _config('cpu')
  rung = config_lib.load_config_file(
      os.path.join(REPO, 'configs', 'mixed_mnist.py'), 'train_1k')
  ours, theirs = (vars(fitting.hmc_config(c.hmc, c.seed)) for c in
                  (mine, rung))
  # The rung compiles by the package's default (XLA, which the test suite
  # turns off); the comparison asks for XLA itself, as NumPyro compiles.
  assert ours['jit_compile'] is True
  differ = sorted(k for k in ours
                  if ours[k] != theirs[k] and k != 'jit_compile')
  assert set(differ) <= set(BUDGET), differ
  for key in ('hidden', 'activation', 'num_train', 'init'):
    assert mine.hmc[key] == rung.hmc[key], key
  assert mine.hmc.init_sgd.to_dict() == rung.hmc.init_sgd.to_dict()
  assert (mine.dataset, mine.seed) == (rung.dataset, rung.seed)
  assert mine.diagnostic_points == rung.diagnostic_points == 500
  assert (mine.hmc.num_chains, mine.hmc.max_tree_depth) == (4, 6)
  for variant in ('cpu', 'tiny'):
    peer.check(_config(variant))


@pytest.mark.parametrize('field,value,message', [
    ('hmc.kernel', 'hmc', r"--config\.hmc\.kernel='hmc' is invalid: the "
     "peer is NumPyro's NUTS"),
    ('hmc.mass_matrix', 'identity', r'--config\.hmc\.mass_matrix='),
    ('hmc.mass_matrix_adaptation', 'single',
     r"mass_matrix_adaptation='single' is invalid"),
    ('hmc.num_chains', 1, r'num_chains=1 is invalid: .* >= 2'),
    ('peer.chain_method', 'parallel', r'chain_method=.* must be one of'),
    ('peer.cpu_threads', -1, r'cpu_threads=-1 is invalid'),
    ('peer.threads', 2, r"--config\.peer\.threads=2 is invalid: the peer "
     r"section has no field 'threads'"),
    ('hmc.layers', ({'kind': 'flatten'},), r'ports dense nets only'),
])
def test_check_refuses_what_the_comparison_cannot_run(field, value, message):
  config = _config()
  section, key = field.split('.')
  with config.unlocked():
    config[section][key] = value
  with pytest.raises(validate.InvalidArgument, match=message):
    peer.check(config)


def test_without_jax_the_error_names_the_benchmark_extra(monkeypatch):
  for module in ('jax', 'numpyro'):
    monkeypatch.setitem(sys.modules, module, None)  # `import` then fails.
    with pytest.raises(ImportError, match=r'pip install -e "\.\[benchmark\]"'):
      peer_numpyro.require()
    monkeypatch.undo()


@pytest.fixture(scope='module')
def tiny_target():
  """The tiny config's target (40 MNIST images, 784-8-10) and two points."""
  pytest.importorskip('jax')
  pytest.importorskip('numpyro')
  from tfp_robust.fit import hmc  # pylint: disable=g-import-not-at-top
  config = _config()
  architecture, x, y, _ = peer.load_target(config)
  start = [np.asarray(p) for p in hmc.initial_network_state(
      architecture, 2, np.array([0, 1], np.int32))]
  moved = [p + 0.5 * np.random.default_rng(index).standard_normal(
      p.shape).astype(np.float32) for index, p in enumerate(start)]
  return architecture, x, y, [start, moved]


def test_the_two_log_joints_and_gradients_agree_at_the_same_weights(
    tiny_target):
  architecture, x, y, points = tiny_target
  same = peer_numpyro.same_target(architecture, x, y, 1.0, points)
  assert same['points'] == 2
  assert same['value_rel_gap'] < 1e-6, same
  assert same['ours_vs_float64'] < 1e-6 and same['numpyro_vs_float64'] < 1e-6
  assert same['gradient_rel_gap'] < 1e-5, same
  assert np.allclose(same['ours_log_joint'], same['float64_log_joint'],
                     rtol=1e-6)
  assert -1e5 < same['ours_log_joint'][0] < -1e3  # 6,370 weights, 40 images.


@pytest.mark.parametrize('change', ['prior', 'labels'])
def test_the_check_sees_another_target(tiny_target, change):
  """The comparison fails when NumPyro's target differs in its prior or
  its data: the agreement above is not a tolerance wide enough for any."""
  architecture, x, y, points = tiny_target
  from tfp_robust.fit import hmc  # pylint: disable=g-import-not-at-top
  ours = hmc.network_log_joint(architecture, x, y, 1.0)(*points[1]).numpy()
  scale, labels = (1.1, y) if change == 'prior' else (1.0, (y + 1) % 10)
  theirs, _ = peer_numpyro.value_and_gradient(architecture, scale, x, labels)(
      peer_numpyro.as_sites(architecture, points[1]))
  assert np.max(np.abs(ours - np.asarray(theirs)) / np.abs(ours)) > 1e-3


@pytest.mark.slow
def test_the_binary_runs_both_samplers_and_writes_the_report(tmp_path):
  pytest.importorskip('jax')
  pytest.importorskip('numpyro')
  from tfp_robust.reports import evidence  # pylint: disable=g-import-not-at-top
  result = subprocess.run(
      [sys.executable, 'binaries/peer.py', '--config=configs/peer.py:tiny',
       f'--workdir={tmp_path}'], cwd=REPO, capture_output=True, text=True,
      timeout=1800)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / 'peer.json') as f:
    report = json.load(f)
  assert report['same_target']['value_rel_gap'] < 1e-6
  assert report['same_target']['gradient_rel_gap'] < 1e-5
  for side in ('ours', 'numpyro'):
    figures = report[side]
    assert (figures['num_draws'], figures['num_chains']) == (8, 2)
    for key in peer.ESS_KEYS:
      assert figures[key] > 0 and figures[key + '_per_hour'] > 0
    assert 1 <= figures['leapfrogs_per_draw'] <= 2 ** 3 - 1
    assert figures['gradient_evaluations_per_second'] > 0
    assert figures['warm_up_seconds'] > 0 and figures['sampling_seconds'] > 0
  ratio = report['ours_over_numpyro']
  assert ratio['product'] == pytest.approx(
      ratio['fn_bulk_ess_median_per_kept_hour'], rel=1e-9)
  assert ratio['seconds_per_leapfrog'] == pytest.approx(
      ratio['gradient_alone'] * ratio['sampler_overhead'], rel=1e-9)
  assert report['command'].startswith('python binaries/peer.py')
  assert report['config']['hmc']['max_tree_depth'] == 3
  values = evidence.read_values(str(tmp_path))
  assert values['ratio_leapfrogs_per_draw'] == ratio['leapfrogs_per_draw']
  text = (tmp_path / 'peer.md').read_text()
  assert '| | ours (TFP) | NumPyro | ours / NumPyro |' in text
  assert 'Where the difference comes from' in text
