"""Evaluation protocols: the paper's attacks, or a strong protocol, as rows.

One code path for both (`evaluate`), selected by name; every row says which
protocol made it.

- `paper`: the paper's Section 5 attacks: random sign noise, FGSM and PGD
  (15 steps, 1 restart), each gradient attack under every loss named in the
  config (`expected` is the paper's Eq. 2).
- `strong`: what a careful reviewer asks for. APGD (Croce and Hein 2020)
  on the cross-entropy of the predictive, then on DLR (margin for two
  classes), each with restarts, then (with `apgd_targets` > 0) targeted
  APGD-DLR towards each of that many other classes, every later run only on
  the images still standing; the Square attack (gradient-free); transfer
  attacks crafted on a disjoint half of the posterior samples and on a
  deterministic surrogate; the paper's FGSM and PGD and random noise for
  the sanity checks; and a `worst_case` row: per image, the strongest input
  any of them found. With an ensemble that resamples on every call, every
  gradient averages `eot_iter` calls (expectation over transformation).

Each gradient-free and transfer attack runs on every image (not only the ones
APGD left), so its own accuracy is known and the checks can compare it with
the white-box attacks. `certified` rows give the lower bound no attack can
beat, where the backend can be bounded (architecture-backed and Keras
ensembles): always interval bound propagation (`loss='ibp'`), and beside it
the method of `certify_method` when that is tighter ('crown' by default,
`loss='crown'`); the checks compare the attacks with the tightest of them.
"""

import time
from typing import Dict, List, Optional

from absl import logging

from tfp_robust.attacks import apgd as apgd_lib
from tfp_robust.attacks import gradient as attacks
from tfp_robust.evaluation import certify
from tfp_robust.evaluation import checks
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.evaluation import metrics
from tfp_robust.attacks import square as square_lib
from tfp_robust.core import validate

PROTOCOLS = ('paper', 'strong')


def _setting(config, name, default):
  return config.get(name, default) if hasattr(config, 'get') else getattr(
      config, name, default)


