"""Bad input is refused early with a message naming argument, value and fix."""

import glob
import importlib.util
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tfp_robust.attacks import gradient as attacks
from tfp_robust.core import config_checks
from tfp_robust.core import config_lib
from tfp_robust import data
from tfp_robust.fit import fitting
from tfp_robust.fit import hmc
from tfp_robust.evaluation import metrics
from tfp_robust.fit import models
from tfp_robust import networks
from tfp_robust.evaluation import protocols
from tfp_robust.experiments import peer as peer_comparison
from tfp_robust.experiments import samplers as sampler_comparison
from tfp_robust.core import validate
from tfp_robust.ensemble import ArchitectureEnsemble

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = networks.Architecture.mlp(2, [4], 2)


def _table1():
  return config_lib.load_config_file(os.path.join(REPO, 'configs',
                                                  'table1.py'), 'cpu')


@pytest.fixture(scope='module')
def tiny_ensemble():
  rng = np.random.RandomState(0)
  return ArchitectureEnsemble(
      TINY, [rng.normal(size=(3,) + s).astype(np.float32)
             for _, s in TINY.param_shapes()])


# -- the helpers ------------------------------------------------------------

def test_messages_name_argument_value_and_fix():
  with pytest.raises(validate.InvalidArgument,
                     match=r"^epochs=0 is invalid: it must be an integer >= 1\. "
                     r'Train for at least one epoch\.$'):
    validate.integer('epochs', 0, 1, fix='Train for at least one epoch.')


@pytest.mark.parametrize('value', [2.5, 3.0, True, '3', None])
def test_integer_refuses_floats_bools_and_strings(value):
  with pytest.raises(validate.InvalidArgument, match='must be an integer'):
    validate.integer('num_steps', value, 1)


@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf, 0.0, -1.0])
def test_positive_refuses_nan_infinity_and_non_positive(value):
  with pytest.raises(validate.InvalidArgument, match='finite number > 0'):
    validate.positive('learning_rate', value)


def test_labels_refuse_fractions_accept_whole_floats():
  with pytest.raises(validate.InvalidArgument, match='non-integer values such '
                     'as 1.7'):
    validate.labels('y', np.array([0.0, 1.7]), 2)
  np.testing.assert_array_equal(validate.labels('y', np.array([0.0, 1.0]), 2),
                                [0, 1])
  with pytest.raises(validate.InvalidArgument, match=r'lie in \[0, 9\]'):
    validate.labels('y', np.array([0, 10]), 10)


# -- item 1: every config checked before any training -------------------------

@pytest.mark.parametrize('path', sorted(glob.glob(os.path.join(REPO, 'configs',
                                                               '*.py'))))
