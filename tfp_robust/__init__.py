"""tfp_robust: Bayesian neural networks under gradient-based attacks.

`import tfp_robust as tr` is light: the submodules (`tr.hmc`, `tr.attacks`,
...) and `tr.PosteriorEnsemble`, `tr.ArchitectureEnsemble` and
`tr.Architecture` are imported on first use, so a binary can check its flags
and config (`tfp_robust.config_checks`) before TensorFlow is imported.
"""

import importlib

__version__ = '0.1.0'

# The public submodules, as `import tfp_robust` used to import them eagerly.
_SUBMODULES = ('apgd', 'attacks', 'calibration', 'card', 'certify', 'checks',
               'data', 'ensemble', 'export', 'gradients', 'hmc', 'losses',
               'metrics', 'models', 'networks', 'seeds', 'square', 'vi')
_CLASSES = {'ArchitectureEnsemble': 'ensemble',
            'PosteriorEnsemble': 'ensemble',
            'Architecture': 'networks'}


def __getattr__(name):
  """Imports a submodule (or one of the package's classes) on first use."""
  if name in _CLASSES:
    value = getattr(importlib.import_module(f'{__name__}.{_CLASSES[name]}'),
                    name)
  elif not name.startswith('_'):
    try:
      value = importlib.import_module(f'{__name__}.{name}')
    except ModuleNotFoundError as error:
      if error.name != f'{__name__}.{name}':
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
from tfp_robust import files as _files  # pylint: disable=g-import-not-at-top
_files.code_version()
