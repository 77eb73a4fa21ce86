"""The original pipeline's evaluation, replayed factor by factor.

Each known mistake of the original code is a switch, named as a mistake, so
that one table can show what each does alone and in combination to the
robustness a posterior appears to have. Read from ginevracoal/robustBNNs
(`adversarialAttacks.py`, `model_bnn.py`) and matthewwicker/deepbayes; the
posterior side of the replay (HMC on 5,000-image batches) is
`original_hmc`. Only the ablation experiment calls these.

Switches:
- `loss`: 'expected' (correct: the paper's Eq. 2 on log-probabilities);
  'double_softmax' (the original BNN forward returns the mean of the
  per-sample softmaxes and `CrossEntropyLoss` applies a softmax to it again);
  'clipped' (a Keras-style cross-entropy on the averaged probabilities
  clipped to [1e-7, 1 - 1e-7]: its gradient is exactly zero wherever the
  predictive gives the label more than 1 - 1e-7, and sign(0) = 0 leaves such
  points unmoved).
- `attack`: 'fgsm'; 'pgd' (correct: 15 steps of 2.5 eps / 15 from a random
  start, projected every step); 'pgd_original' (the original code: 40 steps
  of 2 / max(x) = 2, i.e. twice the pixel range, no random start, projected
  every step, so every iterate is a corner x0 + eps sign(grad));
  'pgd_unprojected' (a relative's variant: steps of the pixel range, only
  the final point projected).
- `other_samples`: attack one half of the posterior samples, evaluate on the
  other half (the original draws fresh samples for each call).
"""

import itertools
from typing import Dict, List, Sequence

import tensorflow as tf

from tfp_robust.attacks import gradient as attacks
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.evaluation import gradients
from tfp_robust.attacks import losses
from tfp_robust.evaluation import metrics

KERAS_EPSILON = 1e-7


def double_softmax_loss(log_probs, labels):
  """Cross-entropy with a softmax applied to the predictive probabilities."""
  probabilities = tf.exp(ensemble_lib.predictive_from_log_probs(log_probs))
  return -losses._log_prob_of_label(  # pylint: disable=protected-access
      tf.nn.log_softmax(probabilities), labels)


def clipped_probability_loss(log_probs, labels):
  """Keras' sparse cross-entropy on clipped averaged probabilities."""
  probabilities = tf.exp(ensemble_lib.predictive_from_log_probs(log_probs))
  clipped = tf.clip_by_value(probabilities, KERAS_EPSILON, 1 - KERAS_EPSILON)
  return -losses._log_prob_of_label(  # pylint: disable=protected-access
      tf.math.log(clipped), labels)


LOSSES = {
    'expected': 'expected',
    'double_softmax': double_softmax_loss,
    'clipped': clipped_probability_loss,
}


def unprojected_pgd(ensemble, x, labels, eps, num_steps=15, step_size=1.0,
                    loss='expected'):
  """PGD with a pixel-range step and projection only at the end."""
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  x_adv = x
  for _ in range(num_steps):
    _, gradient = gradients.loss_and_input_gradient(ensemble, x_adv, labels,
                                                    loss)
    x_adv = tf.clip_by_value(x_adv + step_size * tf.sign(gradient), 0.0, 1.0)
  return attacks.project(x_adv, x, eps)


def run_attack(name, ensemble, x, labels, eps, loss, pgd_steps=15, seed=0):
  """One attack of the replay table (see the module docstring)."""
  if name == 'fgsm':
    return attacks.fgsm(ensemble, x, labels, eps, loss=loss)
  if name == 'pgd':
    return attacks.pgd(ensemble, x, labels, eps, num_steps=pgd_steps,
                       loss=loss, seed=seed)
  if name == 'pgd_original':
    return attacks.pgd(ensemble, x, labels, eps, num_steps=40,
                       step_size=2.0, random_start=False, loss=loss)
  if name == 'pgd_unprojected':
    return unprojected_pgd(ensemble, x, labels, eps, pgd_steps, loss=loss)
  raise ValueError(f'Unknown replay attack {name!r}; choose one of '
                   f'{ATTACKS}.')


ATTACKS = ('fgsm', 'pgd', 'pgd_original', 'pgd_unprojected')


def split_ensemble(ensemble):
  """Two disjoint halves of the samples: (first half, second half)."""
  half = ensemble.num_samples // 2
  if half < 1:
    raise ValueError('Mismatched samples need an ensemble of at least two.')
  return ensemble.samples(0, half), ensemble.samples(half, 2 * half)


def zero_gradient_fraction(ensemble, x, labels, loss) -> float:
  """Fraction of inputs whose attack-loss gradient is exactly zero."""
  _, gradient = gradients.loss_and_input_gradient(ensemble, x, labels,
                                                  LOSSES[loss])
  flat = tf.reshape(gradient, [gradient.shape[0], -1])
  return float(tf.reduce_mean(tf.cast(
      tf.reduce_max(tf.abs(flat), -1) == 0.0, tf.float32)))


def replay_rows(ensemble, x, labels, eps: float,
                attacks_: Sequence[str] = ATTACKS,
                losses_: Sequence[str] = tuple(LOSSES),
                pgd_steps: int = 15, seed: int = 0) -> List[Dict]:
  """Every combination of the evaluation switches on one posterior.

  All rows are evaluated on the second half of the samples; with
  `other_samples` the attack uses the first half instead, so the two
  settings differ only in which samples the attack saw.

  Returns:
    Rows with the switches, adversarial accuracy, the fraction of inputs
    with an exactly-zero attack gradient, and the paper's softmax
    robustness.
  """
  attacked, evaluated = split_ensemble(ensemble)
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  zero = {loss: zero_gradient_fraction(evaluated, x, labels, loss)
          for loss in losses_}
  rows = []
  for attack, loss, other in itertools.product(attacks_, losses_,
                                               (False, True)):
    source = attacked if other else evaluated
    x_adv = run_attack(attack, source, x, labels, eps, LOSSES[loss],
                       pgd_steps, seed)
    result = metrics.robustness(evaluated, x, labels, x_adv)
    rows.append({
        'attack': attack, 'loss': loss, 'other_samples': other, 'eps': eps,
        'samples_evaluated': evaluated.num_samples,
        'mistakes': sum([attack in ('pgd_original', 'pgd_unprojected'),
                         loss != 'expected', other]),
        'clean_accuracy': result['clean_accuracy'],
        'adversarial_accuracy': result['adversarial_accuracy'],
        'zero_gradient_fraction': zero[loss],
        'softmax_robustness': result['softmax_robustness']})
  return rows


def ablation_rows(ensemble, x, labels, eps: float,
                  pgd_steps: int = 15) -> List[Dict]:
  """The replay table, with a `protocol` column naming each combination."""
  rows = replay_rows(ensemble, x, labels, eps, pgd_steps=pgd_steps)
  for row in rows:
    row['protocol'] = ', '.join(
        [row['attack'], f"loss {row['loss']}"] +
        (['attack other samples'] if row['other_samples'] else []))
  return rows

