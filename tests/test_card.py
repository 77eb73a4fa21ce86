"""The evaluation card: binary and Python call, any data, stochastic models."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tf_keras

from tfp_robust.evaluation import card as card_lib
from tfp_robust.evaluation import certify
from tfp_robust.core import config_lib
from tfp_robust import data
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.evaluation import rows as evaluation
from tfp_robust.evaluation import instrumented
from tfp_robust import networks
from tfp_robust.core import validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A few steps of everything: what is tested is the card, not the attacks.
TINY = ['--config.attack.apgd_steps=4', '--config.attack.apgd_restarts=1',
        '--config.attack.square_queries=10', '--config.attack.pgd_steps=2']


def _tiny_settings(**overrides):
  return card_lib.Settings(attack=dict(config_lib.attack_section(
      protocol='strong', apgd_steps=4, apgd_restarts=1, square_queries=10,
      pgd_steps=2)), **overrides)


def _binary(args, workdir, ok=True):
  result = subprocess.run([sys.executable, 'binaries/evaluate.py'] + args +
                          [f'--workdir={workdir}'], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
  assert (result.returncode == 0) == ok, result.stderr[-3000:]
  return result


def _softmax(logits):
  shifted = logits - logits.max(1, keepdims=True)
  return np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)


def test_binary_cards_a_keras_conv_net_on_an_npz(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(24, 32, 32, 3)).astype(np.float32)
  y = rng.integers(0, 4, 24)
  x[y == 1, :8] = 1.0  # Something to learn: class 1 has a bright top.
  tf_keras.utils.set_random_seed(0)
  net = tf_keras.Sequential([
      tf_keras.Input((32, 32, 3)),
      tf_keras.layers.Conv2D(4, 3, activation='relu'),
      tf_keras.layers.MaxPool2D(4), tf_keras.layers.Flatten(),
      tf_keras.layers.Dense(4)])
  net.compile(tf_keras.optimizers.Adam(0.01),
              tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  net.fit(x, y, epochs=3, verbose=0)
  net.save(str(tmp_path / 'net.keras'))
  np.savez(str(tmp_path / 'test.npz'), x_test=x, y_test=y)
  workdir = tmp_path / 'W'
  out = _binary([f'--model={tmp_path / "net.keras"}',
                 f'--data={tmp_path / "test.npz"}',
                 "--config.attack.eps=(0.0, 0.02)"] + TINY, workdir).stdout
  assert 'Checks failed:' in out and 'card.md' in out
  card = json.loads((workdir / 'card.json').read_text())
  # An independent computation of the clean numbers.
  probs = _softmax(net.predict(x, verbose=0).astype(np.float64))
  onehot = np.eye(4)[y]
  top = probs.max(1)
  correct = probs.argmax(1) == y
  bins = np.minimum((top * 15).astype(int), 14)  # [k/15, (k+1)/15) bins.
  ece = sum(abs(correct[bins == b].mean() - top[bins == b].mean()) *
            (bins == b).mean() for b in range(15) if (bins == b).any())
  assert card['clean_accuracy'] == pytest.approx(correct.mean(), abs=1e-3)
  assert card['nll'] == pytest.approx(-np.log(probs[np.arange(24), y]).mean(),
                                      abs=1e-3)
  assert card['ece'] == pytest.approx(ece, abs=1e-3)
  assert card['brier'] == pytest.approx(((probs - onehot) ** 2).sum(1).mean(),
                                        abs=1e-3)
  assert [r['eps'] for r in card['robust']] == [0.0, 0.02]
  for entry in card['robust']:
    assert entry['certified'] is None or (
        entry['certified'] <= entry['accuracy'] + 1e-9)
    assert entry['status'] in ('robust', 'not robust', 'undecided')
  at_zero, attacked = card['robust']
  assert at_zero['certified'] == at_zero['accuracy'] == card['clean_accuracy']
  assert attacked['accuracy'] <= card['clean_accuracy']
  # A plain tf_keras conv net with batch norm is bounded layer by layer.
  assert attacked['certify_method'] == 'crown'
  assert attacked['certified'] <= attacked['accuracy'] + 1e-9
  costs = {a['attack']: a['model_evaluations'] for a in attacked['attacks']}
  assert costs['apgd'] > 0 and costs['square'] > 0 and costs['random'] == 0
  text = (workdir / 'card.md').read_text()
  assert '| accuracy | NLL | ECE (15 bins) | Brier |' in text
  assert '(crown)' in text and 'model evaluations' in text
  for figure in ('reliability.png', 'robustness.png'):
    assert (workdir / figure).stat().st_size > 1000


def test_python_card_certifies_a_conv_posterior(tmp_path):
  arch = networks.Architecture(
      (8, 8, 3), 3, ({'kind': 'conv2d', 'filters': 2, 'kernel_size': 3},
                     {'kind': 'max_pool', 'size': 2}, {'kind': 'flatten'}))
  rng = np.random.default_rng(1)
  params = [rng.normal(size=(3,) + shape).astype(np.float32) * 0.3
            for _, shape in arch.param_shapes()]
  model = ensemble_lib.ArchitectureEnsemble(arch, params, 'hmc')
  x = rng.uniform(size=(10, 8, 8, 3)).astype(np.float32)
  # The model expects inputs normalised by (0.5, 0.25): it is told so, and
  # eps stays in the data's units.
  normalization = ((0.5,), (0.25,))
  seen = instrumented.Instrumented(model, instrumented.affine(
      (8, 8, 3), (0.0, 1.0), normalization))
  y = seen.predict(x).numpy()  # Clean accuracy 1: bounds have room.
  settings = card_lib.Settings(attack=dict(config_lib.attack_section(
      protocol='paper', attacks=('fgsm',), losses=('predictive',))))
  result = card_lib.evaluate(model, x, y, eps=[0.002, 0.05],
                             workdir=str(tmp_path), settings=settings,
                             normalization=normalization, baseline=model)
  assert result['clean_accuracy'] == 1.0
  for entry in result['robust']:
    assert entry['certified'] is not None and entry['certify_method'] == 'crown'
    assert entry['certified'] <= entry['accuracy'] + 1e-9
  small, large = result['robust']
  assert small['certified'] >= large['certified']
  assert small['certified'] == pytest.approx(
      card_lib.certified(seen, x, y, 0.002)[0])
  # The normalisation is inside the bounds: 4 times wider boxes.
  def width(m):
    low, high = certify.predictive_bounds(m, x, 0.002)
    return float(np.mean(high - low))
  assert width(seen) > 2 * width(model)
  assert 'baseline' in result and (tmp_path / 'baseline' / 'card.md').exists()
  assert 'Beside the baseline' in (tmp_path / 'card.md').read_text()


def test_stochastic_card_shows_eot_and_spread(tmp_path, moons):
  tf_keras.utils.set_random_seed(0)
  net = tf_keras.Sequential([
      tf_keras.Input((2,)), tf_keras.layers.Dense(16, activation='relu'),
      tf_keras.layers.Dropout(0.3), tf_keras.layers.Dense(2)])
  net.compile(tf_keras.optimizers.Adam(0.02),
              tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  net.fit(moons.x_train[:300], moons.y_train[:300], epochs=10, verbose=0)
  model = ensemble_lib.StochasticEnsemble(net, num_samples=4, seed=0,
                                          call_kwargs={'training': True})
  result = card_lib.evaluate(
      model, moons.x_test[:20], moons.y_test[:20], eps=[0.1],
      workdir=str(tmp_path),
      settings=_tiny_settings(repeats=3, eot_iter=2, square_eot=3))
  assert result['resamples'] and len(result['clean_spread']['values']) == 3
  entry = result['robust'][0]
  by_name = {a['attack']: a for a in entry['attacks']}
  assert by_name['apgd']['eot'] == 2 and by_name['square']['eot'] == 3
  for attack in entry['attacks']:
    values = attack['spread']['values']
    assert len(values) == 3 and attack['accuracy'] == min(values)
  assert entry['accuracy'] == min(entry['spread']['values'])
  assert entry['certified'] is None and 'resamples' in entry['certified_note']
  # Square queries the predictive of square_eot x S calls: at least 3 x 4
  # sample passes per image and query it runs.
  assert by_name['square']['model_evaluations'] >= 3 * 4 * 20
  text = (tmp_path / 'card.md').read_text()
  assert 'expectation over transformation' in text and 'worst of 3' in text


def test_binary_evaluates_a_tfds_dataset_by_name(tmp_path):
  sys.path.insert(0, os.path.dirname(__file__))
  from test_data import _tiny_tfds  # pylint: disable=g-import-not-at-top
  _tiny_tfds(tmp_path / 'tfds', name='tiny_colours', shape=(8, 8, 3),
             classes=3)
  tf_keras.utils.set_random_seed(0)
  net = tf_keras.Sequential([tf_keras.Input((192,)),
                             tf_keras.layers.Dense(3)])  # Flat: reshaped.
  net.save(str(tmp_path / 'flat.keras'))
  workdir = tmp_path / 'W'
  _binary([f'--model={tmp_path / "flat.keras"}', '--data=tiny_colours',
           f'--config.data_dir={tmp_path / "tfds"}',
           '--config.attack.protocol=paper', "--config.attack.eps=(0.05,)",
           "--config.attack.attacks=('fgsm',)",
           "--config.attack.losses=('predictive',)"], workdir)
  card = json.loads((workdir / 'card.json').read_text())
  assert card['data'] == {'name': 'tiny_colours', 'num_points': 12,
                          'input_range': [0.0, 1.0], 'normalization': None}
  assert card['num_classes'] == 3 and len(card['robust']) == 1
  assert os.path.isdir(workdir / 'tensorboard' / 'tiny_colours')


def test_misleading_messages_of_issue_28(tmp_path, moons):
  """The model's shape is compared with the data's before anything runs;
  half_moons is evaluated; two models never share a name."""
  arch = networks.Architecture.mlp(2, [8], 2)
  rng = np.random.default_rng(0)
  params = [rng.normal(size=(2,) + s).astype(np.float32)
            for _, s in arch.param_shapes()]
  for where in ('a', 'b'):
    ensemble_lib.ArchitectureEnsemble(arch, params, 'hmc').save(
        str(tmp_path / where / 'ensemble'))
  model = str(tmp_path / 'a' / 'ensemble')
  refused = _binary([f'--model={model}'], tmp_path / 'W1', ok=False).stderr
  assert refused.strip().splitlines()[-1] == (
      f"Error: --model='{model}' takes inputs of shape (2,), but "
      "--config.dataset='mnist' holds inputs of shape (28, 28, 1): the model "
      'was not made for this data. Pass data whose inputs have shape (2,) '
      '(--config.dataset=half_moons for a half-moons model, or an .npz file '
      'with x_test of that shape via --data, or such arrays).')
  assert not (tmp_path / 'W1' / 'card.json').exists()
  _binary([f'--model={model}', f'--baseline={tmp_path / "b" / "ensemble"}',
           '--config.dataset=half_moons', '--config.attack.num_points=20',
           '--config.attack.protocol=paper', "--config.attack.eps=(0.1,)",
           "--config.attack.attacks=('fgsm',)"], tmp_path / 'W2')
  names = sorted(os.listdir(tmp_path / 'W2' / 'tensorboard' / 'half_moons'))
  assert len(names) == 2 and names[0] != names[1]
  assert 'ensemble' not in names
  # Names from paths: never 'ensemble', never the same twice.
  assert evaluation.model_name('w/mnist/hmc/ensemble') == 'mnist_hmc'
  assert evaluation.model_name('w/mnist/hmc/ensemble',
                               taken={'mnist_hmc'}) == 'mnist_hmc_2'
  assert evaluation.model_name('nets/net.keras') == 'nets_net'
  # An unknown dataset: the refused name is not among the choices.
  with pytest.raises(ValueError) as error:
    data.spec('half_moon')
  assert "'half_moon'" not in str(error.value).split('prepared under')[1]
  # Python API: the same comparison, and labels beyond the model's classes.
  ours = ensemble_lib.PosteriorEnsemble.load(model)
  with pytest.raises(validate.InvalidArgument, match=r'model takes inputs of '
                     r'shape \(2,\), but x holds inputs of shape \(3,\)'):
    card_lib.evaluate(ours, np.zeros((4, 3)), np.zeros(4, int))
  with pytest.raises(validate.InvalidArgument,
                     match=r'labels must lie in \[0, 1\] for 2 classes'):
    card_lib.evaluate(ours, moons.x_test[:4], np.array([0, 1, 2, 1]))
  with pytest.raises(validate.InvalidArgument, match='eps=2.0 is invalid'):
    card_lib.evaluate(ours, moons.x_test[:4], moons.y_test[:4], eps=[2.0])
