"""Building blocks of the experiment configs in configs/ (shared settings)."""

import ml_collections

VARIANTS = ('cpu', 'paper')


def check_variant(variant):
  if variant not in VARIANTS:
    raise ValueError(f'Unknown variant {variant!r}; use one of {VARIANTS}.')
  return variant == 'paper'


def base(variant, dataset='mnist'):
  """Dataset, seed and attack settings of the paper's Section 5.2."""
  config = ml_collections.ConfigDict()
  config.variant = variant
  config.dataset = dataset          # or 'fashion_mnist'
  config.data_dir = ''              # '' means $TFDS_DATA_DIR
  config.num_train = 0              # 0 means the full training set
  config.num_test = 0               # 0 means the full test set
  config.seed = 0
  config.memory_budget_bytes = 1 << 30
  config.attack = ml_collections.ConfigDict(dict(
      attacks=('random', 'fgsm', 'pgd'), losses=('expected', 'predictive'),
      eps=(0.1,), num_points=500, num_samples=250, pgd_steps=15,
      pgd_restarts=1, strong_steps=30, strong_restarts=2))
  return config


def dense(hidden, activation, **training):
  section = dict(hidden=tuple(hidden), activation=activation, layers=())
  section.update(training)
  return ml_collections.ConfigDict(section)


def conv(filters, hidden, activation, **training):
  """Conv net: [conv 5x5, 2x2 max-pool] per entry of `filters`, dense hidden."""
  layers = []
  for f in filters:
    layers += [dict(kind='conv2d', filters=f, kernel_size=5),
               dict(kind='max_pool', size=2)]
  layers += [dict(kind='flatten'), dict(kind='dense', units=hidden)]
  section = dict(hidden=(), activation=activation, layers=layers)
  section.update(training)
  return ml_collections.ConfigDict(section)
