"""PGD's speed and memory: its compiled loop, a repeated call, its peak memory.

- `pgd_step_overhead`: the compiled iteration loop against a Python-level
  call per step.
- `pgd_repeated_call`: a second call of the same shapes (the compiled loop
  cached on the ensemble) against another library's eager PGD on half
  moons.
- `pgd_peak_memory`: the resident memory PGD adds, against the budget.
"""

import json
import os
import subprocess
import sys
import time
from typing import Dict

import numpy as np
import tensorflow as tf
import tf_keras

from tfp_robust import ensemble as ensemble_lib
from tfp_robust import networks
from tfp_robust.attacks import gradient as attacks
from tfp_robust.experiments.benchmarks.timing import best_time
from tfp_robust.experiments.benchmarks.timing import random_ensemble


def pgd_step_overhead(hidden=(32, 32), num_samples=100, batch=100,
                      num_steps=100, seed=0) -> Dict[str, float]:
  """PGD's per-step overhead: a Python-level call per step vs one loop.

  On a net small enough that the arithmetic is negligible (half-moons
  sized), the whole attack is timed with the iteration loop compiled into
  one `tf.while_loop` and with one compiled step per Python call
  (`compiled=False`); the difference per step is what a Python-level step
  costs. The adversarial examples agree (the same seed, the same steps).
  """
  architecture = networks.Architecture.mlp(2, list(hidden), 2)
  ensemble = random_ensemble(architecture, num_samples, seed)
  x = tf.random.stateless_uniform([batch, 2], [seed, 1])
  labels = tf.random.stateless_uniform([batch], [seed, 2], 0, 2, tf.int32)

  def attack(compiled):
    return attacks.pgd(ensemble, x, labels, 0.1, num_steps=num_steps,
                       loss='predictive', compiled=compiled).numpy()

  looped = best_time(lambda: attack(True))
  stepwise = best_time(lambda: attack(False))
  return {
      'num_steps': num_steps,
      'compiled_loop_seconds': looped,
      'python_steps_seconds': stepwise,
      'compiled_loop_ms_per_step': 1e3 * looped / num_steps,
      'python_steps_ms_per_step': 1e3 * stepwise / num_steps,
      'overhead_ms_per_step_removed': 1e3 * (stepwise - looped) / num_steps,
      'max_abs_difference': float(np.max(np.abs(attack(True) -
                                                attack(False)))),
  }


def pgd_peak_memory(budget_bytes: int, hidden=(1024, 1024), num_samples=250,
                    batch=500, num_steps=2) -> Dict[str, float]:
  """Peak resident memory of PGD in a fresh process, against the budget.

  `attack_increase_bytes` is the peak resident memory during the attack
  (compilation included) minus the resident memory just before it, once the
  weights exist (Linux: the peak is reset through /proc/self/clear_refs).
  The budget counts activations and one copy of a chunk's weights (XLA's
  layout copy inside a compiled call, or the slice of several chunks), so
  the increase should stay within the budget; `within_budget` says whether
  it did. The stored weights and the runtime are the fixed cost before.
  """
  script = f'''
import json, tensorflow as tf
from tfp_robust.attacks import gradient as attacks
from tfp_robust.experiments import benchmarks
from tfp_robust import networks

def status(field):
  with open('/proc/self/status') as f:
    line = next(l for l in f if l.startswith(field + ':'))
  return int(line.split()[1]) * 1024

arch = networks.Architecture.mlp(784, {list(hidden)}, 10)
e = benchmarks.random_ensemble(arch, {num_samples},
                               memory_budget_bytes={int(budget_bytes)})
x = tf.random.stateless_uniform([{batch}, 784], [0, 1])
y = tf.random.stateless_uniform([{batch}], [0, 2], 0, 10, tf.int32)
# Reset the peak (VmHWM) so that it measures the attack alone.
with open('/proc/self/clear_refs', 'w') as f:
  f.write('5')
before = status('VmRSS')
attacks.pgd(e, x, y, 0.1, num_steps={num_steps}, loss='predictive')
after = status('VmHWM')
print(json.dumps(dict(before=before, after=after,
                      chunk=e.sample_chunk_size({batch}))))
'''
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  output = subprocess.run([sys.executable, '-c', script], env=env, check=True,
                          capture_output=True, text=True).stdout
  values = json.loads(output.strip().splitlines()[-1])
  weights = 4 * num_samples * networks.Architecture.mlp(
      784, list(hidden), 10).num_params()
  return {'budget_bytes': int(budget_bytes),
          'samples_per_chunk': values['chunk'],
          'weights_bytes': weights,
          'peak_rss_bytes': values['after'],
          'rss_before_attack_bytes': values['before'],
          'attack_increase_bytes': values['after'] - values['before'],
          'within_budget': values['after'] - values['before'] <= budget_bytes}


