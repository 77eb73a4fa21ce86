"""L-infinity attacks on a posterior ensemble.

- `gradient`: FGSM and PGD (`tr.attacks.fgsm`, `tr.attacks.pgd`, ...: the
  package re-exports its public names).
- `losses`: the attack objectives (`expected`, `predictive`, margins).
- `apgd`: Auto-PGD; `square`: the gradient-free Square attack.
- `batching`: compiled attack loops over image batches, worst case kept.
"""

import importlib


def __getattr__(name):
  """`tr.attacks.pgd` and friends: the names of `attacks.gradient`."""
  if name.startswith('_'):
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  gradient = importlib.import_module(f'{__name__}.gradient')
  try:
    value = getattr(gradient, name)
  except AttributeError:
    raise AttributeError(
        f'module {__name__!r} has no attribute {name!r}') from None
  globals()[name] = value
  return value
