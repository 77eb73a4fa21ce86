"""The expected loss gradient: vectorised against loops, and its forms.

The original code's structure (a call and a tape per image and per sample)
and a Python loop over samples are the baselines of the vectorised
gradient; `expected_gradient_forms` compares the ways of computing it to a
`tf.matmul` peak measured beside each.
"""

import time
from typing import Dict

import tensorflow as tf

from tfp_robust import networks
from tfp_robust.attacks import losses
from tfp_robust.evaluation import gradients
from tfp_robust.experiments.benchmarks.timing import best_time
from tfp_robust.experiments.benchmarks.timing import dense_forward_flops
from tfp_robust.experiments.benchmarks.timing import matmul_gflops
from tfp_robust.experiments.benchmarks.timing import random_ensemble


def looped_expected_gradient(ensemble, x, labels):
  """The original code's structure: per image, per sample, a call and a tape."""
  total = []
  for b in range(x.shape[0]):
    image, label = x[b:b + 1], labels[b:b + 1]
    grad = tf.zeros_like(image)
    for s in range(ensemble.num_samples):
      params = [p[s:s + 1] for p in ensemble.params]
      with tf.GradientTape() as tape:
        tape.watch(image)
        log_probs = networks.log_probs(ensemble.architecture, params, image)
        loss = losses.expected_cross_entropy(log_probs, label)
      grad += tape.gradient(loss, image)
    total.append(grad / ensemble.num_samples)
  return tf.concat(total, 0)


def looped_over_samples_gradient(ensemble, x, labels):
  """A Python loop over samples, each a call and a tape on the whole batch."""
  grad = tf.zeros_like(x)
  for s in range(ensemble.num_samples):
    params = [p[s:s + 1] for p in ensemble.params]
    with tf.GradientTape() as tape:
      tape.watch(x)
      log_probs = networks.log_probs(ensemble.architecture, params, x)
      loss = losses.expected_cross_entropy(log_probs, labels)
    grad += tape.gradient(loss, x)
  return grad / ensemble.num_samples


def expected_gradient_speed(hidden=(1024, 1024), num_samples=100, batch=500,
                            loop_images=5, seed=0) -> Dict[str, float]:
  """Vectorised expected gradient vs a per-image, per-sample loop (MNIST size).

  The loop runs on `loop_images` images and is scaled linearly to `batch`
  (its cost is exactly linear in images: each is a separate call).
  """
  architecture = networks.Architecture.mlp(784, list(hidden), 10)
  ensemble = random_ensemble(architecture, num_samples, seed,
                             memory_budget_bytes=4 << 30)
  x = tf.random.stateless_uniform([batch, 784], [seed, 1])
  labels = tf.random.stateless_uniform([batch], [seed, 2], 0, 10, tf.int32)
  vectorised = best_time(lambda: gradients.loss_and_input_gradient(
      ensemble, x, labels, 'expected')[1].numpy())
  reference = gradients.loss_and_input_gradient(ensemble, x[:loop_images],
                                                labels[:loop_images],
                                                'expected')[1]
  start = time.perf_counter()
  looped = looped_expected_gradient(ensemble, x[:loop_images],
                                    labels[:loop_images])
  loop_seconds = (time.perf_counter() - start) * batch / loop_images
  flops = 2.0 * dense_forward_flops(architecture, batch, num_samples)
  peak = matmul_gflops()
  achieved = flops / vectorised / 1e9
  return {
      'vectorised_seconds': vectorised,
      'loop_seconds_extrapolated': loop_seconds,
      'speedup_vs_loop': loop_seconds / vectorised,
      'achieved_gflops': achieved,
      'matmul_gflops': peak,
      'fraction_of_matmul_peak': achieved / peak,
      'max_abs_difference_vs_loop': float(tf.reduce_max(tf.abs(
          looped - reference))),
  }


def halfmoons_gradient_speed(hidden=128, num_samples=250, batch=100,
                             seed=0) -> Dict[str, float]:
  """Vectorised expected gradient vs a loop over samples, half-moons nets."""
  architecture = networks.Architecture.mlp(2, [hidden, hidden], 2,
                                           'leaky_relu')
  ensemble = random_ensemble(architecture, num_samples, seed)
  x = tf.random.stateless_uniform([batch, 2], [seed, 1])
  labels = tf.random.stateless_uniform([batch], [seed, 2], 0, 2, tf.int32)
  vectorised = best_time(lambda: gradients.loss_and_input_gradient(
      ensemble, x, labels, 'expected')[1].numpy())
  looped = best_time(lambda: looped_over_samples_gradient(
      ensemble, x, labels).numpy(), repeats=1)
  return {'vectorised_seconds': vectorised, 'loop_seconds': looped,
          'speedup_vs_loop': looped / vectorised}


