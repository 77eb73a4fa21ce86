"""Figure 1 of the paper: expected loss gradients of HMC BNNs on half moons.

`paper`: hidden {32, 128, 256, 512} x training points {5k, 10k, 15k} x
warm-up {100, 200, 500}, 250 posterior samples, leaky ReLU, two hidden
layers (the paper's '2 fully connected layers'), 100 test points.
`cpu`: the same shape of grid with narrower nets and fewer training points
(smaller in: widths, training-set sizes, warm-up lengths), sized to finish in
under 20 minutes on 2 cores; 250 samples are kept as in the paper.
"""

import ml_collections

from tfp_robust.core import config_lib


def get_config(variant='cpu'):
  paper = config_lib.check_variant(variant)
  config = ml_collections.ConfigDict()
  config.variant = variant
  config.seed = 0
  config.hidden = (32, 128, 256, 512) if paper else (32, 64, 128, 256)
  config.num_train = (5000, 10000, 15000) if paper else (500, 1000, 2000)
  config.warmup = (100, 200, 500) if paper else (100, 200)
  config.num_layers = 2
  config.activation = 'leaky_relu'
  config.noise = 0.1
  config.num_test = 1000          # for the accuracy filter
  config.num_gradient_points = 100  # test points whose gradients are plotted
  config.min_accuracy = 0.8
  config.hmc = ml_collections.ConfigDict(dict(
      num_results=125, num_chains=2, num_leapfrog_steps=10, step_size=0.01,
      thinning=1, segment_size=125, target_accept_prob=0.75,
      warm_up_checkpoint_every=100 if paper else 0,
      prior_scale=1.0))
  return config
