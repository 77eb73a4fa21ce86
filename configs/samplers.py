"""Which sampler mixes (issue 11, items 1 and 3): variants on two targets.

Targets: `halfmoons`, a Figure 1 cell (two hidden layers of 128 leaky ReLU
units, 1,000 training points, 200 warm-up + 250 kept iterations);
`halfmoons_long`, the same for 400 + 1,000 iterations with the samplers that
came closest there (run it by name: --targets=halfmoons_long);
`halfmoons_width_<w>` (w in WIDTHS), that run with NUTS on two hidden
layers of w units, for the width question at fixed mixing; and
`mnist`, the CPU-scale Table 1 HMC (784-128-10 ReLU on the first 20k images,
full batch, 100 warm-up + 125 kept, chains from SGD solutions). Every
variant of a target runs the same iterations unless it sets
`num_burnin_steps` / `num_results` itself (to match another's compute); the
table reports mixing in total and per hour, and PGD accuracy and the mean
expected-gradient magnitude beside it.

Variants (sampler settings of `tfp_robust.fit.mcmc.kernels`; `init` is the
chain start: 'sgd' solutions or 'prior', a He-normal draw):
  fixed_2: the plain sampler as Table 1 / Figure 1 ran it (2 chains).
  fixed: the same with 4 chains.
  jittered: trajectory u * 10 steps of the adapted step size, u ~ U[0, 1].
  diagonal: a diagonal mass matrix adapted in TFP's windows (the step size
    re-adapted after each); diagonal_jittered: with a jittered trajectory.
  *_single: the same with one mass-matrix window over the first 60% of
    warm-up and no step-size restart (session 4's rows).
  chees: trajectory length adapted by ChEES (at most 100 steps), jittered;
    chees_30 at most 30 (MNIST).
  nuts / nuts_diagonal: the No-U-Turn sampler (depth 6 on half moons, 4 on
    MNIST, where every leapfrog step is a pass over 20k images).
  fixed_prior (MNIST): 4 chains from independent He-normal draws instead of
    SGD solutions.
`paper`: the MNIST target on the paper's Table 1 HMC (784-512-10, all 60k
images, 200 warm-up + 375 kept per chain); hours per variant.
"""

import ml_collections

from tfp_robust.core import config_lib


def _halfmoons():
  hmc = config_lib.dense(
      (128, 128), 'leaky_relu', num_results=250, num_chains=4,
      num_burnin_steps=200, num_leapfrog_steps=10, step_size=0.01,
      thinning=1, segment_size=50, prior_scale=1.0, init='prior',
      target_accept_prob=0.75, warm_up_checkpoint_every=0)
  target = ml_collections.ConfigDict(dict(
      dataset='half_moons', num_train=1000, num_test=1000, noise=0.1,
      data_seed=0, eps=0.1))
  target.fit = ml_collections.ConfigDict(dict(hmc=hmc))
  target.variants = ('fixed_2', 'fixed', 'jittered', 'diagonal_single',
                     'diagonal_jittered_single', 'chees', 'nuts',
                     'nuts_diagonal_single', 'diagonal', 'diagonal_jittered',
                     'nuts_diagonal')
  return target


def _halfmoons_long():
  """The half-moons target run three times longer (400 warm-up + 1,000
  kept), for the samplers that came closest to mixing in 450 iterations."""
  target = _halfmoons()
  target.fit.hmc.num_burnin_steps = 400
  target.fit.hmc.num_results = 1000
  target.variants = ('fixed', 'chees', 'nuts', 'nuts_diagonal')
  return target


# Theorem 1's width question with mixing held fixed (issue 11, item 3).
WIDTHS = (32, 64, 128, 256)


def _halfmoons_width(width):
  """`halfmoons_long` with NUTS, the one sampler that mixed there, on two
  hidden layers of `width` units: run by name, e.g.
  --targets=halfmoons_width_32,halfmoons_width_64,..."""
  target = _halfmoons_long()
  target.fit.hmc.hidden = (width, width)
  target.variants = ('nuts',)
  return target


