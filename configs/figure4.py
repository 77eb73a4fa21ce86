"""Figure 4: the paper's grids of HMC, SGD and VI networks (Tables 5, 6, 7).

`paper`: every value of the paper's tables on all 60k images: HMC (Table 5:
samples, step size, leapfrog steps, width, activation, depth; 972 cells),
SGD (Table 6: batch size, width, activation, depth, epochs; 1,080 cells) and
VI (Table 7; 960 cells). Table 7 is captioned "SGD", but its axes (learning
rate and epochs, with depths 2-5) are not Table 6's, Figure 4(b) plots VI,
and the paper's VI is the only other method trained with a learning rate
and epochs: Table 7 drives VI here.
`cpu`: every axis kept with fewer values, on the first 5,000 training
images, attacked on 200 test images with 40 samples (64 HMC, 48 SGD, 32 VI
cells per dataset).

HMC holds the step size fixed (the step-size axis is the grid's point; no
adaptation) and drops `hmc_burn_in` iterations per chain before keeping
samples. `protocols` lists the evaluations per cell ('paper': FGSM and PGD;
'strong' adds APGD, Square and transfer at the protocol's full budget;
expensive, off by default: --config.protocols='("paper","strong")'; at CPU
scale it adds about 15-40 s per cell on 2 cores).
"""

import ml_collections

from tfp_robust.core import config_lib


def get_config(variant='cpu'):
  paper = config_lib.check_variant(variant)
  config = ml_collections.ConfigDict()
  config.variant = variant
  config.seed = 0
  config.datasets = ('mnist', 'fashion_mnist')
  config.methods = ('hmc', 'sgd', 'vi')
  config.data_dir = ''
  config.num_train = 0 if paper else 5000
  config.num_test = 0 if paper else 200
  config.protocols = ('paper',)
  config.training = ml_collections.ConfigDict(dict(
      vi_batch_size=256, vi_num_samples=250 if paper else 40,
      hmc_num_chains=2, hmc_burn_in=100 if paper else 20,
      hmc_prior_scale=1.0,
      # Where the chains start: 'he_normal', or 'uniform' (every parameter
      # in [-2, 2], Pyro's init_to_uniform, as the original code's chains
      # started; it saturates the softmax of a wide net).
      hmc_init='he_normal'))
  if paper:
    config.hmc = dict(num_samples=(250, 500, 750),
                      step_size=(0.01, 0.005, 0.001, 0.0001),
                      num_leapfrog_steps=(10, 15, 20), hidden=(128, 256, 512),
                      activation=('relu', 'tanh', 'sigmoid'), depth=(1, 2, 3))
    config.sgd = dict(batch_size=(128, 256, 512, 1024),
                      hidden=(64, 128, 256, 512, 1024),
                      activation=('relu', 'tanh', 'sigmoid'), depth=(1, 2, 3),
                      epochs=(3, 5, 7, 9, 12, 15), learning_rate=(0.001,))
    config.vi = dict(learning_rate=(0.001, 0.005, 0.01, 0.05),
                     hidden=(64, 128, 256, 512),
                     activation=('relu', 'tanh', 'sigmoid'),
                     depth=(2, 3, 4, 5), epochs=(5, 10, 15, 20, 25))
  else:
    config.hmc = dict(num_samples=(20, 40), step_size=(0.005, 0.001),
                      num_leapfrog_steps=(5, 10), hidden=(32, 64),
                      activation=('relu', 'tanh'), depth=(1, 2))
    config.sgd = dict(batch_size=(128, 512), hidden=(64, 256),
                      activation=('relu', 'tanh'), depth=(1, 2),
                      epochs=(1, 2, 3), learning_rate=(0.001,))
    config.vi = dict(learning_rate=(0.001, 0.01), hidden=(64, 256),
                     activation=('relu', 'tanh'), depth=(2, 3),
                     epochs=(2, 4))
  # The strong protocol's own budget at both scales (APGD 100 steps x 5
  # restarts per loss, Square 1,000 queries): a smaller one would be a
  # weaker protocol under the same name.
  config.attack = config_lib.attack_section(
      attacks=('fgsm', 'pgd'), losses=('expected',), eps=(0.1,),
      num_points=500 if paper else 200, num_samples=250 if paper else 40)
  return config
