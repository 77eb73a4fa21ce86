"""A posterior that mixes on MNIST (issue 24, item 1): rungs of departure.

Table 1's HMC (`configs/table1.py:cpu`: 784-128-10 ReLU, N(0, 1) prior on
every weight, full batch on the first 20k images, chains from SGD
solutions) has not mixed with any sampler at the compute tried so far
(function-space R-hat 5-13). Each variant here is one rung, departing from
it one step at a time; everything not named stays Table 1's:

  compute     Table 1's target with the comparison's best sampler for
              NUTS-diagonal, 4 chains, many times the compute (run it
              across sessions: it resumes from its checkpoints).
  train_10k   the first 10,000 training images instead of 20,000.
  train_5k    the first 5,000.
  train_1k    the first 1,000.

Mixed means (`mixing` below): rank-normalised split R-hat (Vehtari et al.
2021, from ArviZ) of every class probability below 1.1 at each of
`diagnostic_points` test points, split R-hat of the log-joint below 1.1,
bulk ESS of the class probabilities at least 100, and no trend of the
log-joint across segments.

  python binaries/train.py --config=configs/mixed_mnist.py:train_1k \
      --method=hmc --workdir=workdir/mixed_mnist_1k
  python binaries/mixing.py --config=configs/mixed_mnist.py:train_1k \
      --workdir=workdir/mixed_mnist_1k

`sgd` is the posterior's deterministic twin: the same 784-128-10 net on the
same images, trained to a fit (Adam, batch 100, 50 epochs), so that the
strong protocol on both (`binaries/attack.py --methods=hmc,sgd
--config.attack.protocol=strong`) separates what the posterior adds from
what the small training set does. It is also the transfer attack's
surrogate.
"""

import os

from tfp_robust.core import config_lib

_HERE = os.path.dirname(os.path.abspath(__file__))

RUNGS = {
    'compute': 20000,
    'train_10k': 10000,
    'train_5k': 5000,
    'train_1k': 1000,
}


# The variants this config takes (the shipped-config test reads them).
VARIANTS = tuple(RUNGS)


def get_config(variant='train_1k'):
  if variant not in RUNGS:
    raise ValueError(f'Unknown rung {variant!r}; use one of {tuple(RUNGS)}.')
  config = config_lib.load_config_file(os.path.join(_HERE, 'table1.py'),
                                       'cpu')
  config.methods = ('hmc',)
  hmc = config.hmc
  hmc.num_train = RUNGS[variant]
  # The sampler that mixed on half moons (docs/samplers_width): NUTS with a
  # diagonal mass matrix adapted in TFP's windows, 4 chains.
  hmc.update(dict(kernel='nuts', mass_matrix='diagonal', max_tree_depth=6,
                  num_chains=4, num_burnin_steps=500, num_results=1000,
                  segment_size=50, warm_up_checkpoint_every=50))
  if variant == 'compute':
    hmc.max_tree_depth = 4  # Every leapfrog step is a pass over 20k images.
    hmc.num_results = 4000
  # The deterministic twin: the HMC net, on the HMC's images.
  config.sgd = config_lib.dense(hmc.hidden, hmc.activation, epochs=50,
                                batch_size=100, learning_rate=1e-3,
                                num_train=RUNGS[variant])
  config.diagnostic_points = 500
  config.mixing = dict(split_rhat=1.1, bulk_ess=100.0, trend_z=3.0)
  return config
