"""Evaluating one posterior ensemble: attack rows and gradient statistics.

Reads ensembles only through their interface; knows no fitting method.
"""

from typing import Dict, List, Optional

import numpy as np

from tfp_robust import attacks
from tfp_robust import gradients
from tfp_robust import protocols


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
