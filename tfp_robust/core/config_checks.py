"""Every experiment config checked once, before any training starts.

`check(config)` walks the sections a config has (top level, `attack`, `sgd`,
`ensemble`, `vi`, `hmc` with `init_sgd`, `hmc_original`, `gradients`, the
quickstart's `data` and `model`, the half-moons grid's axes) and refuses:

- a field no section knows (a typo such as `learning_rat` is not ignored);
- a value of the wrong kind or out of range (0 results, NaN learning rate,
  a float step count, eps above 1, target acceptance outside (0, 1), a
  hidden width of 0, a negative seed or `num_train`), with the flag to fix.

Messages follow `validate`: `--config.hmc.num_results=0 is invalid: it must
be an integer >= 1. ...`.

Checking needs no TensorFlow: the binaries check their flags and config
before they import the heavy modules or load data, so a typo is answered in
a second. The names those modules define (activations, losses, methods,
sampler settings, datasets...) are copied below (`tests/test_binaries.py`
asserts the copies match). This module is the bottom of the package: it
imports nothing above `core`. The rules that need the heavy modules
(`HMCConfig.validate`'s cross-field rules) belong to the fit layer:
`fitting.check_config` runs `check` and then those, as `fitting` does before
it trains.
"""

from typing import Iterable, Optional

from tfp_robust.core import validate

# Fields of each kind of section, beside the network's own.
_MODEL_FIELDS = ('hidden', 'activation', 'layers', 'num_train')
_TRAIN_FIELDS = ('epochs', 'batch_size', 'learning_rate')
_ATTACK_NAMES = ('random', 'fgsm', 'pgd')
# Copies of names the heavy modules define (tests/test_binaries.py keeps them
# equal to the originals): networks.ACTIVATIONS, losses.LOSSES,
# protocols.PROTOCOLS, fitting.METHODS and VIEWS, hmc.INITS, the fields of
# hmc.HMCConfig and original_hmc.OriginalHMCConfig (but `seed`), the choices
# of mcmc.kernels, grid.executors.EXECUTORS and grid.cells.AXES, and
# data.DATASETS and TFDS_DATASETS.
TFDS_DATASETS = ('mnist', 'fashion_mnist')
DATASETS = ('half_moons',) + TFDS_DATASETS
ACTIVATIONS = ('leaky_relu', 'relu', 'sigmoid', 'tanh')
LOSSES = ('dlr', 'expected', 'margin', 'predictive')
PROTOCOLS = ('paper', 'strong')
CERTIFY_METHODS = ('ibp', 'crown', 'alpha_crown')  # certify.METHODS
METHODS = ('sgd', 'ensemble', 'vi', 'hmc', 'hmc_original')
VIEWS = {'vi_resampled': 'vi'}
HMC_INITS = ('he_normal', 'uniform')
HMC_FIELDS = (
    'num_results', 'num_burnin_steps', 'num_leapfrog_steps', 'step_size',
    'thinning', 'num_chains', 'target_accept_prob', 'prior_scale',
    'segment_size', 'warm_up_checkpoint_every', 'jit_compile', 'kernel',
    'mass_matrix', 'mass_matrix_adaptation', 'mass_matrix_window',
    'trajectory', 'trajectory_length', 'jitter', 'max_tree_depth',
    'max_leapfrog_steps', 'cap_leapfrogs')
HMC_CHOICES = {'kernel': ('hmc', 'nuts'),
               'mass_matrix': ('identity', 'diagonal'),
               'mass_matrix_adaptation': ('windowed', 'single'),
               'trajectory': ('fixed', 'jittered', 'adapted')}
ORIGINAL_HMC_FIELDS = (
    'batch_size', 'num_burnin_steps', 'step_size', 'num_leapfrog_steps',
    'num_draws', 'prior_scale', 'target_accept_prob', 'init', 'mass_matrix',
    'mass_matrix_window')
GRID_EXECUTORS = ('in_process', 'ray')
GRID_AXES = {
    'hmc': ('num_samples', 'step_size', 'num_leapfrog_steps', 'hidden',
            'activation', 'depth'),
    'sgd': ('batch_size', 'hidden', 'activation', 'depth', 'epochs',
            'learning_rate'),
    'vi': ('learning_rate', 'hidden', 'activation', 'depth', 'epochs'),
}

