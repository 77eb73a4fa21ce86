"""MCMC diagnostics of kept samples, in weight space and in function space.

Effective sample size and R-hat are the libraries': in weight space
TFP's (`tfp.mcmc.effective_sample_size`, `tfp.mcmc.potential_scale_reduction`),
in function space ArviZ's rank-normalised split R-hat and bulk and tail ESS
(Vehtari et al. 2021, through `mcmc.mixing`), beside TFP's plain R-hat;
this module chooses what they are computed on. Weight-space figures use a
fixed random subset of weights (bounded memory); function-space figures use
the predicted class probabilities at test inputs, read through the
posterior ensemble's public `log_probs`, so they apply to any sampler.
"""

import logging
from typing import Dict, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_robust import ensemble as ensemble_lib
from tfp_robust.fit.mcmc import mixing


class _DropFftCastWarning(logging.Filter):

  def filter(self, record):
    return 'casting an input of type complex' not in record.getMessage()


def _effective_sample_size(*args, **kwargs):
  """`tfp.mcmc.effective_sample_size`, without TensorFlow's warning about
  TFP's own cast.

  TFP's `auto_correlation` takes the real part of an inverse FFT (whose
  imaginary part is zero up to rounding) with `tf.cast`, and TensorFlow
  warns "You are casting an input of type complex64 to an incompatible
  dtype" at every call. That one message is dropped while the ESS runs.
  """
  logger = tf.get_logger()
  quiet = _DropFftCastWarning()
  logger.addFilter(quiet)
  try:
    return tfp.mcmc.effective_sample_size(*args, **kwargs)
  finally:
    logger.removeFilter(quiet)


def diagnostics(samples: Sequence[np.ndarray], log_prob: np.ndarray,
                is_accepted: np.ndarray,
                max_coordinates: int = 10000) -> Dict[str, float]:
  """Acceptance, effective sample size and R-hat of kept samples `[K, C, ...]`.

  ESS is `tfp.mcmc.effective_sample_size` (cross-chain when there are several
  chains); R-hat is `tfp.mcmc.potential_scale_reduction` over chains, for
  C > 1. Weight-space figures use a fixed random subset of at most
  `max_coordinates` weights: FFT-based ESS over every weight of a paper-scale
  net would need tens of GB.
  """
  num_chains = log_prob.shape[1]
  cross_chain = 1 if num_chains > 1 else None
  sizes = [int(np.prod(s.shape[2:])) for s in samples]
  total = sum(sizes)
  chosen = np.sort(np.random.RandomState(0).choice(
      total, min(total, max_coordinates), replace=False))
  offsets = np.cumsum([0] + sizes)
  columns = []
  for index, s in enumerate(samples):
    inside = chosen[(chosen >= offsets[index]) & (chosen < offsets[index + 1])]
    if inside.size:
      columns.append(np.reshape(s, s.shape[:2] + (-1,))[:, :, inside -
                                                           offsets[index]])
  flat = tf.convert_to_tensor(np.concatenate(columns, axis=-1), tf.float32)
  ess = _effective_sample_size(flat, cross_chain_dims=cross_chain)
  if cross_chain is None:
    ess = ess * num_chains
  ess_second = _second_moment_ess(flat, cross_chain, num_chains)
  ess_log_prob = _effective_sample_size(
      tf.convert_to_tensor(log_prob), cross_chain_dims=cross_chain)
  result = {
      'acceptance_rate': float(np.mean(is_accepted)),
      'num_kept_samples': int(log_prob.shape[0] * num_chains),
      'ess_coordinates': int(flat.shape[-1]),
      'ess_min': float(tf.reduce_min(ess)),
      'ess_median': float(np.median(ess.numpy())),
      'ess_second_moment_min': float(tf.reduce_min(ess_second)),
      'ess_log_joint': float(tf.reduce_sum(ess_log_prob)) if cross_chain is None
                       else float(ess_log_prob),
  }
  if num_chains > 1 and log_prob.shape[0] > 1:
    rhat = tfp.mcmc.potential_scale_reduction(flat, independent_chain_ndims=1)
    rhat = rhat.numpy()
    rhat = rhat[np.isfinite(rhat)]
    # Chains that never moved have no finite R-hat at all.
    result['rhat_median'] = float(np.median(rhat)) if rhat.size else np.nan
    result['rhat_max'] = float(np.max(rhat)) if rhat.size else np.nan
    result['rhat_log_joint'] = float(tfp.mcmc.potential_scale_reduction(
        tf.convert_to_tensor(log_prob), independent_chain_ndims=1))
  return result