def _mnist(paper):
  hmc = config_lib.dense(
      (512,) if paper else (128,), 'relu',
      num_results=375 if paper else 125, num_chains=4,
      num_burnin_steps=200 if paper else 100, num_leapfrog_steps=10,
      step_size=0.005, thinning=1, segment_size=25, prior_scale=1.0,
      init='sgd', target_accept_prob=0.75,
      warm_up_checkpoint_every=25)
  hmc.init_sgd = dict(epochs=3, batch_size=256, learning_rate=1e-3)
  target = ml_collections.ConfigDict(dict(
      dataset='mnist', num_train=0 if paper else 20000, num_test=10000,
      noise=0.0, data_seed=0, eps=0.1))
  target.fit = ml_collections.ConfigDict(dict(hmc=hmc))
  # The baseline first, then the samplers that mixed best on half moons.
  target.variants = ('fixed_2', 'nuts_diagonal_4_single',
                     'diagonal_jittered_single', 'chees_30',
                     'diagonal_jittered', 'nuts_diagonal_4', 'fixed',
                     'fixed_prior')
  return target


def get_config(variant='cpu'):
  paper = config_lib.check_variant(variant)
  config = ml_collections.ConfigDict()
  config.variant = variant
  config.seed = 0
  config.targets = ml_collections.ConfigDict(dict(
      halfmoons=_halfmoons(), halfmoons_long=_halfmoons_long(),
      mnist=_mnist(paper),
      **{f'halfmoons_width_{w}': _halfmoons_width(w) for w in WIDTHS}))
  config.target_order = ('mnist',) if paper else ('halfmoons', 'mnist')
  config.diagnostic_points = 100   # test points of the function-space R-hat
  config.attack_points = 200       # test points attacked by PGD
  config.pgd_steps = 15
  # The target for chains that have mixed.
  config.mixed_rhat = 1.1
  config.mixed_ess = 100.0
  # The strong protocol on every variant's posterior beside PGD (issue 24,
  # item 3), at the target's eps on the same `attack_points` images and on
  # `strong_attack.num_samples` (250) of the kept samples, every chain
  # thinned alike: --config.strong=True. Off by default, so rows measured
  # without it still read back.
  config.strong = False
  config.strong_attack = config_lib.attack_section(protocol='strong')
  config.variants = ml_collections.ConfigDict(dict(
      fixed_2=dict(num_chains=2),
      fixed=dict(),
      jittered=dict(trajectory='jittered'),
      diagonal=dict(mass_matrix='diagonal'),
      diagonal_jittered=dict(mass_matrix='diagonal', trajectory='jittered'),
      # Session 4's diagonal rows: one mass-matrix window, the step-size
      # adaptation not restarted after it (see mcmc.kernels).
      diagonal_single=dict(mass_matrix='diagonal',
                           mass_matrix_adaptation='single'),
      diagonal_jittered_single=dict(mass_matrix='diagonal',
                                    trajectory='jittered',
                                    mass_matrix_adaptation='single'),
      chees=dict(trajectory='adapted', max_leapfrog_steps=100),
      chees_30=dict(trajectory='adapted', max_leapfrog_steps=30),
      nuts=dict(kernel='nuts', max_tree_depth=6),
      nuts_diagonal=dict(kernel='nuts', mass_matrix='diagonal',
                         max_tree_depth=6),
      nuts_diagonal_4=dict(kernel='nuts', mass_matrix='diagonal',
                           max_tree_depth=4),
      nuts_diagonal_single=dict(kernel='nuts', mass_matrix='diagonal',
                                max_tree_depth=6,
                                mass_matrix_adaptation='single'),
      nuts_diagonal_4_single=dict(kernel='nuts', mass_matrix='diagonal',
                                  max_tree_depth=4,
                                  mass_matrix_adaptation='single'),
      fixed_prior=dict(init='prior'),
  ))
  return config
