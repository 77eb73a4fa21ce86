"""Posterior ensembles: the interface every evaluation reads, and its backends.

- `PosteriorEnsemble` (`base`): the interface.
- `ArchitectureEnsemble` (`architecture`): our architecture plus stacked
  weights; what every method we fit produces, and the fast path.
- `FunctionEnsemble` (`function`): `logits_fn(params, x)` plus weights with
  a leading sample axis (e.g. the states of a user's `tfp.mcmc` run).
- `KerasEnsemble` (`keras`): a list of `tf_keras` models of any architecture.
- `StochasticEnsemble` (`stochastic`): a `tf_keras` model that resamples its
  weights on every call (`tfp.layers`, MC dropout).
"""

from tfp_robust.ensemble.architecture import ArchitectureEnsemble
from tfp_robust.ensemble.architecture import stack
from tfp_robust.ensemble.base import check_inputs
from tfp_robust.ensemble.base import chunk_bounds
from tfp_robust.ensemble.base import DEFAULT_MEMORY_BUDGET_BYTES
from tfp_robust.ensemble.base import PosteriorEnsemble
from tfp_robust.ensemble.base import predictive_from_log_probs
from tfp_robust.ensemble.function import FunctionEnsemble
from tfp_robust.ensemble.keras import KerasEnsemble
from tfp_robust.ensemble.stochastic import StochasticEnsemble
