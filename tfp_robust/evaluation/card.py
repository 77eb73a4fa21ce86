"""The evaluation card: one model, one data set, one report to publish.

`evaluate(model, x, y, eps=[...], workdir=...)` (and `binaries/evaluate.py`)
measures, for any posterior ensemble on any data:

- calibration of the clean predictive (`calibration`): accuracy, NLL, ECE
  over 15 bins, Brier, a reliability diagram;
- robustness at each eps: the worst case per image over the strong
  protocol's attacks (`protocols`: APGD-CE, APGD-DLR, targeted APGD-T when
  asked, Square, transfer from half the samples and from a surrogate when
  one is given, with FGSM, PGD and noise for the checks), the certified
  accuracy of the tightest bound available (`certified`; "not available"
  where the model has no bounds), and a status in plain words;
- the masking checks with their evidence, MCMC diagnostics when the model
  carries them, wall time and model evaluations per attack.

A model that resamples on every call is attacked with expectation over
transformation: each gradient averages `eot_iter` calls (AutoAttack's
randomised version uses 20) and Square's margin is that of the predictive
over `square_eot` times the model's calls; every accuracy is the worst of
`repeats` independent evaluations, reported with their spread.

Writes `<workdir>/card.json` (keys `clean_accuracy`, `nll`, `ece`, `brier`,
`robust`, ...), `<workdir>/card.md` and its PNG figures (`card_report`).
"""

import dataclasses
import inspect
import os
import sys
import time
from typing import Dict, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from tfp_robust.attacks import gradient as attacks
from tfp_robust.evaluation import calibration
from tfp_robust.evaluation import certify
from tfp_robust.evaluation import checks
from tfp_robust.core import config_lib
from tfp_robust import data as data_lib
from tfp_robust.core import files
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.evaluation import instrumented
from tfp_robust.evaluation import protocols
from tfp_robust.core import validate

CERTIFY_METHODS = certify.METHODS


@dataclasses.dataclass
class Settings:
  """How the card attacks and evaluates.

  Attributes:
    attack: the attack section (`config_lib.attack_section`); its protocol
      ('strong' by default), budgets and `apgd_targets` are used, its `eps`
      and `eot_iter` are not (see below).
    repeats: independent evaluations of a resampling model; the card keeps
      the worst and reports the spread.
    eot_iter: calls averaged per gradient for a resampling model.
    square_eot: Square's margin is that of `square_eot` x S resampled calls.
    certify_method: the bound to certify with, one of `CERTIFY_METHODS`.
    seed: seed of every attack.
  """
  attack: Dict = dataclasses.field(default_factory=lambda: dict(
      config_lib.attack_section(protocol='strong')))
  repeats: int = 5
  eot_iter: int = 20
  square_eot: int = 20
  certify_method: str = 'crown'
  seed: int = 0

  def check(self):
    for name in ('repeats', 'eot_iter', 'square_eot'):
      validate.integer(name, getattr(self, name), 1)
    validate.one_of('certify_method', self.certify_method, CERTIFY_METHODS)
    validate.seed('seed', self.seed)
    validate.one_of('protocol', self.attack.get('protocol', 'strong'),
                    protocols.PROTOCOLS)
    return self


def certified(model, x, y, eps, method: str = 'crown'):
  """`(certified accuracy or None, method used or why not)`: the one place
  that certifies.

  Routed through `tfp_robust.evaluation.certify`: `method` first and, when it cannot
  bound this model, interval bounds; a model no bound reads (a SavedModel, a
  model that resamples, a layer without bounds) gives None and the reason,
  never an error.
  """
  if model.resamples:
    return None, 'the model resamples on every call: no fixed weights to bound'
  why = ''
  for name in dict.fromkeys((method, 'ibp')):
    try:
      return float(certify.certified_accuracy(model, x, y, eps,
                                              method=name)), name
    except NotImplementedError as error:
      # Raised while tracing: the message sits after the traceback TF adds.
      text = str(error).strip().splitlines()[-1].strip()
      why = text.split('NotImplementedError:')[-1].strip().split(';')[0]
      why = why.rstrip('.')
  return None, why