def test_every_shipped_config_passes(path):
  # The sampler comparison's config has its own shape (targets x variants)
  # and its own check, which runs every variant's HMC section through
  # config_checks.hmc_section.
  # The certified-bounds check has its own small config and check; a config
  # with its own variants (mixed_mnist's rungs) names them.
  checker = {'samplers.py': sampler_comparison.check,
             'peer.py': peer_comparison.check,
             'certify_check.py': config_checks.certify_check}.get(
                 os.path.basename(path), config_checks.check)
  spec = importlib.util.spec_from_file_location('shipped', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for variant in getattr(module, 'VARIANTS', ('cpu', 'paper')):
    checker(config_lib.load_config_file(path, variant))


@pytest.mark.parametrize('section', ['', 'sgd', 'vi', 'hmc', 'hmc.init_sgd',
                                     'hmc_original', 'attack'])
def test_unknown_fields_are_refused_in_every_section(section):
  config = _table1()
  target = config
  for part in filter(None, section.split('.')):
    target = target[part]
  target['learning_rat'] = 0.5
  with pytest.raises(validate.InvalidArgument,
                     match=r'learning_rat=0\.5 is invalid: .*no field '
                     r"'learning_rat'\. Known fields: "):
    config_checks.check(config)


def test_bad_later_method_fails_before_earlier_ones_train(tmp_path):
  config = _table1()
  config.hmc.num_results = 0
  with pytest.raises(validate.InvalidArgument,
                     match=r'--config\.hmc\.num_results=0 is invalid'):
    fitting.ensure_trained(config, ['sgd', 'vi', 'hmc'], str(tmp_path))
  assert not os.listdir(tmp_path)  # Nothing trained, nothing written.


@pytest.mark.parametrize('field,value,message', [
    ('hmc.num_results', 0, 'integer >= 1'),
    ('hmc.step_size', math.nan, 'finite number > 0'),
    ('hmc.prior_scale', math.inf, 'finite number > 0'),
    ('hmc.target_accept_prob', 1.0, r'> 0\.0 and < 1\.0'),
    ('hmc.target_accept_prob', 0.0, r'> 0\.0 and < 1\.0'),
    ('vi.learning_rate', math.nan, 'finite number > 0'),
    ('sgd.learning_rate', math.inf, 'finite number > 0'),
    ('sgd.epochs', 0, 'integer >= 1'),
    ('vi.batch_size', 0, 'integer >= 1'),
    ('hmc.hidden', (0,), 'integer >= 1'),
    ('sgd.hidden', (-4,), 'integer >= 1'),
    ('num_train', -59700, 'integer >= 0'),
    ('num_test', -1, 'integer >= 0'),
    ('seed', -1, 'integer >= 0'),
    ('attack.eps', (1.5,), r'<= 1\.0'),
    ('attack.eps', (math.inf,), 'finite number'),
    ('attack.eps', (), 'at least one radius'),
    ('attack.num_points', 0, 'integer >= 1'),
    ('attack.protocol', 'strongest', 'must be one of'),
    ('attack.losses', ('crossentropy',), 'must be one of'),
    ('dataset', 'cifar10', 'must be one of'),
])
def test_bad_values_name_the_flag(field, value, message):
  config = _table1()
  *parents, key = field.split('.')
  target = config
  for part in parents:
    target = target[part]
  with target.ignore_type():
    target[key] = value
  with pytest.raises(validate.InvalidArgument,
                     match=rf'--config\.{field}=.* is invalid: .*{message}'):
    config_checks.check(config)


def test_unknown_method_is_refused():
  with pytest.raises(validate.InvalidArgument, match=r"--methods='foo'"):
    config_checks.check(_table1(), ['foo'])


# -- item 2: the silent cases ---------------------------------------------------

@pytest.mark.parametrize('eps', [1.5, math.inf, math.nan, -0.1])
def test_attacks_refuse_eps_outside_the_unit_range(tiny_ensemble, moons, eps):
  from tfp_robust.attacks import apgd  # pylint: disable=g-import-not-at-top
  from tfp_robust.attacks import square  # pylint: disable=g-import-not-at-top
  x, y = moons.x_test[:4], moons.y_test[:4]
  for attack in (lambda: attacks.fgsm(tiny_ensemble, x, y, eps),
                 lambda: attacks.pgd(tiny_ensemble, x, y, eps),
                 lambda: apgd.apgd(tiny_ensemble, x, y, eps),
                 lambda: square.square(tiny_ensemble, x, y, eps)):
    with pytest.raises(validate.InvalidArgument, match='eps='):
      attack()


def test_empty_evaluation_set_is_refused(tiny_ensemble):
  config = config_lib.attack_section()
  with pytest.raises(ValueError, match='no inputs'):
    protocols.evaluate(tiny_ensemble, np.zeros((0, 2), np.float32),
                       np.zeros((0,), np.int32), config)


@pytest.mark.parametrize('num_train,num_test', [(-59700, None), (None, -5),
                                                (0, None)])
def test_negative_or_zero_counts_are_refused_by_the_loader(num_train,
                                                           num_test):
  with pytest.raises(validate.InvalidArgument, match='num_t'):
    data.load_tfds('mnist', num_train=num_train, num_test=num_test)


def test_hmc_refuses_fractional_labels_instead_of_truncating(moons):
  config = hmc.HMCConfig(num_results=2, num_burnin_steps=0, segment_size=2)
  y = moons.y_train[:20].astype(np.float32)
  y[3] = 1.7
  with pytest.raises(validate.InvalidArgument, match='1.7'):
    hmc.fit(TINY, moons.x_train[:20], y, config)


@pytest.mark.parametrize('field,value', [
    ('step_size', math.nan), ('step_size', math.inf), ('prior_scale', math.nan),
    ('target_accept_prob', 1.5), ('target_accept_prob', 0.0),
    ('num_results', 2.0), ('seed', -3)])
def test_hmc_config_refuses_non_finite_and_out_of_range(field, value):
  config = hmc.HMCConfig(**{field: value})
  with pytest.raises(validate.InvalidArgument, match=f'HMCConfig.{field}='):
    config.validate()


@pytest.mark.parametrize('trainer', ['sgd', 'ensemble'])
@pytest.mark.parametrize('bad', ['unscaled', 'nan', 'labels'])
def test_training_refuses_unscaled_or_nan_inputs_and_bad_labels(moons, trainer,
                                                                bad):
  x, y = moons.x_train[:50].copy(), moons.y_train[:50].copy()
  if bad == 'unscaled':
    x = x * 255.0
    expected = r'scaled to \[0, 1\]'
  elif bad == 'nan':
    x[0, 0] = np.nan
    expected = 'NaN or infinite'
  else:
    y[0] = 2
    expected = r'lie in \[0, 1\]'
  config = models.TrainConfig(epochs=1, batch_size=10)
  with pytest.raises(validate.InvalidArgument, match=expected):
    if trainer == 'sgd':
      models.train_deterministic(TINY, x, y, config)
    else:
      models.train_deep_ensemble(TINY, x, y, config, 2)


@pytest.mark.parametrize('field,value', [
    ('learning_rate', math.nan), ('learning_rate', math.inf),
    ('epochs', 0), ('batch_size', 0), ('seed', -1)])
def test_train_config_is_checked(moons, field, value):
  settings = dict(epochs=1, batch_size=10)
  settings[field] = value
  config = models.TrainConfig(**settings)
  with pytest.raises(validate.InvalidArgument, match=f'TrainConfig.{field}='):
    models.train_deterministic(TINY, moons.x_train[:20], moons.y_train[:20],
                               config)


def test_non_finite_weights_are_refused():
  params = [np.zeros((2,) + s, np.float32) for _, s in TINY.param_shapes()]
  params[1][0, 0] = np.nan
  with pytest.raises(ValueError, match='dense_0/bias holds 1 NaN'):
    ArchitectureEnsemble(TINY, params)


# -- item 3: the raw and crashing cases -------------------------------------

@pytest.mark.parametrize('layer,message', [
    ({'kind': 'dense', 'units': 0}, r'hidden\[0\]\.units=0'),
    ({'kind': 'dense', 'units': -3}, r'hidden\[0\]\.units=-3'),
    ({'kind': 'conv2d', 'filters': 4, 'kernel_size': 0},
     r'hidden\[0\]\.kernel_size=0'),
    ({'kind': 'dense', 'units': 2.5}, r'hidden\[0\]\.units=2\.5'),
])
def test_layer_sizes_are_refused_before_any_allocation(layer, message):
  with pytest.raises(validate.InvalidArgument, match=message):
    networks.Architecture((28, 28, 1), 10, (layer,))


def test_metrics_refuse_mismatched_adversarial_batch(tiny_ensemble, moons):
  with pytest.raises(ValueError, match='x_adv has 3 examples and x 4'):
    metrics.robustness(tiny_ensemble, moons.x_test[:4], moons.y_test[:4],
                       moons.x_test[:3])


def test_attack_step_counts_must_be_integers(tiny_ensemble, moons):
  with pytest.raises(validate.InvalidArgument, match='num_steps=2.5'):
    attacks.pgd(tiny_ensemble, moons.x_test[:4], moons.y_test[:4], 0.1,
                num_steps=2.5)


def test_workdir_that_cannot_be_created_or_written(tmp_path):
  blocker = tmp_path / 'a_file'
  blocker.write_text('x')
  with pytest.raises(validate.InvalidArgument, match='cannot be created'):
    validate.workdir('--workdir', str(blocker / 'sub'))
  with pytest.raises(validate.InvalidArgument, match='not a directory'):
    validate.workdir('--workdir', str(blocker))
  with pytest.raises(validate.InvalidArgument, match='non-empty path'):
    validate.workdir('--workdir', '')
  if os.geteuid() != 0:  # root writes anywhere.
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    with pytest.raises(validate.InvalidArgument, match='not writable'):
      validate.workdir('--workdir', str(locked))


def test_tfds_directory_with_an_empty_dataset_folder(tmp_path):
  (tmp_path / 'mnist').mkdir()
  with pytest.raises(ValueError, match='not prepared under .*dataset_info'):
    data.load_tfds('mnist', data_dir=str(tmp_path))


@pytest.mark.parametrize('args,message', [
    (['binaries/train.py', '--config=configs/table1.py:cpu', '--method=hmc',
      '--config.hmc.num_results=0', '--workdir=WORKDIR'],
     'Error: --config.hmc.num_results=0 is invalid'),
    (['binaries/attack.py', '--config=configs/table1.py:cpu', '--methods=foo',
      '--workdir=WORKDIR'], "Error: --methods='foo' is invalid"),
    (['binaries/attack.py', '--config=configs/table1.py:cpu', '--workdir='],
     "Error: --workdir='' is invalid"),
    (['binaries/train.py', '--config=configs/table1.py:cpu', '--method=sgd',
      '--config.sgd.learning_rat=0.5', '--workdir=WORKDIR'],
     "names 'learning_rat', a field the config file does not define"),
    (['binaries/train.py', '--config=configs/missing.py:cpu', '--method=hmc',
      '--workdir=WORKDIR'], 'No such file or directory'),
    (['binaries/train.py', '--config=configs/table1.py:cpu', '--method=hmc',
      '--config.hmc.num_leapfrog_steps=2.5', '--workdir=WORKDIR'],
     'num_leapfrog_steps=2.5'),
])
def test_binaries_end_bad_input_with_one_clear_line(args, message, tmp_path):
  args = [a.replace('WORKDIR', str(tmp_path / 'work')) for a in args]
  result = subprocess.run([sys.executable] + args, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert message in result.stderr, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr, result.stderr[-2000:]
  assert not os.path.exists(tmp_path / 'work' / 'mnist')
