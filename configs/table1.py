"""Table 1: random, FGSM and PGD attacks on HMC and VI BNNs (eps 0.1).

`paper`: the starred settings of the paper's Tables 5 and 6 -- HMC on a
784-512-10 ReLU net, 750 kept samples, step 0.005 (adapted during warm-up),
10 leapfrog steps, on all 60k training images; VI on a 784-1024-10 ReLU net,
batch 256, 5 epochs, learning rate 0.001. Attacks on 500 test images with
250 posterior samples; PGD 15 steps, 1 restart.
`cpu`: smaller in the HMC net (hidden 128 instead of 512), its training set
(the first 20k images, still full-batch: every leapfrog step sees all 20k)
and its kept samples (250 instead of 750), with chains started from SGD
solutions and a 100-step warm-up; VI and the attacks are as in the paper.
`hmc_original` is the replay of the original code's HMC posterior (Pyro's
uniform(-2, 2) start and diagonal mass matrix; about
nine kept states of a 59-step chain on the last 5,000-image batch), for
`binaries/ablation.py`.
Fashion-MNIST: --config.dataset=fashion_mnist.
"""

from tfp_robust.core import config_lib as common


def get_config(variant='cpu'):
  paper = common.check_variant(variant)
  config = common.base(variant)
  # The certified rows: IBP and CROWN (linear relaxation) beside it.
  config.attack.certify_method = 'crown'
  config.methods = ('hmc', 'vi')
  config.hmc = common.dense(
      (512,) if paper else (128,), 'relu',
      num_results=375 if paper else 125, num_chains=2,
      num_burnin_steps=200 if paper else 100, num_leapfrog_steps=10,
      step_size=0.005, thinning=1, segment_size=25, prior_scale=1.0,
      init='sgd', num_train=0 if paper else 20000,
      warm_up_checkpoint_every=25 if paper else 0)
  config.hmc.init_sgd = dict(epochs=3, batch_size=256, learning_rate=1e-3)
  config.vi = common.dense((1024,), 'relu', epochs=5, batch_size=256,
                           learning_rate=1e-3, num_samples=250)
  config.sgd = common.dense((1024,), 'relu', epochs=5, batch_size=256,
                            learning_rate=1e-3)
  # The original code's HMC posterior, replayed (tfp_robust/fit/original.py):
  # its own settings, on the paper's 784-512-10 net at both scales (one
  # 59-step chain on 5,000 images is cheap).
  config.hmc_original = common.dense(
      (512,), 'relu', batch_size=5000, num_burnin_steps=50, step_size=0.005,
      num_leapfrog_steps=10, num_draws=100, prior_scale=1.0,
      target_accept_prob=0.8, init='uniform', mass_matrix='diagonal',
      num_train=0)
  return config