def status(accuracy: float, certified_value: Optional[float],
           clean_accuracy: float, tolerance: float):
  """`(status, sentence)`: robust, not robust or undecided, in plain words.

  - not robust: the attacks flip at least half of the correct predictions;
  - robust: the certified accuracy is within `tolerance` of the attacked
    one, so the robust accuracy is known;
  - undecided: neither; the robust accuracy lies in the gap.
  """
  if accuracy <= 0.5 * clean_accuracy or accuracy <= tolerance:
    return 'not robust', (f'attacks leave {accuracy:.3f} of a clean '
                          f'{clean_accuracy:.3f}')
  if certified_value is not None and accuracy - certified_value <= tolerance:
    return 'robust', (f'{certified_value:.3f} proved, attacks leave '
                      f'{accuracy:.3f}')
  low = 0.0 if certified_value is None else certified_value
  return 'undecided', (f'the robust accuracy lies in [{low:.3f}, '
                       f'{accuracy:.3f}]' +
                       ('' if certified_value is not None
                        else ' (no certificate for this model)'))


def compatible(model_shape, model_classes, data_shape, data_classes,
               model_name='model', data_name='x'):
  """Refuses data the model cannot take, naming both; flat <-> image is fine.

  Returns:
    True when the data must be reshaped to the model's input shape.
  """
  model_shape, data_shape = tuple(model_shape), tuple(data_shape)
  reshape = _reshape_needed(model_shape, data_shape)
  if data_classes is not None and int(data_classes) > int(model_classes) and (
      reshape or model_shape == data_shape):
    raise validate.InvalidArgument(
        f'{data_name} has {data_classes} classes, but {model_name} has '
        f'{model_classes} outputs: its labels cannot all be predicted. '
        'Evaluate the model on the data it was trained for.')
  if reshape or model_shape == data_shape:
    return reshape
  hint = ('--config.dataset=half_moons for a half-moons model, or '
          if model_shape == (2,) else '')
  raise validate.InvalidArgument(
      f'{model_name} takes inputs of shape {model_shape}, but {data_name} '
      f'holds inputs of shape {data_shape}: the model was not made for this '
      f'data. Pass data whose inputs have shape {model_shape} ({hint}an '
      '.npz file with x_test of that shape via --data, or such arrays).')


def _reshape_needed(model_shape, data_shape):
  if model_shape == data_shape:
    return False
  return int(np.prod(model_shape)) == int(np.prod(data_shape))


def inputs(model, x, y=None, num_points: Optional[int] = None,
           input_range=(0.0, 1.0)):
  """Arrays, a `tf.data.Dataset` or a `data.Dataset` as checked test arrays.

  Returns:
    `(x in [0, 1] [N, *model.input_shape], y int32 [N])`.
  """
  if num_points is not None:
    num_points = validate.integer('num_points', num_points, 1)
  if isinstance(x, data_lib.Dataset):
    x, y = x.x_test, x.y_test
  elif isinstance(x, tf.data.Dataset):
    if y is not None:
      validate.fail('y', 'labels', 'a tf.data.Dataset carries its labels',
                    'Pass y=None with a dataset of (x, y) pairs.')
    x, y = data_lib.from_tf_dataset(x, num_points, model.num_classes,
                                    input_range)
  if y is None:
    validate.fail('y', None, 'labels are needed with arrays',
                  'Pass y, the class index of each example.')
  x_shape = np.shape(x)
  reshape = compatible(model.input_shape, model.num_classes, x_shape[1:], None)
  x, y = data_lib.from_arrays(np.asarray(x)[:num_points],
                              np.asarray(y)[:num_points], model.num_classes,
                              input_range)
  if reshape:
    x = x.reshape((len(x),) + tuple(model.input_shape))
  return x, y