_TOP_LEVEL = {
    'variant', 'dataset', 'data_dir', 'num_train', 'num_test', 'seed',
    'memory_budget_bytes', 'attack', 'methods', 'sgd', 'ensemble', 'vi',
    'hmc', 'hmc_original', 'gradients', 'data', 'model',
    'num_adversarial_shown', 'diagnostic_points',
    # The mixing criteria (configs/mixed_mnist.py).
    'mixing',
    # The half-moons grid's axes and settings.
    'hidden', 'warmup', 'num_layers', 'activation', 'noise',
    'num_gradient_points', 'min_accuracy',
}


def _flag(path, key):
  return f'--config.{path}.{key}' if path else f'--config.{key}'


def _known(section, path: str, allowed: Iterable[str]):
  allowed = set(allowed)
  for key in section.keys():
    if key not in allowed:
      validate.fail(_flag(path, key), section[key],
                    f'the {path or "top-level"} section has no field {key!r}',
                    f'Known fields: {", ".join(sorted(allowed))}.')


def _int(section, path, key, minimum=None, maximum=None, fix=''):
  if key in section:
    validate.integer(_flag(path, key), section[key], minimum, maximum, fix)


def _positive(section, path, key, fix=''):
  if key in section:
    validate.positive(_flag(path, key), section[key], fix)


def _ints(section, path, key, minimum):
  if key in section:
    values = section[key]
    if isinstance(values, (str, bytes)) or not hasattr(values, '__iter__'):
      validate.fail(_flag(path, key), values, 'it must be a tuple of integers',
                    f"Write it as {_flag(path, key)}='(64, 64)'.")
    for value in values:
      validate.integer(_flag(path, key), value, minimum,
                       fix=f"e.g. {_flag(path, key)}='(64, 64)'.")


def _model(section, path):
  _ints(section, path, 'hidden', 1)
  if 'activation' in section:
    validate.one_of(_flag(path, 'activation'), section['activation'],
                    ACTIVATIONS)
  for index, layer in enumerate(section.get('layers', ()) or ()):
    layer = dict(layer)
    where = f'{path}.layers[{index}]'
    kind = layer.get('kind')
    validate.one_of(f'--config.{where}.kind', kind,
                    ('dense', 'conv2d', 'max_pool', 'flatten'))
    for key in ('units', 'filters', 'kernel_size', 'size'):
      if key in layer:
        validate.integer(f'--config.{where}.{key}', layer[key], 1)
  _int(section, path, 'num_train', 0,
       fix='0 means the whole training set; a positive number keeps the '
       'first images.')


def _training(section, path, extra=()):
  _known(section, path, _MODEL_FIELDS + _TRAIN_FIELDS + tuple(extra))
  _model(section, path)
  _int(section, path, 'epochs', 1)
  _int(section, path, 'batch_size', 1)
  _positive(section, path, 'learning_rate', 'e.g. 1e-3.')


def _hmc(section, path):
  _known(section, path, list(HMC_FIELDS) + list(_MODEL_FIELDS) +
         ['init', 'init_sgd'])
  _model(section, path)
  for key in ('num_results', 'num_leapfrog_steps', 'thinning', 'num_chains',
              'segment_size'):
    _int(section, path, key, 1)
  for key in ('num_burnin_steps', 'warm_up_checkpoint_every'):
    _int(section, path, key, 0)
  for key in ('step_size', 'prior_scale'):
    _positive(section, path, key)
  if 'target_accept_prob' in section:
    validate.open_probability(_flag(path, 'target_accept_prob'),
                              section['target_accept_prob'], 'e.g. 0.75.')
  for key, choices in HMC_CHOICES.items():
    if key in section:
      validate.one_of(_flag(path, key), section[key], choices)
  if 'init' in section:
    validate.one_of(_flag(path, 'init'), section['init'], ('prior', 'sgd'))
  if 'init_sgd' in section:
    _training(section['init_sgd'], f'{path}.init_sgd')