def _transfer_half(ensemble, x, y, eps, config, seed):
  source = ensemble.samples(0, ensemble.num_samples // 2)
  return apgd_lib.apgd(source, x, y, eps,
                       int(_setting(config, 'apgd_steps', 100)), 1,
                       'predictive', [seed, 7])


def _transfer_surrogate(surrogate, x, y, eps, config, seed):
  return apgd_lib.apgd(surrogate, x, y, eps,
                       int(_setting(config, 'apgd_steps', 100)), 1,
                       'predictive', [seed, 8])


def _paper_attacks(config):
  """(name, loss, fn(ensemble, x, y, eps, seed)) of the paper's protocol."""
  steps = int(_setting(config, 'pgd_steps', 15))
  restarts = int(_setting(config, 'pgd_restarts', 1))
  step_size = _setting(config, 'pgd_step_size', None)
  out = [('random', 'none', lambda e, x, y, eps, s: attacks.random_sign(
      x, eps, seed=s))]
  for loss in _setting(config, 'losses', ('expected', 'predictive')):
    out.append(('fgsm', loss, lambda e, x, y, eps, s, l=loss: attacks.fgsm(
        e, x, y, eps, loss=l)))
  for loss in _setting(config, 'losses', ('expected', 'predictive')):
    out.append(('pgd', loss, lambda e, x, y, eps, s, l=loss: attacks.pgd(
        e, x, y, eps, num_steps=steps, step_size=step_size,
        restarts=restarts, loss=l, seed=s)))
  wanted = tuple(_setting(config, 'attacks', ('random', 'fgsm', 'pgd')))
  unknown = set(wanted) - {name for name, _, _ in out}
  if unknown:
    raise ValueError(f'Unknown paper-protocol attacks {sorted(unknown)}; '
                     "choose from ('random', 'fgsm', 'pgd').")
  return [entry for entry in out if entry[0] in wanted]


def _strong_attacks(config, surrogate, num_samples, num_classes):
  """The strong protocol's attacks; a transfer attack without a source (one
  posterior sample, or no surrogate) is left out."""
  targets = apgd_lib.check_targets(_setting(config, 'apgd_targets', 0),
                                   num_classes)
  steps = int(_setting(config, 'pgd_steps', 15))
  queries = int(_setting(config, 'square_queries', 1000))
  square_restarts = int(_setting(config, 'square_restarts', 1))
  out = [
      ('random', 'none', lambda e, x, y, eps, s: attacks.random_sign(
          x, eps, seed=s)),
      ('fgsm', 'expected', lambda e, x, y, eps, s: attacks.fgsm(
          e, x, y, eps, loss='expected')),
      ('pgd', 'expected', lambda e, x, y, eps, s: attacks.pgd(
          e, x, y, eps, num_steps=steps, loss='expected', seed=s)),
      ('pgd', 'predictive', lambda e, x, y, eps, s: attacks.pgd(
          e, x, y, eps, num_steps=steps, loss='predictive', seed=s)),
      ('apgd', 'ce+dlr+targeted' if targets else 'ce+dlr',
       lambda e, x, y, eps, s: apgd_lib.apgd_cascade(
           e, x, y, eps, int(_setting(config, 'apgd_steps', 100)),
           int(_setting(config, 'apgd_restarts', 5)), [s, 3],
           int(_setting(config, 'eot_iter', 1)) if e.resamples else 1,
           targets)),
      ('square', 'margin', lambda e, x, y, eps, s: square_lib.square(
          e, x, y, eps, queries, square_restarts, seed=[s, 5])),
  ]
  if num_samples >= 2:
    out.append(('transfer_half', 'predictive',
                lambda e, x, y, eps, s: _transfer_half(e, x, y, eps, config,
                                                       s)))
  if surrogate is not None:
    out.append(('transfer_surrogate', 'predictive',
                lambda e, x, y, eps, s: _transfer_surrogate(
                    surrogate, x, y, eps, config, s)))
  return out


def evaluate(ensemble, x, y, config, seed: int = 0,
             labels: Optional[Dict] = None, surrogate=None,
             certified: bool = True) -> List[Dict]:
  """Rows of one protocol at every eps of the config, with its checks.

  Args:
    ensemble: the posterior ensemble, attacked and evaluated as is.
    x: test inputs `[B, *input_shape]` in [0, 1].
    y: labels `[B]`.
    config: the attack section: `protocol` ('paper' or 'strong'), `eps` (a
      list), `losses`, `pgd_steps`, `pgd_restarts` and, for the strong
      protocol, `apgd_steps`, `apgd_restarts`, `square_queries`,
      `square_restarts`, `eot_iter`.
    seed: seed of every random start.
    labels: extra columns for every row (method, dataset).
    surrogate: a deterministic ensemble for the surrogate transfer attack.
    certified: add `certified` rows (IBP, and the config's
      `certify_method` when it is not 'ibp') where the backend supports it.

  Returns:
    A list of dict rows: one per (eps, attack, loss), a `worst_case` row per
    eps for the strong protocol (at eps = 0 no attack runs: the ball holds
    the input alone), and a `checks_failed` column naming the
    sanity checks the evaluation at that eps failed.
  """
  protocol = _setting(config, 'protocol', 'paper')
  if protocol not in PROTOCOLS:
    raise ValueError(f'Unknown protocol {protocol!r}; choose one of '
                     f'{PROTOCOLS}.')
  x, y = ensemble_lib.check_inputs(x, ensemble.input_shape, y,
                                   ensemble.num_classes)
  # Every radius checked before any attack runs.
  radii = [validate.eps('eps', eps)
           for eps in _setting(config, 'eps', (0.1,))]
  certify_method = validate.one_of(
      '--config.attack.certify_method',
      _setting(config, 'certify_method', 'ibp'), certify.METHODS)
  chosen = (_paper_attacks(config) if protocol == 'paper'
            else _strong_attacks(config, surrogate, ensemble.num_samples,
                                 ensemble.num_classes))
  clean_log_probs = ensemble.log_probs(x)
  gradient_evidence = checks.gradient_findings(ensemble, x, y)
  gradient_statistics = checks.gradient_statistics(gradient_evidence)
  rows = []
  for eps in radii:
    eps_rows, candidates = [], []
    for name, loss, attack in chosen:
      start = time.time()
      # The eps = 0 ball holds x alone: every attack returns it.
      x_adv = attack(ensemble, x, y, eps, seed) if eps > 0 else x
      candidates.append(x_adv)
      eps_rows.append(_row(ensemble, x, y, x_adv, clean_log_probs, protocol,
                           name, loss, eps, time.time() - start, labels))
    if protocol == 'strong':
      start = time.time()
      worst = attacks.strongest(ensemble, x, y, candidates)
      eps_rows.append(_row(ensemble, x, y, worst, clean_log_probs, protocol,
                           'worst_case', 'all', eps, time.time() - start,
                           labels))
    if certified:
      eps_rows += _certified_rows(ensemble, x, y, eps, certify_method,
                                  protocol, eps_rows[0]['clean_accuracy'],
                                  labels)
    # The checks see one `certified` key: the tightest bound.
    accuracy = {_key(r): r['adversarial_accuracy'] for r in eps_rows
                if r['attack'] != 'certified'}
    bounds = [r['adversarial_accuracy'] for r in eps_rows
              if r['attack'] == 'certified']
    if bounds:
      accuracy['certified'] = max(bounds)
    findings = gradient_evidence + checks.attack_findings(accuracy, eps)
    failed = ','.join(f.name for f in findings if not f.passed)
    for finding in findings:
      logging.info('eps %g: %s', eps, checks.format_findings([finding]))
    for row in eps_rows:
      row['checks_failed'] = failed
      row.update(gradient_statistics)
    rows += eps_rows
  return rows


# Attacks `checks.attack_findings` knows by their name alone, whatever loss
# they ran on (Square's margin, the transfer attacks' predictive loss).
_KEYED_BY_NAME = ('square', 'transfer_half', 'transfer_surrogate',
                  'certified', 'worst_case', 'random')


def _certified_rows(ensemble, x, y, eps, method, protocol, clean, labels):
  """IBP's row, then the method's when it is another; none (logged) for a
  backend whose layers cannot be bounded."""
  rows = []
  for name in dict.fromkeys(('ibp', method)):
    start = time.time()
    try:
      value = certify.certified_accuracy(ensemble, x, y, eps, name)
    except NotImplementedError as error:
      logging.info('No certified bound: %s', error)
      break
    rows.append(dict(labels or {}, protocol=protocol, attack='certified',
                     loss=name, eps=eps, num_samples=ensemble.num_samples,
                     num_points=int(x.shape[0]), clean_accuracy=clean,
                     adversarial_accuracy=value,
                     attack_seconds=time.time() - start))
    logging.info('%s certified/%s eps %g: accuracy %.3f (%.1fs)', protocol,
                 name, eps, value, rows[-1]['attack_seconds'])
  return rows


def _key(row):
  """A row's key in `checks.attack_findings`."""
  return (row['attack'] if row['loss'] in ('none', 'all', 'ibp') or
          row['attack'] in _KEYED_BY_NAME
          else f"{row['attack']}_{row['loss']}")


def _row(ensemble, x, y, x_adv, clean_log_probs, protocol, name, loss, eps,
         seconds, labels):
  row = dict(labels or {})
  row.update(protocol=protocol, attack=name, loss=loss, eps=eps,
             num_samples=ensemble.num_samples, num_points=int(x.shape[0]),
             resampled=bool(ensemble.resamples))
  row.update(metrics.robustness(ensemble, x, y, x_adv, clean_log_probs))
  row['attack_seconds'] = seconds
  logging.info('%s %s/%s eps %g: accuracy %.3f (%.1fs)', protocol, name, loss,
               eps, row['adversarial_accuracy'], seconds)
  return row

