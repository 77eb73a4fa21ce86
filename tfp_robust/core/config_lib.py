"""Building blocks of the experiment configs in configs/ (shared settings)."""

import importlib.util
import os

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
  # Per chunk: activations plus one copy of the chunk's weights (the VI
  # net's 250 samples alone are 0.8 GB), so compiled attacks keep every
  # sample in one chunk with image batches of useful size.
  config.memory_budget_bytes = 2 << 30
  config.attack = attack_section()
  return config


def attack_section(**overrides):
  """The evaluation settings: protocol, radii, attack budgets.

  `protocol`: 'paper' (random, FGSM, PGD under each of `losses`) or 'strong'
  (APGD-CE then APGD-DLR with `apgd_steps` x `apgd_restarts`, Square with
  `square_queries`, transfer attacks, and the per-image worst case; see
  `tfp_robust.evaluation.protocols`). `apgd_targets`: after those, one targeted
  APGD-DLR run per target class (AutoAttack's APGD-T takes 9: every other
  class of a 10-class problem, in the order of the clean predictive); 0
  leaves it out. `eot_iter`: gradient evaluations averaged per step for
  models that resample on every call. `certify_method`: the certified
  bound beside interval bound propagation's: 'crown' (linear relaxation;
  the Table 1 / Table 2 / curves configs take it), 'alpha_crown' (optimised
  slopes, slower) or 'ibp' (alone: the default, so that configs which never
  certify, e.g. the Figure 4 grid, keep their saved results' digests).
  """
  section = dict(
      protocol='paper', attacks=('random', 'fgsm', 'pgd'),
      losses=('expected', 'predictive'), eps=(0.1,), num_points=500,
      num_samples=250, pgd_steps=15, pgd_restarts=1, apgd_steps=100,
      apgd_restarts=5, apgd_targets=0, square_queries=1000,
      square_restarts=1, eot_iter=1, certify_method='ibp')
  section.update(overrides)
  return ml_collections.ConfigDict(section)


# Settings added after results were saved under configs that lacked them,
# at the value those results were made with: `digest_view` leaves them out
# at that value, so saved rows and grid cells keep their digests.
LEGACY_DEFAULTS = {'attack': {'apgd_targets': 0, 'certify_method': 'ibp'},
                   'training': {'hmc_init': 'he_normal'}}


def digest_view(config: dict) -> dict:
  """A plain config dict without the settings at their legacy defaults."""
  view = dict(config)
  for section, defaults in LEGACY_DEFAULTS.items():
    if isinstance(view.get(section), dict):
      view[section] = {k: v for k, v in view[section].items()
                       if not (k in defaults and v == defaults[k])}
  return view


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


def load_config_file(path: str, variant: str):
  """`get_config(variant)` of a config file, as `config_flags` would load it."""
  spec = importlib.util.spec_from_file_location(
      'config_' + os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)
