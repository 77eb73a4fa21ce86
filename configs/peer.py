"""Speed against a peer (issue 24, item 6): our best sampler against NumPyro.

One target, sampled side by side in one run: the `train_1k` rung of
`configs/mixed_mnist.py` (the first 1,000 MNIST training images, full
batch; a 784-128-10 ReLU net; N(0, 1) on every weight and bias; chains from
SGD solutions). Our sampler is that rung's: NUTS, at most 2**6 - 1 leapfrog
steps per proposal, a diagonal mass matrix adapted in TFP's windows, step
size adapted to 0.75 acceptance, 4 chains. NumPyro's NUTS runs with the same
depth, target acceptance, initial step size, diagonal mass matrix (its own
Stan-style windows), chains, warm-up and kept counts, from the same starts.
The numbers below equal the rung's (`tests/test_peer.py` checks it) except
the budget: warm-up and kept iterations, and the kept segment size.

  python binaries/peer.py --config=configs/peer.py:cpu \
      --workdir=docs/evidence/peer_numpyro

Variants:
  cpu   100 warm-up + 100 kept iterations of 4 chains each way, class
        probabilities at 500 test images: about 10-15 minutes on one core.
  tiny  the test's: 40 images, a 784-8-10 net, 2 chains, 100 + 8
        iterations at depth 3, 20 test images, ours without XLA.

`peer` holds the comparison's own settings: `chain_method` (NumPyro's
chains run `'vectorized'`, one batched program, as ours do), `cpu_threads`
(pin the run to this many cores so both libraries get the same; 0 leaves
the process as it is) and `gradient_repeats` (interleaved timings of one
gradient of each log-joint alone).
"""

import ml_collections

from tfp_robust.core import config_lib

VARIANTS = ('cpu', 'tiny')


def get_config(variant='cpu'):
  if variant not in VARIANTS:
    raise ValueError(f'Unknown variant {variant!r}; use one of {VARIANTS}.')
  tiny = variant == 'tiny'
  config = ml_collections.ConfigDict()
  config.variant = variant
  config.dataset = 'mnist'
  config.data_dir = ''  # '' means $TFDS_DATA_DIR.
  config.seed = 0
  config.methods = ('hmc',)
  # Test images whose class probabilities the ESS is taken on.
  config.diagnostic_points = 20 if tiny else 500
  config.num_test = config.diagnostic_points
  config.mixing = dict(split_rhat=1.1, bulk_ess=100.0, trend_z=3.0)
  config.hmc = config_lib.dense(
      (8,) if tiny else (128,), 'relu',
      num_train=40 if tiny else 1000, prior_scale=1.0, init='sgd',
      kernel='nuts', mass_matrix='diagonal', mass_matrix_adaptation='windowed',
      max_tree_depth=3 if tiny else 6, num_chains=2 if tiny else 4,
      step_size=0.005, target_accept_prob=0.75,
      num_burnin_steps=100, num_results=8 if tiny else 100,
      segment_size=4 if tiny else 25,
      # One compiled warm-up loop (no checkpoint in between), as NumPyro's;
      # the test's runs no XLA of ours.
      warm_up_checkpoint_every=0, jit_compile=not tiny)
  config.hmc.init_sgd = dict(epochs=1 if tiny else 3, batch_size=256,
                             learning_rate=1e-3)
  config.peer = dict(chain_method='vectorized', cpu_threads=0 if tiny else 1,
                     gradient_repeats=3 if tiny else 20)
  return config
