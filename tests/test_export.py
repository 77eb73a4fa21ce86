"""Export: SavedModels usable without tfp_robust, and a Keras layer."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust.attacks import gradient as attacks
from tfp_robust import export
from tfp_robust.fit import hmc
from tfp_robust.fit import models
from tfp_robust import networks
from tfp_robust.fit import vi

ARCH = networks.Architecture.mlp(2, [16], 2)

_LOAD_ELSEWHERE = r'''
import json, sys
import numpy as np
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
y = np.load(sys.argv[3])
probs = model.signatures['predictive'](x=tf.constant(x))['probabilities']
log_probs = model.signatures['log_probs'](x=tf.constant(x))['log_probs']
x_adv = model.signatures['pgd'](x=tf.constant(x), labels=tf.constant(y),
                                eps=tf.constant(0.1), steps=tf.constant(10))
assert not any(name.startswith('tfp_robust') for name in sys.modules)
print(json.dumps({'probs': probs.numpy().tolist(),
                  'log_probs_shape': list(log_probs.shape),
                  'x_adv': x_adv['x_adv'].numpy().tolist()}))
'''


@pytest.fixture(scope='module')
def posteriors(moons):
  x, y = moons.x_train[:300], moons.y_train[:300]
  hmc_ensemble, _ = hmc.fit(ARCH, x, y, hmc.HMCConfig(
      num_results=8, num_burnin_steps=10, num_chains=2, segment_size=8,
      seed=0))
  result = vi.train(ARCH, x, y, models.TrainConfig(epochs=3, batch_size=64,
                                                   learning_rate=1e-2))
  return {'hmc': hmc_ensemble,
          'vi': vi.posterior_ensemble(result, ARCH, 12, seed=0)}


@pytest.mark.parametrize('method', ['hmc', 'vi'])
def test_saved_model_works_in_a_process_without_tfp_robust(
    posteriors, moons, tmp_path, method):
  ensemble = posteriors[method]
  x, y = moons.x_test[:64], moons.y_test[:64]
  path = export.save_model(ensemble, str(tmp_path / method))
  np.save(tmp_path / 'x.npy', x)
  np.save(tmp_path / 'y.npy', y)
  script = tmp_path / 'load.py'
  script.write_text(_LOAD_ELSEWHERE)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  result = subprocess.run(
      [sys.executable, str(script), path, str(tmp_path / 'x.npy'),
       str(tmp_path / 'y.npy')], capture_output=True, text=True, env=env,
      cwd=str(tmp_path), timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  want = np.exp(ensemble.predictive_log_probs(x).numpy())
  np.testing.assert_allclose(np.array(out['probs']), want, atol=1e-5)
  assert out['log_probs_shape'] == [ensemble.num_samples, 64, 2]
  x_adv = np.array(out['x_adv'])
  assert np.abs(x_adv - x).max() <= 0.1 + 1e-6
  ours = attacks.pgd(ensemble, x, y, 0.1, num_steps=10, random_start=False,
                     loss='predictive')
  assert np.mean(np.isclose(x_adv, ours.numpy(), atol=1e-5)) > 0.99


def test_keras_layer_in_dataset_map_and_tf_function(posteriors, moons):
  ensemble = posteriors['vi']
  layer = export.PredictiveLayer(ensemble)
  x = moons.x_test[:32]
  want = np.exp(ensemble.predictive_log_probs(x).numpy())
  mapped = tf.data.Dataset.from_tensor_slices(x).batch(8).map(layer)
  np.testing.assert_allclose(np.concatenate(list(mapped.as_numpy_iterator())),
                             want, atol=1e-5)

  @tf.function
  def users_function(batch):
    return tf.argmax(layer(batch), -1)

  np.testing.assert_array_equal(users_function(tf.constant(x)).numpy(),
                                want.argmax(-1))
  assert not layer.trainable_weights


def test_stochastic_ensembles_are_refused(tmp_path):
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from tfp_robust import ensemble as ensemble_lib  # pylint: disable=g-import-not-at-top
  model = tf_keras.Sequential([tf_keras.Input((2,)),
                               tfp.layers.DenseFlipout(2)])
  with pytest.raises(ValueError, match='resamples on every call'):
    export.save_model(ensemble_lib.StochasticEnsemble(model, 3),
                      str(tmp_path / 'm'))


# -- nothing lost, nothing damaged read (issue 27) -------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = networks.Architecture.mlp(2, [3], 2)


def _tiny_ensemble():
  from tfp_robust import ensemble as ensemble_lib  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(0)
  return ensemble_lib.ArchitectureEnsemble(
      TINY, [rng.normal(size=(2,) + shape).astype(np.float32)
             for _, shape in TINY.param_shapes()])


@pytest.fixture(scope='module')
def tiny_export(tmp_path_factory):
  """A tiny SavedModel of ours, and its files' bytes."""
  path = export.save_model(_tiny_ensemble(),
                           str(tmp_path_factory.mktemp('tiny') / 'model'))
  contents = {}
  for root, _, names in os.walk(path):
    for name in names:
      with open(os.path.join(root, name), 'rb') as f:
        contents[os.path.relpath(os.path.join(root, name), path)] = f.read()
  return path, contents


