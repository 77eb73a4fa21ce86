"""tfp_robust: Bayesian neural networks under gradient-based attacks.

`import tfp_robust as tr` is light: the submodules (`tr.hmc`, `tr.attacks`,
...) and `tr.PosteriorEnsemble`, `tr.ArchitectureEnsemble` and
`tr.Architecture` are imported on first use, so a binary can check its flags
and config (`tfp_robust.core.config_checks`) before TensorFlow is imported.
"""

import importlib

__version__ = '0.1.0'

# The public submodules by the names users call (`tr.hmc.fit`, `tr.attacks.pgd`,
# `tr.certify.certified`, ...), mapped to where they live in the layout:
# core (validation, files, seeds, configs) <- data, networks <- fit <- ensemble
# <- attacks, evaluation <- experiments, reports.
_SUBMODULES = {
    'apgd': 'attacks.apgd', 'attacks': 'attacks',
    'calibration': 'evaluation.calibration', 'card': 'evaluation.card',
    'certify': 'evaluation.certify', 'checks': 'evaluation.checks',
    'data': 'data', 'ensemble': 'ensemble', 'export': 'export',
    'files': 'core.files', 'gradients': 'evaluation.gradients',
    'hmc': 'fit.hmc', 'losses': 'attacks.losses', 'mcmc': 'fit.mcmc',
    'metrics': 'evaluation.metrics', 'mixing': 'fit.mcmc.mixing',
    'models': 'fit.models', 'networks': 'networks',
    'protocols': 'evaluation.protocols', 'seeds': 'core.seeds',
    'square': 'attacks.square', 'validate': 'core.validate', 'vi': 'fit.vi',
}
_CLASSES = {'ArchitectureEnsemble': 'ensemble',
            'PosteriorEnsemble': 'ensemble',
            'Architecture': 'networks'}


def __getattr__(name):
  """Imports a submodule (or one of the package's classes) on first use."""
  if name in _CLASSES:
    value = getattr(importlib.import_module(f'{__name__}.{_CLASSES[name]}'),
                    name)
  elif not name.startswith('_'):
    module = _SUBMODULES.get(name, name)
    try:
      value = importlib.import_module(f'{__name__}.{module}')
    except ModuleNotFoundError as error:
      if error.name != f'{__name__}.{module}':
        raise  # A dependency is missing, not the submodule.
      raise AttributeError(
          f'module {__name__!r} has no attribute {name!r}') from None
  else:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  globals()[name] = value
  return value


def __dir__():
  return sorted(set(globals()) | set(_SUBMODULES) | set(_CLASSES))


# The code version (with the commit, in a checkout) is read once, when the
# package is imported: results then name the code that runs, even if the
# checkout moves on while a long run is going.
from tfp_robust.core import files as _files  # pylint: disable=g-import-not-at-top
_files.code_version()