def _accuracies(model, x, y, repeats):
  """Accuracy of `repeats` independent evaluations (one if deterministic)."""
  count = repeats if model.resamples else 1
  return [model.accuracy(x, y, batch_size=500) for _ in range(count)]


def _spread(values):
  values = [float(v) for v in values]
  return {'values': values, 'worst': min(values), 'mean': float(np.mean(
      values)), 'std': float(np.std(values)), 'best': max(values)}


def _clean(model, x, y, repeats):
  """Calibration of the clean predictive (averaged over the repeats)."""
  runs = [calibration.summary(
      ensemble_lib.predictive_from_log_probs(model.log_probs(x)).numpy(), y)
          for _ in range(repeats if model.resamples else 1)]
  result = dict(runs[0])
  for key in ('nll', 'ece', 'brier'):
    result[key] = float(np.mean([r[key] for r in runs]))
  accuracy = _spread([r['accuracy'] for r in runs])
  result['accuracy'] = accuracy['worst']
  return result, accuracy


def _attack_list(settings: Settings, surrogate, model):
  protocol = settings.attack.get('protocol', 'strong')
  config = dict(settings.attack, eot_iter=settings.eot_iter)
  # The protocols' own lists, so the card runs what attack.py runs.
  if protocol == 'paper':
    return protocols._paper_attacks(config)  # pylint: disable=protected-access
  return protocols._strong_attacks(  # pylint: disable=protected-access
      config, surrogate, model.num_samples, model.num_classes)


def _check_key(name, loss):
  if name in ('fgsm', 'pgd'):
    return f'{name}_{loss}'
  return name


def robust_at(model, x, y, eps, chosen, settings, clean_spread, label=None):
  """One eps: every attack's accuracy and cost, the worst case, the bound.

  At eps = 0 no attack runs (the ball holds the input alone) and the clean
  evaluations are the answer.
  """
  clean_accuracy = clean_spread['worst']
  eot_model = (model.subset(np.arange(model.num_samples * settings.square_eot))
               if model.resamples else model)
  per_attack, candidates = [], []
  for name, loss, attack in (chosen if eps > 0 else ()):
    start, before = time.time(), model.evaluations
    target = eot_model if name == 'square' else model
    x_adv = attack(target, x, y, eps, settings.seed)
    seconds, used = time.time() - start, model.evaluations - before
    candidates.append(x_adv)
    spread = _spread(_accuracies(model, x_adv, y, settings.repeats))
    per_image = used / (model.num_samples * len(x))
    per_attack.append(dict(
        attack=name, loss=loss, accuracy=spread['worst'], spread=spread,
        seconds=seconds, model_evaluations=int(used),
        predictive_evaluations_per_image=per_image,
        eot=(settings.eot_iter if name == 'apgd' else settings.square_eot
             if name == 'square' else 1) if model.resamples else 1))
    logging.info('eps %g %s/%s: accuracy %.3f, %.1f s, %.0f predictive '
                 'evaluations per image (%.0f sample passes/s)',
                 eps if label is None else label, name,
                 loss, spread['worst'], seconds, per_image,
                 used / max(seconds, 1e-9))
  if eps > 0:
    worst = attacks.strongest(model, x, y, candidates)
    spread = _spread(_accuracies(model, worst, y, settings.repeats))
  else:
    spread = clean_spread
  start = time.time()
  if eps == 0 and not model.resamples:
    # The ball holds the input alone: its accuracy is proved.
    bound, why, method = spread['worst'], '', 'exact at eps = 0'
  else:
    bound, used = certified(model, x, y, eps, settings.certify_method)
    method, why = (used, '') if bound is not None else (None, used)
  accuracy = {_check_key(a['attack'], a['loss']): a['accuracy']
              for a in per_attack}
  accuracy['worst_case'] = spread['worst']
  if bound is not None:
    accuracy['certified'] = bound
  findings = checks.attack_findings(accuracy, eps, len(x)) if eps > 0 else []
  tolerance = max(0.02, 1.0 / len(x))
  state, sentence = status(spread['worst'], bound, clean_accuracy, tolerance)
  strongest = (min(per_attack, key=lambda a: a['accuracy']) if per_attack
               else dict(attack='none', loss='eps = 0'))
  return dict(
      eps=None, accuracy=spread['worst'], certified=bound,
      certify_method=method if bound is not None else None,
      certified_note=why, certify_seconds=time.time() - start,
      status=state, status_text=sentence, gap=(None if bound is None else
                                               spread['worst'] - bound),
      spread=spread, strongest_attack=f"{strongest['attack']}/"
      f"{strongest['loss']}", attacks=per_attack,
      checks=[dataclasses.asdict(f) for f in findings])