def _copy(tiny_export, directory, changed=None):
  """The export written again at `directory`, with `changed` files."""
  path, contents = tiny_export
  for name, raw in dict(contents, **(changed or {})).items():
    os.makedirs(os.path.dirname(os.path.join(directory, name)), exist_ok=True)
    if raw is not None:
      with open(os.path.join(directory, name), 'wb') as f:
        f.write(raw)
  return str(directory)


def _flip(raw, bit):
  flipped = bytearray(raw)
  flipped[bit // 8] ^= 1 << (bit % 8)
  return bytes(flipped)


def test_the_manifest_lists_every_file_and_loads_back(tiny_export):
  from tfp_robust.ensemble import saved_model  # pylint: disable=g-import-not-at-top
  path, contents = tiny_export
  listed = sorted(saved_model.manifest_files(path))
  assert listed == sorted(n for n in contents
                          if n != saved_model.MANIFEST_FILE)
  assert {'saved_model.pb', os.path.join('variables', 'variables.index')
          } <= set(listed)
  loaded = saved_model.SavedModelEnsemble(path)
  x = np.random.RandomState(1).uniform(size=(5, 2)).astype(np.float32)
  np.testing.assert_allclose(loaded.log_probs(x),
                             _tiny_ensemble().log_probs(x), atol=1e-6)


def test_every_damaged_export_is_refused_before_tensorflow_reads_it(
    tiny_export, tmp_path, monkeypatch):
  # Issue 27, items 6 and 7: one flipped bit in saved_model.pb gave raw
  # KeyErrors from TensorFlow's loader (or loaded silently), a truncated
  # variables file an IndexError.
  from tfp_robust.core import files  # pylint: disable=g-import-not-at-top
  from tfp_robust.ensemble import saved_model  # pylint: disable=g-import-not-at-top
  _, contents = tiny_export
  data_file = os.path.join('variables', 'variables.data-00000-of-00001')
  damaged = []
  for name, count in (('saved_model.pb', 60), (data_file, 20),
                      (os.path.join('variables', 'variables.index'), 20),
                      ('fingerprint.pb', 10),
                      (saved_model.MANIFEST_FILE, 20)):
    bits = np.linspace(0, len(contents[name]) * 8 - 1, count).astype(int)
    damaged += [(f'{name} bit {bit}', {name: _flip(contents[name], bit)})
                for bit in bits]
  damaged += [('truncated data', {data_file: contents[data_file][:-7]}),
              ('empty pb', {'saved_model.pb': b''}),
              ('missing index', {os.path.join('variables', 'variables.index'):
                                 None})]

  class TensorFlowReadIt(BaseException):  # Past any `except Exception`.
    pass

  def never(*args, **kwargs):
    raise TensorFlowReadIt('TensorFlow read a damaged SavedModel')

  monkeypatch.setattr(tf.saved_model, 'load', never)
  for number, (what, changed) in enumerate(damaged):
    directory = _copy(tiny_export, tmp_path / str(number), changed)
    with pytest.raises(files.InvalidFile) as error:
      saved_model.SavedModelEnsemble(directory)
    message = str(error.value)
    assert message.startswith(f"file='{directory}"), what
    assert message.endswith('Export the ensemble again (tfp_robust.export.'
                            'save_model), or restore the directory from a '
                            'copy.'), (what, message)
  assert len(damaged) == 133


def test_a_damaged_savedmodel_without_manifest_ends_in_one_error_type(
    tiny_export, tmp_path):
  # Not written by us: TensorFlow's loader reads it, and whatever it raises
  # (KeyError, RuntimeError, IndexError, ...) becomes InvalidFile.
  from tfp_robust.core import files  # pylint: disable=g-import-not-at-top
  from tfp_robust.ensemble import saved_model  # pylint: disable=g-import-not-at-top
  _, contents = tiny_export
  pb = contents['saved_model.pb']
  data_file = os.path.join('variables', 'variables.data-00000-of-00001')
  cases = [{'saved_model.pb': _flip(pb, int(bit))}
           for bit in np.linspace(0, len(pb) * 8 - 1, 16).astype(int)]
  cases.append({data_file: contents[data_file][:-7]})
  refused = 0
  for number, changed in enumerate(cases):
    changed[saved_model.MANIFEST_FILE] = None
    directory = _copy(tiny_export, tmp_path / str(number), changed)
    try:
      saved_model.SavedModelEnsemble(directory)
    except files.InvalidFile as error:
      assert f'it has no {saved_model.MANIFEST_FILE}' in str(error)
      refused += 1
  # 14 of 17 here (7 OSError, 3 ValueError, 2 KeyError, 1 RuntimeError,
  # 1 IndexError from the loader); the other 3 load.
  assert refused >= len(cases) // 2
  with pytest.raises(files.InvalidFile, match='IndexError: Read less bytes'):
    saved_model.SavedModelEnsemble(str(tmp_path / str(len(cases) - 1)))


@pytest.mark.parametrize('what', ['flipped pb', 'truncated data'])
def test_evaluate_binary_refuses_a_damaged_export_in_one_line(
    tiny_export, tmp_path, what):
  _, contents = tiny_export
  data_file = os.path.join('variables', 'variables.data-00000-of-00001')
  changed = ({'saved_model.pb': _flip(contents['saved_model.pb'], 4321)}
             if what == 'flipped pb' else
             {data_file: contents[data_file][:100]})
  model = _copy(tiny_export, tmp_path / 'model', changed)
  result = subprocess.run(
      [sys.executable, 'binaries/evaluate.py', f'--model={model}',
       f'--workdir={tmp_path / "out"}'], cwd=REPO, capture_output=True,
      text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  assert result.returncode == 1
  damaged = os.path.join(model, 'saved_model.pb' if what == 'flipped pb'
                         else data_file)
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      f"Error: file={damaged!r} is invalid: its SHA-256 differs from the one "
      'in tfp_robust_manifest.json: the exported SavedModel is truncated, '
      'corrupt or was replaced. Export the ensemble again '
      '(tfp_robust.export.save_model), or restore the directory from a '
      'copy.'), result.stderr[-3000:]


def _tree(path):
  return sorted((os.path.relpath(os.path.join(root, name), path),
                 open(os.path.join(root, name), 'rb').read())
                for root, _, names in os.walk(path) for name in names)


def test_save_model_never_replaces_what_it_did_not_write(tiny_export,
                                                         tmp_path):
  # Issue 27, item 1: a directory of the user's files was deleted, and a
  # file survived only as <path>.old.
  from tfp_robust.core import validate  # pylint: disable=g-import-not-at-top
  ensemble = _tiny_ensemble()
  users = tmp_path / 'users'
  (users / 'sub').mkdir(parents=True)
  (users / 'notes.txt').write_text('mine')
  (users / 'sub' / 'data.csv').write_text('1,2')
  a_file = tmp_path / 'results.csv'
  a_file.write_text('a,b')
  foreign = tmp_path / 'foreign'
  tf.saved_model.save(tf.Module(), str(foreign))
  ours_plus = _copy(tiny_export, tmp_path / 'ours_plus')
  (tmp_path / 'ours_plus' / 'README').write_text('my notes on this model')
  (tmp_path / 'target').mkdir()
  (tmp_path / 'target.old').mkdir()
  (tmp_path / 'target.old' / 'keep.txt').write_text('keep')
  before = {p: _tree(p) if os.path.isdir(p) else open(p, 'rb').read()
            for p in map(str, tmp_path.iterdir())}
  for target, problem in (
      (users, 'it is a directory of 2 file(s) that tfp_robust did not write '
       f'(notes.txt, {os.path.join("sub", "data.csv")})'),
      (a_file, 'it is an existing file, not a SavedModel'),
      (foreign, 'it holds a SavedModel that tfp_robust did not write (no '
       'tfp_robust_manifest.json)'),
      (ours_plus, 'it holds file(s) the export did not write (README)')):
    with pytest.raises(validate.InvalidArgument) as error:
      export.save_model(ensemble, str(target))
    assert str(error.value) == (
        f'directory={_shown(str(target))} is invalid: {problem}, and saving would '
        'replace it. Choose a new path, move it away, or pass '
        'overwrite=True to delete it and save there.')
  with pytest.raises(validate.InvalidArgument, match=r"target.old' exists"):
    export.save_model(ensemble, str(tmp_path / 'target'))
  after = {p: _tree(p) if os.path.isdir(p) else open(p, 'rb').read()
           for p in map(str, tmp_path.iterdir())}
  assert after == before  # Nothing touched, nothing staged left behind.
  # An empty directory, our own export and an explicit overwrite are fine.
  (tmp_path / 'empty').mkdir()
  for target, overwrite in ((tmp_path / 'empty', False),
                            (tmp_path / 'empty', False), (a_file, True)):
    path = export.save_model(ensemble, str(target), overwrite=overwrite)
    assert os.path.isfile(os.path.join(path, 'tfp_robust_manifest.json'))
    assert not os.path.lexists(path + '.old')


def _shown(value):
  """A value as `validate.fail` shows it: its repr, shortened past 80
  characters (pytest's temporary paths vary in length)."""
  shown = repr(value)
  return shown if len(shown) <= 80 else shown[:77] + '...'


def test_save_model_into_a_directory_it_cannot_write(tmp_path, monkeypatch):
  # Issue 27, item 4: PermissionError from tempfile.mkdtemp.
  from tfp_robust.core import validate  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  ensemble = _tiny_ensemble()
  locked = tmp_path / 'locked'
  locked.mkdir()
  target = str(locked / 'new' / 'model')
  real_access = os.access
  monkeypatch.setattr(os, 'access', lambda p, mode: (
      False if str(p) == str(locked) else real_access(p, mode)))
  with pytest.raises(validate.InvalidArgument) as error:
    export.save_model(ensemble, target)
  shown = _shown(target)
  assert str(error.value) == (
      f'directory={shown} is invalid: {str(locked)!r} is not writable. '
      'Choose a directory you can write to, or fix its permissions.')
  monkeypatch.setattr(os, 'access', real_access)

  def denied(*args, **kwargs):  # What a non-root user gets from the kernel.
    raise PermissionError(13, 'Permission denied')

  monkeypatch.setattr(tempfile, 'mkdtemp', denied)
  with pytest.raises(validate.InvalidArgument) as error:
    export.save_model(ensemble, target)
  assert str(error.value).startswith(
      f'directory={shown} is invalid: the SavedModel cannot be written '
      'there (PermissionError: Permission denied).')
  (tmp_path / 'a_file').write_text('')
  with pytest.raises(validate.InvalidArgument, match='is a file'):
    export.save_model(ensemble, str(tmp_path / 'a_file' / 'model'))
  assert sorted(os.listdir(tmp_path)) == ['a_file', 'locked']
  assert not [name for _, dirs, names in os.walk(locked)
              for name in dirs + names if name != 'new']  # Nothing staged.
