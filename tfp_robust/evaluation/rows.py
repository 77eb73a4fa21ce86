"""Evaluating one posterior ensemble: attack rows and gradient statistics.

Reads ensembles only through their interface; knows no fitting method. Also
what `binaries/evaluate.py` needs around the card (`tfp_robust.evaluation.card`): its
config checked, a model's name from its path, the card as table rows.
"""

import os
from typing import Dict, List, Optional

import numpy as np

from tfp_robust.attacks import gradient as attacks
from tfp_robust.evaluation import gradients
from tfp_robust.evaluation import protocols


def attack_rows(ensemble, x, y, config, seed: int = 0,
                labels: Optional[Dict] = None, surrogate=None) -> List[Dict]:
  """The rows of the config's protocol (see `protocols.evaluate`)."""
  return protocols.evaluate(ensemble, x, y, config, seed=seed, labels=labels,
                            surrogate=surrogate)


def gradient_statistics(ensemble, x, y) -> Dict[str, float]:
  """Magnitude of the expected loss gradient over all samples, per component."""
  grads = gradients.expected_gradients_by_num_samples(
      ensemble, x, y, [ensemble.num_samples])[ensemble.num_samples]
  magnitude = np.abs(grads)
  return {
      'grad_mean_abs': float(magnitude.mean()),
      'grad_median_abs': float(np.median(magnitude)),
      'grad_max_abs': float(magnitude.max()),
      'grad_frac_zero': float(np.mean(magnitude == 0.0)),
  }

def expected_gradient_table(ensemble, x, y, num_samples, batch_size=250):
  """Expected gradients for several n over many inputs, in input batches.

  Returns:
    dict n -> `[B, *input_shape]` array of E_{first n}[grad_x L].
  """
  parts = {n: [] for n in num_samples}
  for start in range(0, len(x), batch_size):
    result = gradients.expected_gradients_by_num_samples(
        ensemble, x[start:start + batch_size], y[start:start + batch_size],
        num_samples)
    for n in num_samples:
      parts[n].append(result[n])
  return {n: np.concatenate(parts[n], 0) for n in num_samples}


def adversarial_examples(ensemble, x, y, config, seed: int = 0,
                         max_images: int = 8):
  """PGD examples of the first images, to look at.

  PGD with the config's steps on the `predictive` loss (or the first of
  `config.losses`) at the first radius of `config.eps`.

  Returns:
    `(x, x_adv, name, eps)` for the first `max_images` images.
  """
  losses = tuple(config.get('losses', ('predictive',)))
  loss = 'predictive' if 'predictive' in losses else losses[0]
  eps = float(config.eps[0])
  x, y = x[:max_images], y[:max_images]
  x_adv = attacks.pgd(ensemble, x, y, eps, num_steps=int(config.pgd_steps),
                      loss=loss, seed=seed)
  return x, np.asarray(x_adv), f'pgd_{loss}', eps


# Path components that name a file's role, not the model: a name is looked
# for above them.
_GENERIC = ('ensemble', 'saved_model', 'model', 'export', 'exported', 'sm')


def model_name(path: str, taken=()) -> str:
  """A readable name for the model at `path`, different from `taken`.

  `workdir/table1/mnist/hmc/ensemble` -> 'mnist_hmc', `nets/net.keras` ->
  'nets_net': the last two components that are not generic ('ensemble',
  'saved_model', ...), extension dropped; a name already taken gets a
  suffix, so two models evaluated into one tree never collide.
  """
  parts = [p for p in os.path.normpath(os.path.abspath(path)).split(os.sep)
           if p]
  parts[-1] = os.path.splitext(parts[-1])[0] or parts[-1]
  while len(parts) > 1 and parts[-1].lower() in _GENERIC:
    parts.pop()
  name = '_'.join(parts[-2:])
  candidate, index = name, 2
  while candidate in taken:
    candidate, index = f'{name}_{index}', index + 1
  return candidate


def check_config(config, input_range=(0.0, 1.0)) -> None:
  """The evaluation config checked whole, as `config_checks` checks others.

  The shared checks know the training datasets only; the data set of an
  evaluation may be any prepared TFDS dataset or a file, so it is checked
  by reading its description (`data.spec`) instead. eps is in the units of
  the data, whose range is `input_range`.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  from tfp_robust.core import config_checks  # pylint: disable=g-import-not-at-top
  from tfp_robust.core import validate  # pylint: disable=g-import-not-at-top
  plain = config.to_dict()
  dataset = plain.get('dataset', 'mnist')
  if not isinstance(dataset, str) or not dataset.strip():
    validate.fail('--config.dataset', dataset, 'it must be a dataset name',
                  "e.g. 'mnist', 'cifar10', 'half_moons' or --data=PATH.npz.")
  plain['dataset'] = 'mnist'  # Checked by data.spec, not by name.
  low, high = input_range
  eps = plain['attack'].get('eps', (0.1,))
  eps = (eps,) if isinstance(eps, (int, float)) else tuple(eps)
  if (low, high) != (0.0, 1.0):
    for value in eps:
      validate.eps('--config.attack.eps', value / (high - low) if isinstance(
          value, (int, float)) else value)
    plain['attack']['eps'] = tuple(v / (high - low) for v in eps)
  config_checks.check(ml_collections.ConfigDict(plain), [])


def settings(config, **card):
  """The card's `Settings` from an evaluation config (and the binary's
  --repeats, --square_eot, --certify), checked."""
  from tfp_robust.evaluation import card as card_lib  # pylint: disable=g-import-not-at-top
  from tfp_robust.core import validate  # pylint: disable=g-import-not-at-top
  try:
    return card_lib.Settings(
        attack=config.attack.to_dict(), seed=int(config.get('seed', 0)),
        eot_iter=config.attack.get('eot_iter', 20), **card).check()
  except validate.InvalidArgument as error:
    message = str(error)
    if message.startswith('eot_iter='):
      message = '--config.attack.' + message
    elif not message.startswith('seed='):
      message = '--' + message.replace('certify_method=', 'certify=', 1)
    raise validate.InvalidArgument(message) from None


def card_rows(card: Dict, labels: Optional[Dict] = None) -> List[Dict]:
  """The card's attacks as table rows (evaluation.csv, TensorBoard)."""
  protocol = card['settings']['attack'].get('protocol', 'strong')
  failed = {}
  for finding in card['checks']:
    if not finding['passed']:
      failed.setdefault(finding['eps'], []).append(finding['name'])
  rows = []
  for entry in card['robust']:
    eps_failed = ','.join(failed.get(None, []) + failed.get(entry['eps'], []))
    base = dict(labels or {}, protocol=protocol, eps=entry['eps'],
                num_samples=card['num_samples'],
                num_points=card['data']['num_points'],
                resampled=card['resamples'],
                clean_accuracy=card['clean_accuracy'],
                checks_failed=eps_failed)
    for attack in entry['attacks']:
      rows.append(dict(base, attack=attack['attack'], loss=attack['loss'],
                       adversarial_accuracy=attack['accuracy'],
                       adversarial_accuracy_sd=attack['spread']['std'],
                       attack_seconds=attack['seconds'],
                       model_evaluations=attack['model_evaluations']))
    rows.append(dict(base, attack='worst_case', loss='all',
                     adversarial_accuracy=entry['accuracy'],
                     adversarial_accuracy_sd=entry['spread']['std']))
    if entry['certified'] is not None:
      rows.append(dict(base, attack='certified',
                       loss=entry['certify_method'],
                       adversarial_accuracy=entry['certified'],
                       attack_seconds=entry['certify_seconds']))
  return rows