def hmc_section(section, path: str) -> None:
  """Checks one HMC config section (named `--config.<path>` in messages):
  every field alone; `fitting.hmc_section` adds `HMCConfig`'s cross-field
  rules."""
  _hmc(section, path)


def _hmc_original(section, path):
  _known(section, path, ORIGINAL_HMC_FIELDS + _MODEL_FIELDS)
  _model(section, path)
  for key in ('batch_size', 'num_leapfrog_steps', 'num_draws'):
    _int(section, path, key, 1)
  _int(section, path, 'num_burnin_steps', 0)
  for key in ('step_size', 'prior_scale'):
    _positive(section, path, key)
  if 'target_accept_prob' in section:
    validate.open_probability(_flag(path, 'target_accept_prob'),
                              section['target_accept_prob'])
  if 'init' in section:
    validate.one_of(_flag(path, 'init'), section['init'],
                    ('he_normal', 'uniform'))


def _attack(section, path='attack'):
  from tfp_robust.core import config_lib  # pylint: disable=g-import-not-at-top
  _known(section, path, list(config_lib.attack_section().keys()) +
         ['protocols'])
  validate.one_of(_flag(path, 'protocol'), section.get('protocol', 'paper'),
                  PROTOCOLS)
  for protocol in section.get('protocols', ()):
    validate.one_of(_flag(path, 'protocols'), protocol, PROTOCOLS)
  for name in section.get('attacks', ()):
    validate.one_of(_flag(path, 'attacks'), name, _ATTACK_NAMES)
  for name in section.get('losses', ()):
    validate.one_of(_flag(path, 'losses'), name, LOSSES)
  if 'certify_method' in section:
    validate.one_of(_flag(path, 'certify_method'), section['certify_method'],
                    CERTIFY_METHODS)
  eps = section.get('eps', (0.1,))
  if isinstance(eps, (int, float)):
    eps = (eps,)
  if not len(eps):
    validate.fail(_flag(path, 'eps'), eps, 'at least one radius is needed',
                  f"e.g. {_flag(path, 'eps')}='(0.1,)'.")
  for value in eps:
    validate.eps(_flag(path, 'eps'), value)
  for key in ('num_points', 'num_samples', 'pgd_steps', 'pgd_restarts',
              'apgd_steps', 'apgd_restarts', 'square_queries',
              'square_restarts', 'eot_iter'):
    _int(section, path, key, 1)
  _int(section, path, 'apgd_targets', 0,
       fix="e.g. 9 (every other class of 10, as AutoAttack's APGD-T), or 0.")


def _grid(config):
  """A Figure 4 grid config (configs/figure4.py): axes hold tuples."""
  _known(config, '', ('variant', 'seed', 'datasets', 'methods', 'data_dir',
                      'num_train', 'num_test', 'protocols', 'training',
                      'hmc', 'sgd', 'vi', 'attack'))
  validate.seed('--config.seed', config.seed)
  for name in config.datasets:
    validate.one_of('--config.datasets', name, TFDS_DATASETS)
  for name in config.methods:
    validate.one_of('--config.methods', name, tuple(GRID_AXES))
  for name in config.protocols:
    validate.one_of('--config.protocols', name, PROTOCOLS)
  for key in ('num_train', 'num_test'):
    _int(config, '', key, 0)
  _known(config.training, 'training', ('vi_batch_size', 'vi_num_samples',
                                       'hmc_num_chains', 'hmc_burn_in',
                                       'hmc_prior_scale', 'hmc_init'))
  if 'hmc_init' in config.training:
    validate.one_of('--config.training.hmc_init', config.training.hmc_init,
                    HMC_INITS)
  for key in ('vi_batch_size', 'vi_num_samples', 'hmc_num_chains'):
    _int(config.training, 'training', key, 1)
  _int(config.training, 'training', 'hmc_burn_in', 0)
  _positive(config.training, 'training', 'hmc_prior_scale')
  for method in config.methods:
    section = config[method]
    _known(section, method, GRID_AXES[method])
    for axis in GRID_AXES[method]:
      values = section[axis]
      flag = _flag(method, axis)
      if isinstance(values, (str, bytes)) or not len(values):
        validate.fail(flag, values, 'each axis needs a tuple of values',
                      f"e.g. {flag}='(1, 2)'.")
      for value in values:
        if axis == 'activation':
          validate.one_of(flag, value, ACTIVATIONS)
        elif axis in ('step_size', 'learning_rate'):
          validate.positive(flag, value)
        else:
          validate.integer(flag, value, 1)
  _attack(config.attack)


