"""PosteriorEnsemble: evaluation, chunking, sub-ensembles, persistence, input checks."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_CONV as CONV
from conftest import random_params
from tfp_robust import ensemble as ensemble_lib
from tfp_robust import networks
from tfp_robust import ArchitectureEnsemble
from tfp_robust import PosteriorEnsemble

MLP = networks.Architecture.mlp(2, [16, 8], 3)


@pytest.fixture(scope='module')
def mlp_params():
  return random_params(MLP, 7, seed=11, scale=1.0)


@pytest.fixture(scope='module')
def x2d():
  return np.random.RandomState(12).uniform(size=(9, 2)).astype(np.float32)


def test_shapes_properties_and_take(mlp_params, x2d):
  ens = ArchitectureEnsemble(MLP, mlp_params, method='hmc')
  assert ens.num_samples == 7 and ens.num_classes == 3
  assert ens.input_shape == (2,)
  assert 'num_samples=7' in repr(ens)
  full = ens.log_probs(x2d).numpy()
  assert full.shape == (7, 9, 3)
  # Rows are normalised log-probabilities.
  np.testing.assert_allclose(np.exp(full).sum(-1), 1.0, rtol=1e-5)
  sub = ens.take(3)
  assert sub.num_samples == 3 and sub.method == 'hmc'
  np.testing.assert_allclose(sub.log_probs(x2d).numpy(), full[:3], rtol=1e-6,
                             atol=1e-6)
  with pytest.raises(ValueError, match=r'n must lie in \[1, 7\]'):
    ens.take(8)
  with pytest.raises(ValueError, match=r'n must lie in \[1, 7\]'):
    ens.take(0)


def test_predictive_is_log_mean_softmax(mlp_params, x2d):
  ens = ArchitectureEnsemble(MLP, mlp_params)
  probs = np.exp(ens.log_probs(x2d).numpy().astype(np.float64))
  mean = probs.mean(0)
  np.testing.assert_allclose(np.exp(ens.predictive_log_probs(x2d).numpy()),
                             mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(ens.predict(x2d).numpy(), mean.argmax(-1))
  labels = mean.argmax(-1).astype(np.int32)
  labels[:3] = (labels[:3] + 1) % 3
  assert ens.accuracy(x2d, labels) == pytest.approx(6 / 9)


def test_stack_concatenates_samples(mlp_params, x2d):
  a = ArchitectureEnsemble(MLP, [p[:2] for p in mlp_params])
  b = ArchitectureEnsemble(MLP, [p[2:] for p in mlp_params])
  both = ensemble_lib.stack([a, b], method='ensemble')
  assert both.num_samples == 7 and both.method == 'ensemble'
  np.testing.assert_allclose(
      both.log_probs(x2d).numpy(),
      ArchitectureEnsemble(MLP, mlp_params).log_probs(x2d).numpy(), rtol=1e-6)
  other = ArchitectureEnsemble(networks.Architecture.mlp(2, [4], 3),
                            random_params(networks.Architecture.mlp(2, [4], 3),
                                          1))
  with pytest.raises(ValueError, match='one architecture'):
    ensemble_lib.stack([a, other])


@pytest.mark.parametrize('arch', [MLP, CONV], ids=['mlp', 'conv'])
def test_chunked_log_probs_equal_unchunked(arch):
  params = random_params(arch, 7, seed=13)
  x = np.random.RandomState(14).uniform(
      size=(5,) + arch.input_shape).astype(np.float32)
  big = ArchitectureEnsemble(arch, params)
  # Activations of 5 inputs plus one copy of a sample's weights.
  per_sample = 16 * 5 * arch.widest_activation() + 4 * arch.num_params()
  assert big.weight_bytes_per_sample() == 4 * arch.num_params()
  for budget, starts in ((1, list(range(7))), (3 * per_sample, [0, 3, 6]),
                         (3 * per_sample - 1, [0, 2, 4, 6])):
    small = ArchitectureEnsemble(arch, params, memory_budget_bytes=budget)
    assert [start for start, _ in small.chunks(5)] == starts
    np.testing.assert_allclose(small.log_probs(x).numpy(),
                               big.log_probs(x).numpy(), rtol=1e-5,
                               atol=1e-6)
  assert len(list(big.chunks(5))) == 1


def test_constructor_checks_weights(mlp_params):
  with pytest.raises(ValueError, match='Expected 6 weight tensors'):
    ArchitectureEnsemble(MLP, mlp_params[:-1])
  bad = list(mlp_params)
  bad[2] = bad[2][:, :, :5]
  with pytest.raises(ValueError, match='dense_1/kernel must have shape'):
    ArchitectureEnsemble(MLP, bad)
  with pytest.raises(ValueError, match='at least one sample'):
    ArchitectureEnsemble(MLP, [p[:0] for p in mlp_params])


def test_bad_inputs_get_clear_errors(mlp_params, x2d):
  ens = ArchitectureEnsemble(MLP, mlp_params)
  with pytest.raises(ValueError, match=r'Inputs must have shape \[B, 2\]'):
    ens.log_probs(np.zeros((4, 3), np.float32))
  with pytest.raises(ValueError, match=r'Inputs must have shape \[B, 2\]'):
    ens.log_probs(np.zeros((2,), np.float32))
  with pytest.raises(ValueError, match=r'must lie in \[0, 1\]'):
    ens.log_probs(x2d * 255.0)
  with pytest.raises(ValueError, match=r'must lie in \[0, 1\]'):
    ens.log_probs(x2d - 0.5)
  conv = ArchitectureEnsemble(CONV, random_params(CONV, 1))
  with pytest.raises(ValueError, match=r'\[B, 8, 8, 1\].*reshape'):
    conv.log_probs(np.zeros((3, 64), np.float32))
  with pytest.raises(ValueError, match=r'Labels must have shape \[9\]'):
    ens.accuracy(x2d, np.zeros((9, 1), np.int32))
  with pytest.raises(ValueError, match=r'Labels must have shape \[9\]'):
    ens.accuracy(x2d, np.zeros((8,), np.int32))
  with pytest.raises(ValueError, match='Labels must be integers'):
    ens.accuracy(x2d, np.zeros((9,), np.float32))
  with pytest.raises(ValueError, match=r'Labels must lie in \[0, 3\)'):
    ens.accuracy(x2d, np.full((9,), 3, np.int32))


def test_save_load_round_trip(tmp_path, mlp_params, x2d):
  ens = ArchitectureEnsemble(MLP, mlp_params, method='vi')
  target = tmp_path / 'runs' / 'vi'
  path = ens.save(str(target), extra={'epochs': 3})
  assert path == str(target)
  loaded = PosteriorEnsemble.load(path, architecture=MLP)
  assert loaded.method == 'vi' and loaded.num_samples == 7
  assert loaded.architecture == MLP
  assert loaded.extra == {'epochs': 3}
  for a, b in zip(ens.params, loaded.params):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  np.testing.assert_array_equal(loaded.log_probs(x2d).numpy(),
                                ens.log_probs(x2d).numpy())
  assert sorted(os.listdir(tmp_path / 'runs')) == ['vi']


def test_save_replaces_existing_directory_and_leaves_no_temporaries(
    tmp_path, mlp_params, x2d):
  first = ArchitectureEnsemble(MLP, [p[:2] for p in mlp_params])
  second = ArchitectureEnsemble(MLP, [p[2:5] for p in mlp_params])
  path = str(tmp_path / 'ens')
  first.save(path)
  second.save(path)
  assert os.listdir(tmp_path) == ['ens']
  assert not any(name.startswith('.tmp') for name in os.listdir(path))
  loaded = PosteriorEnsemble.load(path)
  assert loaded.num_samples == 3
  np.testing.assert_array_equal(loaded.log_probs(x2d).numpy(),
                                second.log_probs(x2d).numpy())


def test_load_keeps_constructor_options(tmp_path, mlp_params):
  path = ArchitectureEnsemble(MLP, mlp_params).save(str(tmp_path / 'e'))
  loaded = PosteriorEnsemble.load(path, memory_budget_bytes=1,
                                  jit_compile=False)
  assert loaded.memory_budget_bytes == 1 and not loaded.jit_compile
  assert len(list(loaded.chunks(4))) == 7


def test_load_from_empty_directory_raises_file_not_found(tmp_path):
  with pytest.raises(FileNotFoundError, match='No posterior ensemble'):
    PosteriorEnsemble.load(str(tmp_path))
  with pytest.raises(FileNotFoundError, match='No posterior ensemble'):
    PosteriorEnsemble.load(str(tmp_path / 'missing'))


def test_load_with_other_architecture_raises(tmp_path, mlp_params):
  path = ArchitectureEnsemble(MLP, mlp_params).save(str(tmp_path / 'e'))
  with pytest.raises(ValueError, match='not the expected'):
    PosteriorEnsemble.load(path, architecture=networks.Architecture.mlp(
        2, [16, 8], 3, 'tanh'))
  with pytest.raises(ValueError, match='not the expected'):
    PosteriorEnsemble.load(path, architecture=networks.Architecture.mlp(
        2, [16], 3))


def test_load_of_checkpoint_disagreeing_with_description_raises(
    tmp_path, mlp_params):
  path = ArchitectureEnsemble(MLP, mlp_params).save(str(tmp_path / 'e'))
  description_path = os.path.join(path, 'ensemble.json')
  with open(description_path) as f:
    description = json.load(f)
  description['num_samples'] = 8
  with open(description_path, 'w') as f:
    json.dump(description, f)
  with pytest.raises(ValueError, match='does not match its description'):
    PosteriorEnsemble.load(path)


def test_predictive_from_log_probs_is_stable_for_tiny_probabilities():
  log_probs = tf.constant([[[-1000.0, 0.0]], [[-1001.0, 0.0]]])
  got = ensemble_lib.predictive_from_log_probs(log_probs).numpy()
  want0 = np.logaddexp(-1000.0, -1001.0) - np.log(2.0)
  np.testing.assert_allclose(got, [[want0, 0.0]], rtol=1e-6, atol=1e-6)


def test_nan_inputs_are_refused():
  ensemble = ArchitectureEnsemble(MLP, random_params(MLP, 2))
  with pytest.raises(ValueError, match='NaN or infinite'):
    ensemble.log_probs(np.array([[0.5, np.nan]], np.float32))


def test_evenly_spaced_spreads_over_all_samples():
  params = random_params(MLP, 10)
  ensemble = ArchitectureEnsemble(MLP, params)
  chosen = ensemble.evenly_spaced(4)
  assert chosen.num_samples == 4
  np.testing.assert_array_equal(chosen.params[0].numpy(),
                                params[0][[0, 2, 5, 7]])
  with pytest.raises(ValueError, match='n must lie in'):
    ensemble.evenly_spaced(11)


def test_load_recovers_a_save_stopped_between_its_renames(tmp_path):
  ensemble = ArchitectureEnsemble(MLP, random_params(MLP, 2))
  path = str(tmp_path / 'ens')
  ensemble.save(path)
  os.rename(path, path + '.old')  # As if killed after the first rename.
  loaded = PosteriorEnsemble.load(path)
  x = np.full((3, 2), 0.5, np.float32)
  np.testing.assert_array_equal(loaded.log_probs(x), ensemble.log_probs(x))


# -- untrusted ensemble files (issue 10, item 4) ----------------------------

from tfp_robust.core import files  # pylint: disable=g-import-not-at-top,wrong-import-position


def _saved(tmp_path, name='e', num_samples=3, seed=0):
  ensemble = ArchitectureEnsemble(MLP, random_params(MLP, num_samples,
                                                     seed=seed))
  return ensemble, ensemble.save(str(tmp_path / name))


def _edit_description(path, edit):
  description_path = os.path.join(path, 'ensemble.json')
  with open(description_path) as f:
    description = json.load(f)
  edit(description)
  with open(description_path, 'w') as f:
    json.dump(description, f)
  return description_path


def _weights_file(path):
  [name] = [n for n in os.listdir(path) if n.startswith('weights.data-')]
  return os.path.join(path, name)


def _truncate(path, fraction=0.5):
  with open(path, 'r+b') as f:
    f.truncate(int(os.path.getsize(path) * fraction))


@pytest.mark.parametrize('with_digest', [True, False])
def test_truncated_weights_file_is_refused_naming_it(tmp_path, with_digest):
  _, path = _saved(tmp_path)
  if not with_digest:  # As saved before digests existed.
    _edit_description(path, lambda d: d.pop('digest'))
  weights = _weights_file(path)
  _truncate(weights)
  for load in (PosteriorEnsemble.load, ensemble_lib.load_any):
    with pytest.raises(files.InvalidFile, match='truncated') as error:
      load(path)
    assert repr(weights) in str(error.value)


def test_weight_file_cut_past_the_weights_is_still_refused(tmp_path):
  _, path = _saved(tmp_path)
  _edit_description(path, lambda d: d.pop('digest'))
  weights = _weights_file(path)
  # Only the trailing object graph is cut: every weight is still whole.
  _truncate(weights, 0.9)
  with pytest.raises(files.InvalidFile, match='truncated or corrupt'):
    PosteriorEnsemble.load(path)


@pytest.mark.parametrize('text', ['', '{"architecture": {"input_shape": [2]',
                                  'null', '[1, 2]'])
def test_description_that_is_not_an_ensemble_json_is_refused(tmp_path, text):
  _, path = _saved(tmp_path)
  description_path = os.path.join(path, 'ensemble.json')
  with open(description_path, 'w') as f:
    f.write(text)
  with pytest.raises(files.InvalidFile) as error:
    PosteriorEnsemble.load(path)
  assert str(error.value).startswith(f'file={description_path!r} is invalid')


@pytest.mark.parametrize('edit, message', [
    (lambda d: d.update(num_samples='3'), 'num_samples'),
    (lambda d: d.update(num_samples=0), 'num_samples'),
    (lambda d: d['architecture'].update(activation='swish'),
     'Unknown activation'),
    (lambda d: d['architecture'].update(hidden=[{'kind': 'dense'}]),
     'architecture is not valid'),
    (lambda d: d['architecture'].update(bogus=1), 'architecture is not valid'),
    (lambda d: d.pop('architecture'), 'lacks'),
])
def test_malformed_description_fields_are_refused(tmp_path, edit, message):
  _, path = _saved(tmp_path)
  description_path = _edit_description(path, edit)
  with pytest.raises(files.InvalidFile, match=message) as error:
    PosteriorEnsemble.load(path)
  assert repr(description_path) in str(error.value)


def test_edited_activation_is_refused(tmp_path):
  _, path = _saved(tmp_path)
  description_path = _edit_description(
      path, lambda d: d['architecture'].update(activation='tanh'))
  with pytest.raises(files.InvalidFile, match='changed after the ensemble '
                     'was saved') as error:
    PosteriorEnsemble.load(path)
  assert repr(description_path) in str(error.value)


@pytest.mark.parametrize('with_digest', [True, False])
def test_huge_declared_sizes_are_refused_before_any_allocation(
    tmp_path, monkeypatch, with_digest):
  _, path = _saved(tmp_path)

  def edit(description):
    description['architecture']['hidden'][0]['units'] = 10**9
    if not with_digest:
      description.pop('digest')

  description_path = _edit_description(path, edit)

  def refuse_to_allocate(*args, **kwargs):
    raise AssertionError('load allocated before checking the sizes')

  monkeypatch.setattr(tf, 'zeros', refuse_to_allocate)
  monkeypatch.setattr(tf, 'Variable', refuse_to_allocate)
  with pytest.raises(files.InvalidFile, match=r'declares weight dense_0') as (
      error):
    PosteriorEnsemble.load(path)
  assert '1000000000' in str(error.value)
  assert repr(description_path) in str(error.value)


def test_weight_file_of_another_ensemble_is_refused_by_its_digest(tmp_path):
  _, path = _saved(tmp_path, 'a', seed=0)
  _, other = _saved(tmp_path, 'b', seed=1)
  weights = _weights_file(path)
  os.replace(_weights_file(other), weights)  # Same shapes, other values.
  with pytest.raises(files.InvalidFile, match='SHA-256 differs') as error:
    PosteriorEnsemble.load(path)
  assert repr(weights) in str(error.value)


def test_description_stores_digests_and_code_version(tmp_path):
  _, path = _saved(tmp_path)
  with open(os.path.join(path, 'ensemble.json')) as f:
    description = json.load(f)
  digest = description['digest']
  assert digest['algorithm'] == 'sha256'
  assert sorted(digest['files']) == sorted(
      n for n in os.listdir(path) if n.startswith('weights'))
  for name, value in digest['files'].items():
    assert files.sha256_file(os.path.join(path, name)) == value
  assert description['produced_by']['code_version'].startswith('tfp_robust')


def test_ensemble_saved_without_digest_loads_with_a_warning(tmp_path, x2d,
                                                            caplog):
  ensemble, path = _saved(tmp_path)
  _edit_description(path, lambda d: [d.pop('digest'), d.pop('produced_by')])
  with caplog.at_level('WARNING'):
    loaded = PosteriorEnsemble.load(path)
  assert 'stores no digest' in caplog.text
  np.testing.assert_array_equal(loaded.log_probs(x2d), ensemble.log_probs(x2d))
  # Saving it again adds the digest.
  loaded.save(path)
  caplog.clear()
  with caplog.at_level('WARNING'):
    PosteriorEnsemble.load(path)
  assert 'stores no digest' not in caplog.text


def test_missing_weight_files_are_refused(tmp_path):
  _, path = _saved(tmp_path)
  os.remove(_weights_file(path))
  with pytest.raises(files.InvalidFile, match='missing'):
    PosteriorEnsemble.load(path)
  _, path = _saved(tmp_path, 'f')
  os.remove(os.path.join(path, 'weights.index'))
  with pytest.raises(files.InvalidFile, match='missing'):
    PosteriorEnsemble.load(path)


def test_thinning_keeps_every_chain_of_interleaved_samples():
  # HMC stores samples step by step with chains interleaved: sample i is
  # step i // C of chain i % C. Every 40th sample of 4 chains would be
  # chain 0 alone; thinning by chain keeps all four, evenly along each.
  weights = [np.repeat(np.arange(400, dtype=np.float32).reshape(400, 1, 1),
                       2, axis=2), np.zeros((400, 2), np.float32)]
  ensemble = ArchitectureEnsemble(networks.Architecture.mlp(1, [], 2),
                                  weights)
  kept = np.asarray(ensemble.evenly_spaced(10, num_chains=4).params[0])[:, 0, 0]
  chains = kept.astype(int) % 4
  assert sorted(np.bincount(chains, minlength=4)) == [2, 2, 3, 3]
  steps = kept.astype(int) // 4
  for chain in range(4):
    along = steps[chains == chain]
    assert along[0] == 0 and along[-1] >= 50  # Spread along the chain.
  assert list(kept) == sorted(kept)  # Storage order kept.
  # One chain: the old evenly spaced samples.
  np.testing.assert_array_equal(
      np.asarray(ensemble.evenly_spaced(10).params[0])[:, 0, 0],
      np.arange(0, 400, 40))
  with pytest.raises(ValueError, match='num_chains=3 is invalid'):
    ensemble.evenly_spaced(10, num_chains=3)
