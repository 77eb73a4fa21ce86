r"""Do the certified bounds meet the attacks, and are they sound?

  python binaries/certify_check.py --config=configs/certify_check.py \
      --workdir=workdir/certify_check

Trains the config's small deep ensemble, then at each eps: the certified
accuracy of every method of `tfp_robust.evaluation.certify` (IBP, CROWN, alpha-CROWN)
and its time, PGD's accuracy and time, and how many certified images
`config.ball_points` points of the ball (a fifth of them vertices) or a
strong PGD under both losses break (a sound bound: none). Writes
<workdir>/certify_check.{csv,md}.
"""

import _quiet  # pylint: disable=unused-import  # First: quiets TensorFlow.
import os
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from tfp_robust.core import config_checks
from tfp_robust.core import files
from tfp_robust.core import locks

_CONFIG = config_flags.DEFINE_config_file('config', None,
                                          'Experiment config (file:variant).')
_WORKDIR = flags.DEFINE_string('workdir', 'workdir/certify_check',
                               'Output directory.')
flags.mark_flags_as_required(['config'])


def main(argv):
  del argv
  config = config_checks.certify_check(_CONFIG.value)
  locks.start_run(_WORKDIR.value)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from tfp_robust.attacks import gradient as attacks  # pylint: disable=g-import-not-at-top
  from tfp_robust.evaluation import certify  # pylint: disable=g-import-not-at-top
  from tfp_robust import data  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import models  # pylint: disable=g-import-not-at-top
  from tfp_robust import networks  # pylint: disable=g-import-not-at-top
  from tfp_robust.reports import tables as reports  # pylint: disable=g-import-not-at-top

  dataset = data.load_tfds(config.dataset, num_train=config.num_train,
                           num_test=config.num_test)
  architecture = networks.Architecture.mlp(784, list(config.hidden), 10)
  ensemble = models.train_deep_ensemble(
      architecture, dataset.x_train, dataset.y_train,
      models.TrainConfig(epochs=config.epochs, batch_size=config.batch_size,
                         seed=config.seed), config.members)
  x, y = dataset.x_test, dataset.y_test
  rng = np.random.RandomState(config.seed)
  rows = []
  for eps in config.eps:
    row = dict(eps=eps, clean=ensemble.accuracy(x, y))
    proved = np.zeros(len(x), bool)
    for method in certify.METHODS:
      certify.certified(ensemble, x[:2], y[:2], eps, method)  # Traced.
      start = time.time()
      certified = certify.certified(ensemble, x, y, eps, method)
      row[f'{method}_seconds'] = time.time() - start
      row[method] = float(np.mean(certified))
      proved |= certified
    attacks.pgd(ensemble, x[:2], y[:2], eps, loss='predictive', seed=0)
    start = time.time()
    adversarial = attacks.pgd(ensemble, x, y, eps, num_steps=config.pgd_steps,
                              loss='predictive', seed=config.seed)
    row['pgd_seconds'] = time.time() - start
    row['pgd'] = ensemble.accuracy(adversarial, y)
    xc, yc = x[proved], y[proved]
    broken = np.zeros(len(xc), bool)
    for loss in ('predictive', 'expected'):
      strong = attacks.pgd(ensemble, xc, yc, eps,
                           num_steps=config.pgd_check_steps,
                           restarts=config.pgd_check_restarts, loss=loss,
                           seed=config.seed + 1)
      broken |= ensemble.predict(strong).numpy() != yc
    for _ in range(0, config.ball_points, 100):
      noise = rng.uniform(-eps, eps, (100,) + xc.shape[1:]).astype(np.float32)
      noise[:20] = eps * np.sign(noise[:20])  # Vertices of the ball.
      points = np.clip(xc[:, None] + noise[None], 0.0, 1.0)
      predicted = ensemble.predict(points.reshape((-1,) + xc.shape[1:]))
      broken |= (predicted.numpy().reshape(len(xc), 100) != yc[:, None]).any(1)
    row.update(certified_images=int(proved.sum()),
               broken_certified=int(broken.sum()))
    logging.info('eps %g: %s', eps, row)
    rows.append(row)
  frame = pd.DataFrame(rows)
  out = os.path.join(_WORKDIR.value, 'certify_check')
  reports.write_table(frame, out)
  print(frame.to_string(index=False, float_format=lambda v: f'{v:.3f}'))
  print(f'\nTable: {os.path.abspath(out)}.md')


if __name__ == '__main__':
  app.run(main)