def check(config, methods: Optional[Iterable[str]] = None):
  """Raises `validate.InvalidArgument` for the first bad field of `config`.

  Args:
    config: an experiment config (any file in configs/).
    methods: the methods about to run (default: `config.methods`); each
      must be one the package fits and have its section.

  Returns:
    The config, unchanged.
  """
  if 'datasets' in config and 'training' in config:
    _grid(config)
    return config
  _known(config, '', _TOP_LEVEL)
  if 'seed' in config:
    validate.seed('--config.seed', config.seed)
  if 'dataset' in config:
    validate.one_of('--config.dataset', config.dataset, DATASETS)
  for key in ('num_train', 'num_test'):
    if key in config and not isinstance(config[key], (tuple, list)):
      _int(config, '', key, 0, fix='0 means the whole split; a positive '
           'number keeps the first images.')
  _int(config, '', 'memory_budget_bytes', 1 << 20,
       fix='The budget is in bytes, e.g. 1073741824 for 1 GiB.')
  methods = list(methods if methods is not None else
                 config.get('methods', ()))
  for method in methods:
    validate.one_of('--methods', method, METHODS + tuple(VIEWS))
    section = VIEWS.get(method, method)
    section = 'sgd' if section == 'ensemble' else section
    if section not in config:
      validate.fail('--methods', method, f'the config has no {section!r} '
                    'section for it', 'Pick a method the config defines.')
  for name in ('sgd', 'vi'):
    if name in config:
      _training(config[name], name, ('num_samples',) if name == 'vi' else ())
      _int(config[name], name, 'num_samples', 1)
  if 'ensemble' in config:
    _known(config.ensemble, 'ensemble', ('num_members',))
    _int(config.ensemble, 'ensemble', 'num_members', 1)
  if 'hmc' in config:
    _hmc(config.hmc, 'hmc')
  if 'hmc_original' in config:
    _hmc_original(config.hmc_original, 'hmc_original')
  if 'attack' in config:
    _attack(config.attack)
  if 'gradients' in config:
    _known(config.gradients, 'gradients',
           ('num_points', 'num_samples', 'heatmap_samples', 'num_images'))
    _int(config.gradients, 'gradients', 'num_points', 1)
    _int(config.gradients, 'gradients', 'num_images', 1)
    _ints(config.gradients, 'gradients', 'num_samples', 1)
    _ints(config.gradients, 'gradients', 'heatmap_samples', 1)
  if 'model' in config:
    _known(config.model, 'model', _MODEL_FIELDS)
    _model(config.model, 'model')
  if 'data' in config:
    _known(config.data, 'data', ('num_train', 'num_test', 'noise'))
    _int(config.data, 'data', 'num_train', 1)
    _int(config.data, 'data', 'num_test', 1)
    if 'noise' in config.data:
      validate.number('--config.data.noise', config.data.noise, minimum=0.0)
  if 'warmup' in config:  # The half-moons grid.
    _ints(config, '', 'hidden', 1)
    _ints(config, '', 'num_train', 1)
    _ints(config, '', 'warmup', 0)
    _int(config, '', 'num_layers', 1)
    _int(config, '', 'num_test', 1)
    _int(config, '', 'num_gradient_points', 1)
    if 'min_accuracy' in config:
      validate.number('--config.min_accuracy', config.min_accuracy, 0.0, 1.0)
  for key in ('num_adversarial_shown', 'diagnostic_points'):
    _int(config, '', key, 1)
  if 'mixing' in config:
    _known(config.mixing, 'mixing', ('split_rhat', 'bulk_ess', 'trend_z'))
    validate.number('--config.mixing.split_rhat', config.mixing.split_rhat,
                    1.0, 10.0)
    validate.number('--config.mixing.bulk_ess', config.mixing.bulk_ess, 1.0)
    validate.number('--config.mixing.trend_z', config.mixing.trend_z, 0.0)
  return config