def keras_predictive_model(ensemble) -> tf_keras.Model:
  """An architecture ensemble of MLPs as one `tf_keras` model of its predictive.

  Per sample, the net's `Dense` layers holding that sample's weights; the
  output is the log of the mean softmax, so that a softmax cross-entropy
  on it (what other libraries' attacks take from a model's logits) is the
  ensemble's `predictive` loss.
  """
  architecture = ensemble.architecture
  names = [name for name, _ in architecture.param_shapes()]
  dense = all(layer['kind'] == 'dense' for layer in architecture.hidden)
  if not dense or len(names) % 2 or not all(
      k.endswith('kernel') and b.endswith('bias')
      for k, b in zip(names[0::2], names[1::2])):
    raise ValueError('keras_predictive_model takes an MLP (dense layers '
                     f'only); this architecture has weights {names}.')
  activation = networks.ACTIVATIONS[architecture.activation]
  inputs = tf_keras.Input(architecture.input_shape)
  outputs = []
  for sample in range(ensemble.num_samples):
    h = inputs
    pairs = list(zip(ensemble.params[0::2], ensemble.params[1::2]))
    for index, (kernel, bias) in enumerate(pairs):
      layer = tf_keras.layers.Dense(int(kernel.shape[-1]))
      h = layer(h)
      layer.set_weights([kernel[sample].numpy(), bias[sample].numpy()])
      if index < len(pairs) - 1:
        h = tf_keras.layers.Activation(activation)(h)
    outputs.append(h)
  log_count = float(np.log(ensemble.num_samples))
  predictive = tf_keras.layers.Lambda(lambda logits: tf.reduce_logsumexp(
      tf.stack([tf.nn.log_softmax(l) for l in logits]), 0) - log_count)(
          outputs)
  return tf_keras.Model(inputs, predictive)


def eager_pgd(model, x, labels, eps, step_size, num_steps):
  """Madry et al.'s PGD from `x`, one eager tape per step (no tf.function)."""
  x_adv = x
  for _ in range(int(num_steps)):
    with tf.GradientTape() as tape:
      tape.watch(x_adv)
      loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels,
                                                            model(x_adv))
    x_adv = tf.clip_by_value(tf.clip_by_value(
        x_adv + step_size * tf.sign(tape.gradient(loss, x_adv)), x - eps,
        x + eps), 0.0, 1.0)
  return x_adv


def reference_pgd(use_cleverhans: bool = True):
  """`(name, pgd(model, x, labels, eps, step_size, num_steps))`: cleverhans'
  eager PGD when it is installed (the `benchmark` extra), else `eager_pgd`.
  """
  if use_cleverhans:
    try:
      from cleverhans.tf2.attacks import projected_gradient_descent as ch  # pylint: disable=g-import-not-at-top
    except ImportError:
      pass
    else:
      def cleverhans_pgd(model, x, labels, eps, step_size, num_steps):
        return ch.projected_gradient_descent(
            model, x, eps, step_size, int(num_steps), np.inf, clip_min=0.0,
            clip_max=1.0, y=labels, rand_init=False, sanity_checks=False)
      return 'cleverhans', cleverhans_pgd
  return 'eager_tape', eager_pgd