def _mcmc(model):
  """The chains' diagnostics an ensemble carries (HMC fits save them)."""
  extra = getattr(model, 'extra', None) or {}
  found = {k: v for k, v in extra.items() if isinstance(v, (int, float))
           and any(t in k for t in ('rhat', 'ess', 'accept', 'step_size',
                                    'chains', 'divergen'))}
  return found or None


def thin(model, num_samples: int, seed: int = 0):
  """At most `num_samples` samples, keeping every chain of an HMC ensemble.

  HMC ensembles are stored step by step with chains interleaved; taking
  every k-th sample keeps a single chain when k is a multiple of their
  number. With `num_chains` in the ensemble's saved facts, whole steps are
  kept; otherwise an HMC ensemble keeps a seeded random subset (every chain
  in proportion) and any other ensemble evenly spaced samples.
  """
  if num_samples >= model.num_samples:
    return model
  extra = getattr(model, 'extra', None) or {}
  chains = int(extra.get('num_chains', 1) or 1)
  if chains > 1 and model.num_samples % chains == 0 and num_samples >= chains:
    return model.evenly_spaced(num_samples, chains)
  if model.method.startswith('hmc'):
    return model.subset(np.sort(np.random.RandomState(seed).choice(
        model.num_samples, num_samples, replace=False)))
  return model.evenly_spaced(num_samples)


def evaluate(model, x, y=None, eps: Sequence[float] = (0.1,),
             workdir: Optional[str] = None, settings: Optional[Settings] = None,
             surrogate=None, baseline=None, input_range=(0.0, 1.0),
             normalization=None, num_points: Optional[int] = None,
             name: Optional[str] = None, data_name: str = 'arrays') -> Dict:
  """The evaluation card of `model` on `(x, y)`; written when `workdir` is set.

  Args:
    model: a `PosteriorEnsemble`, or a path `ensemble.load_any` reads.
    x: inputs `[N, ...]` (any shape the model takes; flat and image layouts
      are converted), a `tf.data.Dataset` of (x, y) or a `data.Dataset`.
    y: labels `[N]` (None with a dataset).
    eps: L-infinity radii in the data's units.
    workdir: where card.json, card.md and the figures go.
    settings: a `Settings` (attack budgets, EOT, repeats, bound).
    surrogate: an ensemble for the transfer attack (same inputs).
    baseline: a reference model, evaluated the same way, side by side.
    input_range: `(low, high)` of the data as given (e.g. (0, 255)).
    normalization: `(mean, std)` the model expects, in the data's units.
    num_points: evaluate on the first `num_points` examples.
    name: the model's name in the card.
    data_name: the data's name in the card.

  Returns:
    The card as a dict (what card.json holds).
  """
  from tfp_robust.evaluation import card_report  # pylint: disable=g-import-not-at-top
  settings = (settings or Settings()).check()
  model, name = _model(model, name, 'model')
  low, high = data_lib.check_range(input_range)
  eps = [float(e) for e in (eps if isinstance(eps, (list, tuple, np.ndarray))
                            else [eps])]
  radii = [validate.eps('eps', e / (high - low)) for e in eps]
  x, y = inputs(model, x, y, num_points, input_range)
  others = {}
  for role, other in (('baseline', baseline), ('surrogate', surrogate)):
    if other is not None:
      other, other_name = _model(other, None, role)
      reshape = compatible(other.input_shape, other.num_classes, x.shape[1:],
                           model.num_classes, role, 'the data')
      others[role] = (other, other_name, x.reshape(
          (len(x),) + tuple(other.input_shape)) if reshape else x)
  common = dict(eps=eps, radii=radii, settings=settings, input_range=(low, high),
                normalization=normalization, data_name=data_name)
  surrogate = others.get('surrogate', (None,))[0]
  card = _card(model, x, y, surrogate=surrogate, name=name, **common)
  if 'baseline' in others:
    other, other_name, other_x = others['baseline']
    card['baseline'] = _card(other, other_x, y, surrogate=surrogate,
                             name=other_name if other_name != card['model']
                             else f'{other_name} (baseline)', **common)
  if workdir is not None:
    card_report.write(card, workdir)
  return card