def _second_moment_ess(draws, cross_chain, num_chains):
  """ESS of the squared deviations from the mean of `draws` `[K, C, D]`.

  A fixed-length trajectory near half a period of the target maps x to
  about -x: the chain is antithetic, so the ESS of the mean exceeds the
  number of draws (and is reported capped at it) while the spread is
  barely explored. The ESS of the second moment does not share that
  inflation (on the test Gaussian: ESS of the mean 2,400 of 2,400, of the
  second moment 18).
  """
  centred = draws - tf.reduce_mean(draws, axis=[0, 1], keepdims=True)
  ess = _effective_sample_size(tf.square(centred),
                                       cross_chain_dims=cross_chain)
  return ess * num_chains if cross_chain is None else ess


def _second_moment_bulk_ess(draws: np.ndarray) -> np.ndarray:
  """Bulk ESS (ArviZ) of the squared deviations from the mean of `draws`
  `[K, C, D]`.

  A fixed-length trajectory near half a period of the target maps x to
  about -x: the chain is antithetic, so the ESS of the mean exceeds the
  number of draws while the spread is barely explored. The ESS of the
  second moment does not share that inflation.
  """
  centred = draws - np.mean(draws, axis=(0, 1), keepdims=True)
  return mixing.ess(np.square(centred))


def function_space_diagnostics(ensemble: ensemble_lib.PosteriorEnsemble,
                               num_chains: int, x) -> Dict[str, float]:
  """ESS and R-hat of the predicted class probabilities at inputs `x`.

  Weight-space R-hat of a neural network is dominated by its symmetries
  (chains in permuted modes never agree on a weight even when they agree on
  every prediction), so convergence is better judged on the function.

  Args:
    ensemble: an HMC ensemble as `fit` returns it (samples ordered step by
      step with chains interleaved).
    num_chains: the number of chains C.
    x: inputs `[B, *input_shape]`.

  Returns:
    Median and worst ESS, R-hat and split R-hat over all (input, class)
    probabilities, and the worst ESS of their second moment
    (`_second_moment_bulk_ess`). ESS (bulk and tail) and split R-hat are
    ArviZ's rank-normalised ones (`mcmc.mixing`, Vehtari et al. 2021); the
    plain R-hat is TFP's.
  """
  probs = tf.exp(ensemble.log_probs(x))
  num_steps = ensemble.num_samples // num_chains
  probs = tf.reshape(probs, [num_steps, num_chains, -1])
  # Constant probabilities (saturated softmax) have no defined ESS or R-hat.
  varying = tf.math.reduce_std(probs, axis=[0, 1]) > 1e-6
  probs = tf.boolean_mask(probs, varying, axis=2)
  result = {'fn_fraction_varying': float(tf.reduce_mean(
      tf.cast(varying, tf.float32)))}
  if probs.shape[-1] == 0 or num_steps < 4:
    return result
  draws = probs.numpy()
  ess = mixing.ess(draws)
  result.update(fn_ess_median=float(np.median(ess)),
                fn_ess_min=float(np.min(ess)),
                fn_ess_tail_min=float(np.min(mixing.ess(draws, 'tail'))),
                fn_ess_second_moment_min=float(np.min(
                    _second_moment_bulk_ess(draws))))
  if num_chains > 1:
    # The plain R-hat (Gelman and Rubin, neither split nor rank-normalised),
    # kept beside the split one because earlier rows report it.
    rhat = tfp.mcmc.potential_scale_reduction(
        probs, independent_chain_ndims=1).numpy()
    result.update(fn_rhat_median=float(np.median(rhat)),
                  fn_rhat_max=float(np.max(rhat)))
  # Rank-normalised split R-hat (Vehtari et al. 2021, ArviZ): chains that
  # drift alike, as chains leaving their start do, look converged to the
  # plain R-hat and not to this one. One chain gets a split R-hat as well.
  split = mixing.split_rhat(draws)
  result.update(fn_split_rhat_median=float(np.median(split)),
                fn_split_rhat_max=float(np.max(split)))
  return result