def check_run(config, methods: Optional[Iterable[str]] = None,
              workdir: Optional[str] = None):
  """What a binary checks before any work: the config, and the work directory.

  The work directory must be a non-empty path that can be created and
  written (an empty `--workdir=` would write into the current directory).
  Imports no TensorFlow: `fitting.check_config` adds the fit layer's own
  rules before it trains.
  """
  check(config, methods)
  if workdir is not None:
    validate.workdir('--workdir', workdir)
  return config


def certify_check(config):
  """The config of binaries/certify_check.py (configs/certify_check.py)."""
  _known(config, '', ('variant', 'dataset', 'num_train', 'num_test', 'hidden',
                      'members', 'epochs', 'batch_size', 'seed', 'eps',
                      'pgd_steps', 'ball_points', 'pgd_check_steps',
                      'pgd_check_restarts'))
  validate.one_of('--config.dataset', config.dataset, ('mnist',
                                                       'fashion_mnist'))
  for key in ('num_train', 'num_test', 'members', 'epochs', 'batch_size',
              'pgd_steps', 'ball_points', 'pgd_check_steps',
              'pgd_check_restarts'):
    _int(config, '', key, 1)
  _ints(config, '', 'hidden', 1)
  validate.seed('--config.seed', config.seed)
  for eps in config.eps:
    validate.eps('--config.eps', eps)
  return config


# The sampler comparison: the fields a variant may set over its target's.
SAMPLER_FIELDS = ('kernel', 'mass_matrix', 'mass_matrix_adaptation',
                  'mass_matrix_window', 'trajectory', 'trajectory_length',
                  'jitter', 'max_tree_depth', 'max_leapfrog_steps',
                  'cap_leapfrogs', 'init', 'num_chains', 'num_leapfrog_steps',
                  # The run's length, so that variants can be matched at
                  # equal compute (a NUTS iteration costs several fixed ones).
                  'num_burnin_steps', 'num_results')


def sampler_comparison(config, targets: Optional[Iterable[str]] = None):
  """The sampler comparison's fields (configs/samplers.py), before TensorFlow.

  Every named target and each of its variants' `hmc` section (the target's
  with the variant's overrides), the measurement settings and, with
  `strong`, the strong attack. The sampler's cross-field rules, which need
  the fitting code, are `tfp_robust.experiments.samplers.check`'s.

  Returns:
    The target names, in order.
  """
  names = list(targets or config.target_order)
  for name in names:
    validate.one_of('--targets', name, tuple(config.targets.keys()),
                    'Name targets of the config.')
    target = config.targets[name]
    for variant in target.variants:
      validate.one_of(f'--config.targets.{name}.variants', variant,
                      tuple(config.variants.keys()),
                      'Each variant needs an entry in config.variants.')
      overrides = dict(config.variants[variant])
      unknown = sorted(set(overrides) - set(SAMPLER_FIELDS))
      if unknown:
        raise validate.InvalidArgument(
            f'--config.variants.{variant} sets {unknown}, which are not '
            f'sampler settings; known: {", ".join(SAMPLER_FIELDS)}.')
      section = dict(target.fit.hmc)
      section.update(overrides)
      try:
        hmc_section(section, f'targets.{name}.fit.hmc')
      except validate.InvalidArgument as error:
        raise validate.InvalidArgument(
            f'variant {variant!r} of target {name!r}: {error}') from None
    validate.eps(f'--config.targets.{name}.eps', target.eps)
    validate.one_of(f'--config.targets.{name}.dataset', target.dataset,
                    ('half_moons', 'mnist', 'fashion_mnist'))
    validate.integer(f'--config.targets.{name}.num_train', target.num_train, 0)
  for key in ('attack_points', 'pgd_steps', 'diagnostic_points'):
    validate.integer(f'--config.{key}', config[key], 1)
  validate.number('--config.mixed_rhat', config.mixed_rhat, 1.0,
                  exclusive_minimum=True, fix='e.g. 1.1.')
  validate.number('--config.mixed_ess', config.mixed_ess, 0.0, fix='e.g. 100.')
  if config.get('strong'):
    _attack(config.strong_attack, 'strong_attack')
  return names