def expected_gradient_forms(hidden=(1024, 1024), num_samples=100, batch=500,
                            seed=0, repeats=3) -> Dict[str, Dict[str, float]]:
  """The expected loss gradient computed three ways, against the matmul peak.

  Forms (each compiled with XLA, the same gradient to float rounding):
  `einsum`, `networks.forward` under one tape (one contraction over the
  sample axis for the shared first layer, batched matmuls after);
  `loop`, a `tf.while_loop` over samples, each a tape over 2-D matmuls
  (the design note's fastest form); `batched`, the input broadcast to every
  sample and batched matmuls throughout; `package`, what attacks call
  (`gradients.loss_and_input_gradient`, which picks the form by shape:
  `networks.sample_loop_pays`). Each form's GFLOP/s is taken as a
  fraction of a `tf.matmul` peak measured right after it, so that load
  from other processes affects both sides of each ratio alike.
  """
  architecture = networks.Architecture.mlp(784, list(hidden), 10)
  ensemble = random_ensemble(architecture, num_samples, seed,
                             memory_budget_bytes=4 << 30)
  params = [tf.convert_to_tensor(p) for p in ensemble.params]
  x = tf.random.stateless_uniform([batch, 784], [seed, 1])
  labels = tf.random.stateless_uniform([batch], [seed, 2], 0, 10, tf.int32)
  one_hot = tf.one_hot(labels, 10)
  activation = networks.ACTIVATIONS[architecture.activation]
  flops = 2.0 * dense_forward_flops(architecture, batch, num_samples)

  @tf.function(jit_compile=True)
  def einsum(x, *params):
    with tf.GradientTape() as tape:
      tape.watch(x)
      log_probs = networks.log_probs(architecture, params, x)
      loss = losses.expected_cross_entropy(log_probs, labels)
    return tape.gradient(loss, x)

  def dense_stack(h, kernels, biases):
    for index, (kernel, bias) in enumerate(zip(kernels, biases)):
      h = tf.matmul(h, kernel) + bias
      if index < len(kernels) - 1:
        h = activation(h)
    return h

  @tf.function(jit_compile=True)
  def loop(x, *params):
    kernels, biases = params[0::2], params[1::2]

    def body(s, total):
      with tf.GradientTape() as tape:
        tape.watch(x)
        logits = dense_stack(x, [tf.gather(k, s) for k in kernels],
                             [tf.gather(b, s) for b in biases])
        loss = -tf.reduce_sum(tf.nn.log_softmax(logits) * one_hot)
      return s + 1, total + tape.gradient(loss, x)

    _, total = tf.while_loop(lambda s, _: s < num_samples, body,
                             (0, tf.zeros_like(x)))
    return total / num_samples

  @tf.function(jit_compile=True)
  def batched(x, *params):
    with tf.GradientTape() as tape:
      tape.watch(x)
      h = tf.broadcast_to(x, [num_samples, batch, 784])
      logits = dense_stack(h, params[0::2],
                           [b[:, None, :] for b in params[1::2]])
      loss = -tf.reduce_sum(tf.nn.log_softmax(logits) * one_hot) / (
          num_samples)
    return tape.gradient(loss, x)

  def package(x, *unused_params):
    return gradients.loss_and_input_gradient(ensemble, x, labels,
                                             'expected')[1]

  reference = einsum(x, *params)
  results = {}
  for name, fn in (('einsum', einsum), ('loop', loop), ('batched', batched),
                   ('package', package)):
    difference = float(tf.reduce_max(tf.abs(fn(x, *params) - reference)))
    seconds = best_time(lambda fn=fn: fn(x, *params).numpy(), repeats)
    peak = matmul_gflops()
    results[name] = {'seconds': seconds,
                     'gflops': flops / seconds / 1e9,
                     'matmul_gflops': peak,
                     'fraction_of_matmul_peak': flops / seconds / 1e9 / peak,
                     'max_abs_difference_vs_einsum': difference}
  return results