def _seconds(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def pgd_repeated_call(num_points: int = 400, hidden=(32, 32),
                      num_samples: int = 10, num_steps: int = 20,
                      eps: float = 0.1, repeats: int = 3, seed: int = 0,
                      use_cleverhans: bool = True) -> Dict[str, object]:
  """A repeated PGD call against another library's eager PGD, on half moons.

  `num_points` half-moons test points and a random MLP ensemble
  (`num_samples` weight samples, leaky ReLU): our `pgd` (predictive loss,
  no random start) is called once (tracing and compiling its loop), then
  `repeats` more times with the same shapes and settings (the loop cached
  on the ensemble: no trace); then once on a new ensemble object holding
  the same weights (a new cache: traced and compiled again). The reference,
  cleverhans' `projected_gradient_descent` (or `eager_pgd` without
  cleverhans), attacks `keras_predictive_model` of the same ensemble, whose
  softmax cross-entropy is our predictive loss, with the same eps, step
  size and steps, so both give the same points up to float rounding.

  Returns:
    `first_seconds`, `repeat_seconds` (the best repeated call),
    `new_ensemble_seconds`, `reference_first_seconds` and
    `reference_seconds` (best after the first), `repeat_speedup` (reference
    over repeated call; above 1: ours faster), `first_over_reference`,
    `traces_first_call` and `traces_on_repeat` of our compiled loop,
    `max_abs_difference` and `share_equal` (coordinates within 1e-5) between
    the two attacks' points, the reference's name and the settings.
  """
  from tfp_robust import data  # pylint: disable=g-import-not-at-top
  moons = data.half_moons(num_train=10, num_test=int(num_points), seed=seed)
  x = tf.constant(moons.x_test, tf.float32)
  labels = tf.constant(moons.y_test, tf.int32)
  architecture = networks.Architecture.mlp(2, list(hidden), 2, 'leaky_relu')
  ensemble = random_ensemble(architecture, int(num_samples), seed)
  step_size = 2.5 * eps / num_steps

  def ours(target):
    return attacks.pgd(target, x, labels, eps, num_steps=num_steps,
                       step_size=step_size, random_start=False,
                       loss='predictive').numpy()

  loop = attacks.pgd_loop(ensemble, 'predictive', num_steps)
  first = _seconds(lambda: ours(ensemble))
  traced = loop.experimental_get_tracing_count()
  repeat = min(_seconds(lambda: ours(ensemble)) for _ in range(repeats))
  traces_on_repeat = loop.experimental_get_tracing_count() - traced
  again = ensemble_lib.ArchitectureEnsemble(architecture, ensemble.params)
  new_ensemble = _seconds(lambda: ours(again))
  name, reference = reference_pgd(use_cleverhans)
  model = keras_predictive_model(ensemble)

  def theirs():
    return reference(model, x, labels, eps, step_size, num_steps).numpy()

  reference_first = _seconds(theirs)
  reference_seconds = min(_seconds(theirs) for _ in range(repeats))
  difference = np.abs(ours(ensemble) - theirs())
  return {
      'reference': name, 'num_points': int(num_points),
      'num_samples': int(num_samples), 'hidden': list(hidden),
      'num_steps': int(num_steps), 'eps': float(eps),
      'first_seconds': first, 'repeat_seconds': repeat,
      'new_ensemble_seconds': new_ensemble,
      'reference_first_seconds': reference_first,
      'reference_seconds': reference_seconds,
      'repeat_speedup': reference_seconds / repeat,
      'first_over_reference': first / reference_seconds,
      'traces_first_call': int(traced),
      'traces_on_repeat': int(traces_on_repeat),
      'max_abs_difference': float(difference.max()),
      'share_equal': float(np.mean(difference <= 1e-5)),
  }
