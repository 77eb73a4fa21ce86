"""Certified bounds against attacks (issue 25's check).

An MNIST 784-128-10 ReLU deep ensemble of 3 (the first 5,000 training
images, 4 epochs, batch 64), the first 200 test images: certified accuracy
by every method of `tfp_robust.evaluation.certify` against PGD at each eps, their
times, and every certified image tried with points of the ball (uniform and
vertices) and a stronger PGD under both losses.

  python binaries/certify_check.py --config=configs/certify_check.py \
      --workdir=workdir/certify_check
"""

import ml_collections


def get_config(variant='cpu'):
  del variant  # One scale: it runs in minutes.
  config = ml_collections.ConfigDict()
  config.variant = 'cpu'
  config.dataset = 'mnist'
  config.num_train = 5000
  config.num_test = 200
  config.hidden = (128,)
  config.members = 3
  config.epochs = 4
  config.batch_size = 64
  config.seed = 0
  config.eps = (0.005, 0.01, 0.02)
  config.pgd_steps = 15
  # Soundness: ball points per certified image (the first fifth vertices)
  # and a PGD of pgd_check_steps x pgd_check_restarts under both losses.
  config.ball_points = 1000
  config.pgd_check_steps = 100
  config.pgd_check_restarts = 3
  return config
