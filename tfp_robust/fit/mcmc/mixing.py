"""Has a run mixed? The diagnostics of Vehtari et al. (2021), from ArviZ.

Rank-normalised split R-hat and bulk and tail ESS come from `arviz-stats`
(the library that defines them), computed on what a sampler's user cares
about: the class probabilities the posterior predicts at test inputs, and
the log-joint. A run has mixed (issue 24) when

- the split R-hat of every class probability at every test point is below
  `split_rhat` (probabilities that no draw of any chain moves, a saturated
  softmax, have no R-hat and are counted apart, in `fn_fraction_varying`);
- the split R-hat of the log-joint is below `split_rhat`;
- the bulk ESS of every class probability is at least `bulk_ess`;
- the log-joint has no trend: the means of the kept draws' first and second
  halves differ by less than `trend_z` of their Monte Carlo standard errors.

The reads go through checkpoints as the sampler writes them (`segment_*`
of `mcmc.checkpoints`), so a run can be judged while it is still going, and
`trajectory` gives every figure after each segment against the compute
spent so far. `to_inference_data` hands the chains to ArviZ for plots.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from arviz_stats.base import array_stats

from tfp_robust.core import files

# Below this spread across every draw of every chain a probability is
# constant (a saturated softmax): R-hat and ESS are undefined there.
CONSTANT = 1e-6


def split_rhat(draws: np.ndarray) -> np.ndarray:
  """Rank-normalised split R-hat of draws `[K, C, ...]` (draws, chains)."""
  return np.asarray(array_stats.rhat(np.asarray(draws, np.float64),
                                     chain_axis=1, draw_axis=0,
                                     method='rank'))


def ess(draws: np.ndarray, method: str = 'bulk') -> np.ndarray:
  """Bulk or tail ESS (`method`) of draws `[K, C, ...]`."""
  # ArviZ's tail ESS is the smaller of the 5% and 95% quantiles' ESS.
  prob = (0.05, 0.95) if method == 'tail' else None
  return np.asarray(array_stats.ess(np.asarray(draws, np.float64),
                                    chain_axis=1, draw_axis=0, method=method,
                                    prob=prob))


def trend_z(log_joint: np.ndarray) -> float:
  """|mean of the first half - mean of the second| of `log_joint` `[K, C]`
  in units of the difference's Monte Carlo standard error (each half's
  MCSE from its ESS, all chains pooled)."""
  half = log_joint.shape[0] // 2
  first, second = log_joint[:half], log_joint[half:2 * half]
  mcse = [float(array_stats.mcse(np.asarray(part, np.float64), chain_axis=1,
                                 draw_axis=0, method='mean'))
          for part in (first, second)]
  spread = float(np.hypot(*mcse))
  difference = abs(float(np.mean(first)) - float(np.mean(second)))
  if spread == 0.0:
    return 0.0 if difference == 0.0 else float('inf')
  return difference / spread


def report(probs: np.ndarray, log_joint: np.ndarray,
           criteria: Dict[str, float]) -> Dict:
  """The mixing figures of one run and whether they meet `criteria`.

  Args:
    probs: class probabilities `[K, C, B, classes]` (or `[K, C, N]`).
    log_joint: the log-joint of the same draws `[K, C]`.
    criteria: `split_rhat`, `bulk_ess` and `trend_z` (see the module).

  Returns:
    `fn_split_rhat_max` / `_median`, `fn_bulk_ess_min` / `_median`,
    `fn_tail_ess_min`, `fn_fraction_varying`, `logjoint_split_rhat`,
    `logjoint_bulk_ess`, `logjoint_trend_z`, `num_draws`, `num_chains`,
    `mixed` and `failed` (the criteria not met, in words).
  """
  probs = np.asarray(probs, np.float64)
  num_draws, num_chains = probs.shape[:2]
  if num_draws < 4 or num_chains < 2:
    raise ValueError(f'probs has {num_draws} draws of {num_chains} chains; '
                     'split R-hat needs at least 4 draws of 2 chains.')
  flat = probs.reshape(num_draws, num_chains, -1)
  varying = flat.std(axis=(0, 1)) > CONSTANT
  moving = flat[:, :, varying]
  out = {'num_draws': int(num_draws), 'num_chains': int(num_chains),
         'fn_points': int(flat.shape[-1]),
         'fn_fraction_varying': float(np.mean(varying))}
  if moving.shape[-1]:
    rhat = split_rhat(moving)
    bulk = ess(moving, 'bulk')
    out.update(fn_split_rhat_max=float(np.max(rhat)),
               fn_split_rhat_median=float(np.median(rhat)),
               fn_split_rhat_over=float(np.mean(rhat >= criteria[
                   'split_rhat'])),
               fn_bulk_ess_min=float(np.min(bulk)),
               fn_bulk_ess_median=float(np.median(bulk)),
               fn_tail_ess_min=float(np.min(ess(moving, 'tail'))))
  else:  # Every probability constant: nothing moves, nothing to disagree on.
    out.update(fn_split_rhat_max=1.0, fn_split_rhat_median=1.0,
               fn_split_rhat_over=0.0, fn_bulk_ess_min=float('nan'),
               fn_bulk_ess_median=float('nan'), fn_tail_ess_min=float('nan'))
  log_joint = np.asarray(log_joint, np.float64)
  out.update(logjoint_split_rhat=float(split_rhat(log_joint)),
             logjoint_bulk_ess=float(ess(log_joint, 'bulk')),
             logjoint_trend_z=trend_z(log_joint))
  failed = []
  if not out['fn_split_rhat_max'] < criteria['split_rhat']:
    failed.append(f"class-probability split R-hat {out['fn_split_rhat_max']:.3g}"
                  f" >= {criteria['split_rhat']}")
  if not out['logjoint_split_rhat'] < criteria['split_rhat']:
    failed.append(f"log-joint split R-hat {out['logjoint_split_rhat']:.3g} >= "
                  f"{criteria['split_rhat']}")
  if moving.shape[-1] and not out['fn_bulk_ess_min'] >= criteria['bulk_ess']:
    failed.append(f"class-probability bulk ESS {out['fn_bulk_ess_min']:.3g} < "
                  f"{criteria['bulk_ess']}")
  if not out['logjoint_trend_z'] < criteria['trend_z']:
    failed.append(f"log-joint trend {out['logjoint_trend_z']:.3g} MCSE >= "
                  f"{criteria['trend_z']}")
  out['mixed'] = not failed
  out['failed'] = failed
  return out


def read_segments(checkpoint_dir: str) -> Tuple[List[np.ndarray], np.ndarray,
                                                int]:
  """The kept draws a sampler has checkpointed so far in `checkpoint_dir`.

  Returns:
    `(params, log_joint, num_segments)`: each weight tensor `[K, C, ...]`
    and the log-joint `[K, C]` of the K draws of the `num_segments`
    complete segments, in order (a run still going is read as far as it
    got). Checkpoints are untrusted: an unreadable or inconsistent one ends
    in `files.InvalidFile` naming it.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(checkpoint_dir):
    files.invalid(checkpoint_dir, 'there is no HMC checkpoint directory here',
                  'Run binaries/train.py --method=hmc with this --workdir '
                  'and config first.')
  index, parts, shapes = 0, [], None
  while True:
    path = os.path.join(checkpoint_dir, f'segment_{index:05d}')
    if not os.path.isdir(path):
      break
    try:
      reader = tf.train.load_checkpoint(os.path.join(path, 'ckpt'))
      names = sorted((n for n in reader.get_variable_to_shape_map()
                      if n.startswith('t') and n.endswith('VARIABLE_VALUE')),
                     key=lambda n: int(n[1:n.index('/')]))
      tensors = [reader.get_tensor(n) for n in names]
    except (tf.errors.OpError, ValueError, IndexError, OSError) as error:
      files.invalid(path, f'the segment cannot be read ({error})',
                    'Delete the segment to sample it again.')
    if shapes is None:
      shapes = [t.shape[1:] for t in tensors]
    if len(tensors) < 3 or [t.shape[1:] for t in tensors] != shapes or len(
        {t.shape[0] for t in tensors}) != 1:
      files.invalid(path, 'the segment does not match the segments before it',
                    'Delete the segment to sample it again.')
    parts.append(tensors[:-1])  # The last is is_accepted.
    index += 1
  if not parts:
    files.invalid(checkpoint_dir, 'no segment of kept draws is checkpointed '
                  'yet (the run is still warming up)',
                  'Wait for the first segment, or run train.py to the end.')
  joined = [np.concatenate(column) for column in zip(*parts)]
  return joined[:-1], joined[-1], index


