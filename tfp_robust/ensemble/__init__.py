"""Posterior ensembles: the interface every evaluation reads, and its backends.

- `PosteriorEnsemble` (`base`): the interface.
- `ArchitectureEnsemble` (`architecture`): our architecture plus stacked
  weights; what every method we fit produces, and the fast path.
- `FunctionEnsemble` (`function`): `logits_fn(params, x)` plus weights with
  a leading sample axis (e.g. the states of a user's `tfp.mcmc` run).
- `KerasEnsemble` (`keras`): a list of `tf_keras` models of any architecture.
- `StochasticEnsemble` (`stochastic`): a `tf_keras` model that resamples its
  weights on every call (`tfp.layers`, MC dropout).
- `SavedModelEnsemble` (`saved_model`): a SavedModel written by
  `tfp_robust.export.save_model`.
- `load_any(path)`: whichever of these a path holds.
"""

from tfp_robust.ensemble.architecture import ArchitectureEnsemble
from tfp_robust.ensemble.architecture import DESCRIPTION_FILE
from tfp_robust.ensemble.architecture import stack
from tfp_robust.ensemble.architecture import weights_fingerprint
from tfp_robust.ensemble.base import check_inputs
from tfp_robust.ensemble.base import chunk_bounds
from tfp_robust.ensemble.base import DEFAULT_MEMORY_BUDGET_BYTES
from tfp_robust.ensemble.base import PosteriorEnsemble
from tfp_robust.ensemble.base import predictive_from_log_probs
from tfp_robust.ensemble.function import FunctionEnsemble
from tfp_robust.ensemble.keras import KerasEnsemble
from tfp_robust.ensemble.saved_model import SavedModelEnsemble
from tfp_robust.ensemble.stochastic import StochasticEnsemble


def load_any(path: str, **kwargs) -> PosteriorEnsemble:
  """The ensemble a path holds, whatever its form.

  - an ensemble directory written by `PosteriorEnsemble.save`
    (`ensemble.json`);
  - a SavedModel written by `tfp_robust.export.save_model`;
  - a `tf_keras` model file (`.keras` or `.h5`), loaded without compiling and
    in Keras' safe mode (no code from the file is run), as an S = 1
    `KerasEnsemble`.

  Raises:
    FileNotFoundError: nothing at `path`.
    ValueError: something there, but none of these forms.
  """
  import os  # pylint: disable=g-import-not-at-top
  if not os.path.exists(path) and not os.path.exists(path + '.old'):
    raise FileNotFoundError(f'No model at {path!r}.')
  if os.path.isdir(path) or os.path.isdir(path + '.old'):
    if os.path.exists(os.path.join(path, 'saved_model.pb')):
      return SavedModelEnsemble(path)
    return PosteriorEnsemble.load(path, **kwargs)
  if path.endswith(('.keras', '.h5')):
    import tf_keras  # pylint: disable=g-import-not-at-top
    try:
      model = tf_keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(f'{path!r} is not a readable tf_keras model file '
                       f'({type(error).__name__}: {error}).') from None
    return KerasEnsemble(model, method='keras')
  raise ValueError(f'{path!r} is neither an ensemble directory, a SavedModel '
                   'nor a .keras / .h5 tf_keras model file.')
