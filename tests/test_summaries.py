"""TensorBoard: the tags a run writes, read back from the event files and
through a TensorBoard server's HTTP data API; reruns do not duplicate."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from tfp_robust.core import config_lib
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.experiments import paper as experiments
from tfp_robust.fit import fitting
from tfp_robust import networks
from tfp_robust.reports import plots
from tfp_robust.reports import summaries


def _config():
  config = ml_collections.ConfigDict()
  config.sgd = ml_collections.ConfigDict(dict(epochs=3, batch_size=50,
                                              learning_rate=1e-2))
  config.vi = ml_collections.ConfigDict(dict(epochs=4, batch_size=50,
                                             learning_rate=1e-2,
                                             num_samples=6))
  config.hmc = ml_collections.ConfigDict(dict(
      num_results=8, num_burnin_steps=6, num_leapfrog_steps=3,
      step_size=0.01, num_chains=2, segment_size=4,
      warm_up_checkpoint_every=3))
  config.attack = config_lib.attack_section(attacks=('fgsm', 'pgd'),
                                            eps=(0.05, 0.1), pgd_steps=3)
  return config


@pytest.fixture(scope='module')
def fitted(moons, tmp_path_factory):
  """Every method fitted on 300 half-moons points, with TensorBoard runs."""
  root = str(tmp_path_factory.mktemp('tensorboard_run'))
  architecture = networks.Architecture.mlp(2, [8], 2)
  config = _config()
  x, y = moons.x_train[:300], moons.y_train[:300]
  runs = {}
  for method in ('sgd', 'vi', 'hmc'):
    log_dir = summaries.run_dir(root, 'half_moons', method, 'fit')
    ensemble, info = fitting.fit(method, architecture, x, y, config,
                                 workdir=os.path.join(root, method),
                                 log_dir=log_dir)
    info.update(fitting.fit_facts(method, ensemble, config, moons.x_test,
                                  moons.y_test))
    fitting.write_fit_summaries(log_dir, method, ensemble, info)
    runs[method] = (ensemble, info, log_dir)
  return root, runs


def test_sgd_writes_loss_and_accuracy_per_epoch(fitted):
  _, runs = fitted
  written = summaries.read_scalars(runs['sgd'][2])
  assert [s for s, _ in written['sgd/loss']] == [1, 2, 3]
  assert [s for s, _ in written['sgd/accuracy']] == [1, 2, 3]
  # Training lowers the loss on this easy problem.
  assert written['sgd/loss'][-1][1] < written['sgd/loss'][0][1]
  assert written['fit/test_accuracy'] == [
      (0, pytest.approx(runs['sgd'][1]['test_accuracy']))]


def test_vi_writes_elbo_likelihood_and_kl_separately(fitted):
  _, runs = fitted
  ensemble, info, log_dir = runs['vi']
  written = summaries.read_scalars(log_dir)
  elbo = [v for _, v in written['vi/elbo']]
  nll = [v for _, v in written['vi/nll']]
  kl = [v for _, v in written['vi/kl']]
  assert len(elbo) == len(nll) == len(kl) == 4
  np.testing.assert_allclose(elbo, info['elbo_per_example'], rtol=1e-6)
  np.testing.assert_allclose(elbo, -(np.array(nll) + np.array(kl)),
                             rtol=1e-5)
  # The KL of a mean-field Gaussian from the prior is positive, and nll is
  # a cross-entropy of 2 classes near log 2 at the start.
  assert min(kl) > 0 and 0.05 < nll[0] < 1.5
  tags = summaries.read_tags(log_dir)
  for name, _ in ensemble.architecture.param_shapes():
    assert tags[f'posterior/{name}'] == 'histograms'
    assert tags[f'posterior_std/{name}'] == 'histograms'


def test_hmc_fit_writes_traces_diagnostics_and_histograms(fitted):
  _, runs = fitted
  ensemble, info, log_dir = runs['hmc']
  written = summaries.read_scalars(log_dir)
  assert [s for s, _ in written['hmc/log_joint/chain_1']] == list(range(14))
  assert len(written['hmc/step_size']) == 14
  for name in ('rhat_log_joint', 'ess_median', 'fn_rhat_max', 'fn_ess_min'):
    assert written[f'hmc/diagnostics/{name}'][0][1] == pytest.approx(
        info[name], rel=1e-5), name
  stacked = np.asarray(ensemble.params[0])
  name = ensemble.architecture.param_shapes()[0][0]
  histograms = _histograms(log_dir, 'posterior/' + name)
  # Several steps along the 16 samples (the Distributions tab needs more
  # than one), each the index of its group's last sample ...
  assert [step for step, _ in histograms] == [1, 3, 5, 7, 9, 11, 12, 13, 14,
                                              15]
  # ... which together hold every sample's value of that parameter, once.
  assert sum(h[:, 2].sum() for _, h in histograms) == stacked.size
  assert min(h[0, 0] for _, h in histograms) == pytest.approx(stacked.min(),
                                                              abs=1e-6)
  assert max(h[-1, 1] for _, h in histograms) == pytest.approx(
      stacked.max(), abs=1e-6)
  # The first group is samples 0 and 1.
  first = histograms[0][1]
  assert first[:, 2].sum() == stacked[:2].size
  assert first[0, 0] == pytest.approx(stacked[:2].min(), abs=1e-6)
  spread = _histograms(log_dir, 'posterior_std/' + name)
  assert [step for step, _ in spread] == [step for step, _ in histograms]


def _histograms(log_dir, tag):
  """`[(step, histogram)]` of a tag, by step."""
  found = []
  for path in os.listdir(log_dir):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(log_dir,
                                                                  path)):
      for value in event.summary.value:
        if value.tag == tag:
          found.append((int(event.step), tf.make_ndarray(value.tensor)))
  if not found:
    raise KeyError(tag)
  return sorted(found, key=lambda item: item[0])


def test_attack_results_per_method_loss_and_eps_and_no_duplicates(
    fitted, moons):
  root, runs = fitted
  ensemble = runs['hmc'][0]
  config = _config()
  x, y = moons.x_test[:40], moons.y_test[:40]
  from tfp_robust.evaluation import rows as evaluation
  rows = evaluation.attack_rows(ensemble, x, y, config.attack,
                                labels={'method': 'hmc'})
  log_dir = summaries.run_dir(root, 'half_moons', 'hmc', 'attacks_paper')
  for _ in range(2):  # A rerun replaces the series.
    experiments.write_evaluation_summaries(log_dir, ensemble, rows, x, y,
                                           config.attack)
  written = summaries.read_scalars(log_dir)
  for row in rows:
    tag = (f"attack/paper/{row['attack']}/{row['loss']}/"
           'adversarial_accuracy')
    step = int(round(1000 * row['eps']))
    assert dict(written[tag])[step] == pytest.approx(
        row['adversarial_accuracy'])
  series = written['attack/paper/pgd/expected/adversarial_accuracy']
  assert [s for s, _ in series] == [50, 100]
  # The attack is real: accuracy falls as eps grows.
  assert series[1][1] <= series[0][1] < 1.0
  assert 'attack/paper/certified/ibp/adversarial_accuracy' in written
  # Every row is also in the table of the Text tab, written once.
  [(step, table)] = summaries.read_text(log_dir)['attack/paper/results']
  lines = table.splitlines()
  assert step == 0 and len(lines) == 2 + len(rows)
  assert lines[0].startswith('| method | attack | loss | eps |')
  pgd = [l for l in lines if l.startswith('| hmc | pgd | expected | 0.100 |')]
  assert len(pgd) == 1
  assert float(pgd[0].split('|')[5]) == pytest.approx(series[1][1],
                                                      abs=5e-4)


def test_attack_results_at_one_eps_are_a_table_not_dots(tmp_path):
  rows = [dict(protocol='paper', attack=attack, loss=loss, eps=0.1,
               adversarial_accuracy=accuracy, softmax_robustness=0.5,
               clean_accuracy=0.98, method='hmc')
          for attack, loss, accuracy in [('fgsm', 'expected', 0.36000001430),
                                         ('pgd', 'predictive', 0.29)]]
  rows.append(dict(protocol='paper', attack='certified', loss='ibp', eps=0.1,
                   adversarial_accuracy=0.0, clean_accuracy=0.98,
                   method='hmc'))
  writer = summaries.open_writer(str(tmp_path))
  summaries.attack_rows(writer, rows)
  writer.close()
  assert summaries.read_scalars(str(tmp_path)) == {}
  assert summaries.read_tags(str(tmp_path)) == {
      'attack/paper/results': 'text'}
  [(_, table)] = summaries.read_text(str(tmp_path))['attack/paper/results']
  assert table.splitlines() == [
      '| method | attack | loss | eps | adversarial_accuracy | '
      'clean_accuracy | softmax_robustness |',
      '|---|---|---|---|---|---|---|',
      '| hmc | certified | ibp | 0.100 | 0.000 | 0.980 | - |',
      '| hmc | fgsm | expected | 0.100 | 0.360 | 0.980 | 0.500 |',
      '| hmc | pgd | predictive | 0.100 | 0.290 | 0.980 | 0.500 |']


def test_images_figures_and_hparams(tmp_path):
  mnist_like = ensemble_lib.ArchitectureEnsemble(
      networks.Architecture.mlp(784, [8], 10),
      [np.random.RandomState(0).normal(size=(3, 784, 8)).astype(np.float32)
       * 0.05, np.zeros((3, 8), np.float32),
       np.random.RandomState(1).normal(size=(3, 8, 10)).astype(np.float32),
       np.zeros((3, 10), np.float32)])
  x = np.random.RandomState(2).uniform(size=(5, 784)).astype(np.float32)
  y = mnist_like.predict(x).numpy()
  config = _config()
  rows = [dict(protocol='paper', attack='pgd', loss='predictive', eps=0.1,
               adversarial_accuracy=0.5, softmax_robustness=0.7,
               clean_accuracy=1.0)]
  experiments.write_evaluation_summaries(str(tmp_path / 'attacks'),
                                         mnist_like, rows, x, y, config.attack)
  tags = summaries.read_tags(str(tmp_path / 'attacks'))
  assert tags['adversarial/clean'] == 'images'
  assert tags['adversarial/pgd_predictive'] == 'images'
  assert tags['adversarial/perturbation'] == 'images'

  writer = summaries.open_writer(str(tmp_path / 'misc'))
  summaries.heatmaps(writer, 'gradients/expected/n=3', x - 0.5, (784,))
  strips = plots.gradient_strips({3: x - 0.5}, 'strips')
  summaries.figure(writer, 'figures/regions', strips)
  summaries.hparams(writer, {'hidden': 8, 'activation': 'relu'},
                    {'cell/test_accuracy': 0.9})
  writer.close()
  tags = summaries.read_tags(str(tmp_path / 'misc'))
  assert tags['gradients/expected/n=3'] == 'images'
  assert tags['figures/regions'] == 'images'
  assert tags['_hparams_/session_start_info'] == 'hparams'
  assert summaries.read_scalars(str(tmp_path / 'misc'))[
      'cell/test_accuracy'] == [(0, pytest.approx(0.9))]
  # Heatmaps are RGB with white at zero, enlarged from 28 x 28 to 112 x 112
  # (TensorBoard shows an image at its own size); figures at 150 dpi.
  sizes = {}
  for event in tf.compat.v1.train.summary_iterator(os.path.join(
      str(tmp_path / 'misc'), os.listdir(str(tmp_path / 'misc'))[0])):
    for value in event.summary.value:
      if value.metadata.plugin_data.plugin_name == 'images':
        width, height = tf.make_ndarray(value.tensor)[:2]
        sizes[value.tag] = (int(width), int(height))
  assert sizes['gradients/expected/n=3'] == (112, 112)
  assert sizes['figures/regions'] == tuple(
      int(round(v * 150)) for v in strips.get_size_inches())
  for event in tf.compat.v1.train.summary_iterator(os.path.join(
      str(tmp_path / 'attacks'), os.listdir(str(tmp_path / 'attacks'))[0])):
    for value in event.summary.value:
      if value.tag == 'adversarial/clean':
        assert [int(v) for v in tf.make_ndarray(value.tensor)[:2]] == [112,
                                                                       112]


def test_open_writer_starts_the_run_afresh(tmp_path):
  for rerun in range(3):
    writer = summaries.open_writer(str(tmp_path))
    summaries.scalars(writer, {'x': rerun}, step=0)
    writer.close()
  assert summaries.read_scalars(str(tmp_path)) == {'x': [(0, 2.0)]}


def test_tensorboard_serves_a_scalar_over_http(fitted):
  """A real TensorBoard on 127.0.0.1 reads the run, through its data API."""
  root, runs = fitted
  logdir = os.path.join(root, 'tensorboard')
  server = subprocess.Popen(
      [sys.executable, '-m', 'tensorboard.main', '--logdir', logdir,
       '--host', '127.0.0.1', '--port', '0', '--load_fast', 'false',
       '--reload_interval', '1'],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    url = None
    deadline = time.time() + 120
    while url is None and time.time() < deadline:
      line = server.stdout.readline()
      if not line and server.poll() is not None:
        break
      match = re.search(r'(http://127\.0\.0\.1:\d+/)', line)
      url = match.group(1) if match else None
    assert url, 'TensorBoard did not start'
    run = 'half_moons/vi/fit'
    query = urllib.parse.urlencode({'run': run, 'tag': 'vi/elbo'})
    points = []
    while not points and time.time() < deadline:
      try:
        with urllib.request.urlopen(
            f'{url}data/plugin/scalars/scalars?{query}', timeout=10) as reply:
          points = json.load(reply)
      except urllib.error.HTTPError:  # Not loaded yet.
        time.sleep(0.5)
    expected = summaries.read_scalars(runs['vi'][2])['vi/elbo']
    assert [(step, value) for _, step, value in points] == [
        (step, pytest.approx(value)) for step, value in expected]
    with urllib.request.urlopen(f'{url}data/runs', timeout=10) as reply:
      listed = json.load(reply)
    assert {'half_moons/sgd/fit', 'half_moons/vi/fit',
            'half_moons/hmc/fit'} <= set(listed)
  finally:
    server.terminate()
    server.wait(timeout=30)


def test_histograms_of_huge_posteriors_take_a_fixed_subset(tmp_path):
  params = [np.arange(3 * 700 * 800, dtype=np.float32).reshape(3, 700, 800),
            np.zeros((3, 800), np.float32),
            np.zeros((3, 800, 2), np.float32), np.zeros((3, 2), np.float32)]
  ensemble = ensemble_lib.ArchitectureEnsemble(
      networks.Architecture.mlp(700, [800], 2), params)
  writer = summaries.open_writer(str(tmp_path))
  summaries.posterior_histograms(writer, ensemble)
  writer.close()
  histograms = _histograms(str(tmp_path), 'posterior/dense_0/kernel')
  assert [step for step, _ in histograms] == [0, 1, 2]
  count = sum(h[:, 2].sum() for _, h in histograms)
  assert summaries.MAX_HISTOGRAM_VALUES // 2 < count <= (
      summaries.MAX_HISTOGRAM_VALUES)
  # The subset spans the whole range, not only the first values.
  assert histograms[-1][1][-1, 1] > 0.99 * params[0].max()