def class_probabilities(architecture, params: Sequence[np.ndarray], x,
                        batch_size: int = 500) -> np.ndarray:
  """Class probabilities `[K, C, B, classes]` of draws `[K, C, ...]` at x."""
  from tfp_robust import ensemble as ensemble_lib  # pylint: disable=g-import-not-at-top
  num_draws, num_chains = params[0].shape[:2]
  flat = [np.reshape(p, (-1,) + p.shape[2:]) for p in params]
  ensemble = ensemble_lib.ArchitectureEnsemble(architecture, flat,
                                               method='hmc')
  log_probs = np.concatenate([
      np.asarray(ensemble.log_probs(x[i:i + batch_size]))
      for i in range(0, len(x), batch_size)], axis=1)
  return np.exp(log_probs).reshape(num_draws, num_chains, *log_probs.shape[1:])


def trajectory(probs: np.ndarray, log_joint: np.ndarray, segment_size: int,
               criteria: Dict[str, float],
               timings: Optional[Dict] = None) -> List[Dict]:
  """`report` on the draws of the first 1, 2, 4, 8, ... segments and of
  all of them, with the compute spent by then (chain-leapfrog steps of the
  kept iterations and seconds, warm-up included, from the run's
  `timings.json` when given). Doubling keeps the cost at about twice one
  `report` on every draw (ArviZ computes each probability's R-hat and ESS
  one by one: about 20 s per 1,000 draws of 5,000 probabilities here)."""
  rows = []
  timings = timings or {}
  segments = timings.get('segments', {})
  leapfrogs = float(timings.get('warm_up_leapfrogs', 0.0))
  seconds = float(timings.get('warm_up_seconds', 0.0))
  num_chains = probs.shape[1]
  num_segments = probs.shape[0] // segment_size
  for end in range(segment_size, probs.shape[0] + 1, segment_size):
    segment = end // segment_size - 1
    entry = segments.get(str(segment)) or segments.get(segment) or {}
    seconds += float(entry.get('seconds', 0.0))
    leapfrogs += (float(entry.get('leapfrogs', 0.0)) *
                  float(entry.get('iterations', 0.0)) * num_chains)
    count = segment + 1
    if end < 4 or (count & (count - 1) and count != num_segments):
      continue
    row = report(probs[:end], log_joint[:end], criteria)
    row.update(segments=segment + 1, seconds=seconds,
               kept_chain_leapfrogs=leapfrogs)
    rows.append(row)
  return rows


def to_inference_data(params: Optional[Sequence[np.ndarray]] = None,
                      log_joint: Optional[np.ndarray] = None,
                      probs: Optional[np.ndarray] = None,
                      names: Optional[Sequence[str]] = None):
  """The chains as ArviZ data (`arviz_base.from_dict`), for ArviZ's plots.

  Arrays are `[K, C, ...]` as the sampler keeps them; ArviZ wants chains
  first, so they are transposed. `params` become posterior variables
  (`names`, default `w0`, `w1`, ...), the class probabilities the variable
  `probs`, the log-joint the sample statistic `lp`.
  """
  import arviz_base  # pylint: disable=g-import-not-at-top
  chains_first = lambda a: np.swapaxes(np.asarray(a), 0, 1)
  posterior = {}
  for i, p in enumerate(params or ()):
    posterior[(names or [])[i] if names and i < len(names) else f'w{i}'] = (
        chains_first(p))
  if probs is not None:
    posterior['probs'] = chains_first(probs)
  groups = {'posterior': posterior}
  if log_joint is not None:
    groups['sample_stats'] = {'lp': chains_first(log_joint)}
  return arviz_base.from_dict(groups)