def _model(model, name, role):
  """A model (or a path to one) checked; its name."""
  if isinstance(model, str):
    name = name or model
    model = ensemble_lib.load_any(model)
  if not isinstance(model, ensemble_lib.PosteriorEnsemble):
    validate.fail(role, type(model).__name__, 'it must be a posterior '
                  'ensemble or a path to one', 'Wrap a tf_keras model in '
                  'tr.ensemble.KerasEnsemble (StochasticEnsemble if it '
                  'resamples).')
  return model, name or model.method


def _card(model, x, y, eps, radii, settings, input_range, normalization,
          data_name, surrogate, name):
  """The card of one model on checked inputs in [0, 1]."""
  start = time.time()
  transform = instrumented.affine(model.input_shape, input_range,
                                  normalization)
  wrapped = instrumented.Instrumented(model, transform)
  wrapped_surrogate = (instrumented.Instrumented(surrogate, transform)
                       if surrogate is not None else None)
  chosen = _attack_list(settings, wrapped_surrogate, wrapped)
  logging.info('Card of %s on %d points of %s, eps %s', model, len(x),
               data_name, eps)
  clean, clean_spread = _clean(wrapped, x, y, settings.repeats)
  gradient_checks = checks.gradient_findings(wrapped, x, y)
  robust = []
  for radius, value in zip(radii, eps):
    entry = robust_at(wrapped, x, y, radius, chosen, settings, clean_spread,
                      value)
    entry['eps'] = value
    robust.append(entry)
  return dict(
      model=name, method=model.method,
      num_samples=model.num_samples, resamples=bool(model.resamples),
      input_shape=list(model.input_shape), num_classes=model.num_classes,
      data=dict(name=data_name, num_points=len(x),
                input_range=list(input_range),
                normalization=None if normalization is None else
                [np.asarray(v, float).tolist() for v in normalization]),
      clean_accuracy=clean['accuracy'], clean_spread=clean_spread,
      nll=clean['nll'], ece=clean['ece'], brier=clean['brier'],
      reliability=clean['bins'], robust=robust,
      checks=[dict(dataclasses.asdict(f), eps=None) for f in gradient_checks]
      + [dict(c, eps=r['eps']) for r in robust for c in r['checks']],
      mcmc=_mcmc(model),
      settings=dict(dataclasses.asdict(settings),
                    attack={k: (list(v) if isinstance(v, tuple) else v)
                            for k, v in dict(settings.attack).items()}),
      model_evaluations=wrapped.evaluations,
      wall_seconds=time.time() - start,
      # What made the card: the command line and the code version.
      command=' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
      commit=files.code_version())
