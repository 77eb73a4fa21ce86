"""Speed and memory measurements, each a ratio taken within one run.

Absolute seconds depend on the machine and on what else runs on it; ratios
of two measurements taken side by side in one process do much less, so the
targets are stated as ratios (see `binaries/benchmark.py`).
"""

import json
import os
import subprocess
import sys
import time
from typing import Callable, Dict

import numpy as np
import tensorflow as tf

from tfp_robust import ensemble as ensemble_lib
from tfp_robust.evaluation import gradients
from tfp_robust.fit import hmc
from tfp_robust.attacks import losses
from tfp_robust import networks


def best_time(fn: Callable, repeats: int = 3) -> float:
  """Best wall time of `fn()` over `repeats` runs, after one warm-up run."""
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def matmul_gflops(m: int = 4096, k: int = 1024, n: int = 1024,
                  repeats: int = 5) -> float:
  """GFLOP/s of one compiled float32 `tf.matmul` of `[m, k] x [k, n]`."""
  a = tf.random.stateless_normal([m, k], [1, 2])
  b = tf.random.stateless_normal([k, n], [3, 4])
  fn = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)),
                   jit_compile=True)
  seconds = best_time(lambda: fn(a, b).numpy(), repeats)
  return 2.0 * m * k * n / seconds / 1e9


def random_ensemble(architecture, num_samples, seed=0, **kwargs):
  params = []
  for index, (_, shape) in enumerate(architecture.param_shapes()):
    fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    params.append(tf.random.stateless_normal(
        (num_samples,) + shape, [seed, index],
        stddev=np.sqrt(2.0 / fan_in) if len(shape) > 1 else 0.01))
  return ensemble_lib.ArchitectureEnsemble(architecture, params, **kwargs)


def dense_forward_flops(architecture, batch, num_samples) -> float:
  return 2.0 * batch * num_samples * sum(
      int(np.prod(shape)) for name, shape in architecture.param_shapes()
      if name.endswith('kernel'))


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


def hmc_leapfrog_cost(x, y, hidden=(512,), num_chains=1, num_leapfrog_steps=10,
                      seed=0, num_classes=10, activation='relu',
                      repeats=3) -> Dict[str, float]:
  """Seconds per HMC leapfrog step vs one forward+backward pass, full batch."""
  architecture = networks.Architecture.mlp(x.shape[1], list(hidden),
                                           num_classes, activation)
  target = hmc.network_log_joint(architecture, x, y)
  state = hmc.initial_network_state(architecture, num_chains,
                                    tf.constant([seed, 0]))

  @tf.function(jit_compile=True)
  def value_and_gradient(state):
    with tf.GradientTape() as tape:
      tape.watch(state)
      value = target(*state)
    return value, tape.gradient(value, state)

  import tensorflow_probability as tfp
  kernel = tfp.mcmc.HamiltonianMonteCarlo(target, 1e-4, num_leapfrog_steps)

  @tf.function(jit_compile=True)
  def one_step(state, results, seed):
    return kernel.one_step(state, results, seed=seed)

  results = kernel.bootstrap_results(state)
  gradient_seconds = best_time(
      lambda: [t.numpy() for t in value_and_gradient(state)[1]], repeats)
  step_seconds = best_time(lambda: one_step(
      state, results, tf.constant([seed, 1]))[0][0].numpy(), repeats)
  per_leapfrog = step_seconds / num_leapfrog_steps
  # Forward and backward to the weights: about three times the forward's
  # matmul FLOPs (the first layer's input gradient is not needed but XLA
  # may not skip all of it; counted as 3x, the usual estimate).
  gradient_flops = 3.0 * dense_forward_flops(architecture, int(x.shape[0]),
                                             num_chains)
  peak = matmul_gflops()
  return {'forward_backward_seconds': gradient_seconds,
          'gradient_gflops': gradient_flops / gradient_seconds / 1e9,
          'matmul_gflops': peak,
          'gradient_fraction_of_matmul_peak': (
              gradient_flops / gradient_seconds / 1e9 / peak),
          'hmc_step_seconds': step_seconds,
          'leapfrog_seconds': per_leapfrog,
          'leapfrog_over_forward_backward': per_leapfrog / gradient_seconds,
          'num_train': int(x.shape[0]), 'num_chains': num_chains}


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


def pgd_step_overhead(hidden=(32, 32), num_samples=100, batch=100,
                      num_steps=100, seed=0) -> Dict[str, float]:
  """PGD's per-step overhead: a Python-level call per step vs one loop.

  On a net small enough that the arithmetic is negligible (half-moons
  sized), the whole attack is timed with the iteration loop compiled into
  one `tf.while_loop` and with one compiled step per Python call
  (`compiled=False`); the difference per step is what a Python-level step
  costs. The adversarial examples agree (the same seed, the same steps).
  """
  from tfp_robust.attacks import gradient as attacks  # pylint: disable=g-import-not-at-top
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



def projected_costs(config, dataset, fraction_for_epochs: float = 0.1):
  """Measured unit costs of a config's fits, and projected wall times.

  HMC: seconds per leapfrog step on the full training set with the config's
  net and chains, times the leapfrog steps of warm-up and sampling.
  VI / SGD: seconds for one epoch on `fraction_for_epochs` of the training
  set, scaled to the full set, times epochs (and members for ensembles).

  Args:
    config: an experiment config (e.g. `configs/table1.py:paper`).
    dataset: the full `Dataset` (flat); conv nets get the image layout.
    fraction_for_epochs: share of the training set one timed epoch uses.

  Returns:
    A dict per method with the unit cost and the projected hours.
  """
  from tfp_robust.fit import models
  from tfp_robust.fit import fitting
  from tfp_robust.fit import vi
  results = {}
  for method in config.methods:
    section = fitting.method_section(config, method)
    is_conv = bool(section.get('layers', None))
    x = dataset.x_train.reshape((-1, 28, 28, 1)) if is_conv else dataset.x_train
    architecture = fitting.architecture_from_config(section, x.shape[1:], 10)
    if method == 'hmc':
      settings = fitting.hmc_config(section, 0)
      # Two leapfrog steps per timed proposal: the cost per step is what is
      # projected, and paper-scale steps take seconds each.
      cost = hmc_leapfrog_cost(x, dataset.y_train, hidden=tuple(section.hidden),
                               num_chains=settings.num_chains,
                               num_leapfrog_steps=2, repeats=1)
      steps = settings.num_leapfrog_steps * (
          settings.num_burnin_steps + settings.num_results * settings.thinning)
      results[method] = dict(cost, leapfrog_steps=steps,
                             projected_hours=cost['leapfrog_seconds'] * steps /
                             3600)
      continue
    count = max(1, int(len(x) * fraction_for_epochs))
    train = fitting._train_config(section, 0)
    train.epochs = 1
    start = time.perf_counter()
    if method == 'vi':
      vi.train(architecture, x[:count], dataset.y_train[:count], train)
    else:
      models.train_deterministic(architecture, x[:count],
                                 dataset.y_train[:count], train)
    epoch_seconds = (time.perf_counter() - start) * len(x) / count
    fits = int(config.ensemble.num_members) if method == 'ensemble' else 1
    results[method] = dict(
        epoch_seconds=epoch_seconds, epochs=int(section.epochs),
        members=fits,
        projected_hours=epoch_seconds * int(section.epochs) * fits / 3600)
  return results


def halfmoons_grid_projection(config) -> Dict[str, float]:
  """Projected wall time of a Figure 1 grid from measured leapfrog costs.

  The leapfrog cost is measured once per width on the largest training set
  and scaled linearly to the smaller ones (the log-joint is a sum over
  points).
  """
  from tfp_robust import data
  largest = max(config.num_train)
  moons = data.half_moons(largest, 10, config.noise, seed=0)
  chains = int(config.hmc.num_chains)
  leapfrogs = int(config.hmc.num_leapfrog_steps)
  per_width = {}
  total_seconds = 0.0
  for width in config.hidden:
    cost = hmc_leapfrog_cost(moons.x_train, moons.y_train,
                             hidden=(width,) * int(config.num_layers),
                             num_chains=chains, num_leapfrog_steps=2,
                             num_classes=2, activation=config.activation,
                             repeats=1)
    per_width[f'leapfrog_seconds_hidden{width}_train{largest}'] = (
        cost['leapfrog_seconds'])
    for num_train in config.num_train:
      for warmup in config.warmup:
        steps = leapfrogs * (warmup + int(config.hmc.num_results) *
                             int(config.hmc.thinning))
        total_seconds += cost['leapfrog_seconds'] * steps * num_train / largest
  return dict(per_width, projected_hours=total_seconds / 3600)


def hmc_step_size_batching(num_cells: int = 4, num_train: int = 5000,
                           hidden=(32,), activation: str = 'relu',
                           num_chains: int = 2, num_leapfrog_steps: int = 5,
                           num_results: int = 10, num_segments: int = 2,
                           repeats: int = 2, seed: int = 0
                           ) -> Dict[str, float]:
  """K HMC cells that differ only in step size: batched against one by one.

  One MNIST-shaped problem (random pixels and labels: the cost does not
  depend on the values), K cells with step sizes 0.005, 0.001, ... and
  seeds `seed + k`, each sampled for `num_segments` calls of `num_results`
  iterations (the grid's segments), four ways:

  - `one_after_another`: as the grid runner trains cells, a fresh compiled
    chain of the driver's plain sampler per cell;
  - `one_compiled_chain`: one compiled driver chain reused by every cell
    (its step size is an argument of the compiled call);
  - `batched`: `mcmc.batched.fixed_step_chain`, the K * C chains in one
    compiled call, the target evaluated cell by cell (each cell bit for bit
    its lone run);
  - `batched_stacked`: the same with one target call on all K * C chains
    (equal to float rounding).

  The first pass of each (compilation included) runs once, in that order;
  then `repeats` passes of the compiled calls run interleaved, and their
  medians are the steady times.

  Returns:
    Seconds per way (`*_first_seconds`, `*_seconds`), `ratio`: one after
    another over batched, both compiled (above 1: batching samples faster),
    `ratio_with_compile`: the same for the first passes, the stacked and
    compiled-once ratios likewise, `max_abs_difference` between each
    batched cell's samples and its lone run's (0.0: bit for bit), and the
    shapes.
  """
  from tfp_robust.fit.mcmc import batched
  from tfp_robust.fit.mcmc import driver
  num_cells = int(num_cells)
  all_step_sizes = (0.005, 0.001, 0.0005, 0.0001, 0.00005, 0.00001)
  if not 1 <= num_cells <= len(all_step_sizes):
    raise ValueError(f'num_cells={num_cells} is invalid: it must be in [1, '
                     f'{len(all_step_sizes)}]. Use e.g. 4 (the paper\'s step '
                     'sizes per grid row).')
  step_sizes = all_step_sizes[:num_cells]
  rng = np.random.default_rng(seed)
  x = rng.uniform(size=(int(num_train), 784)).astype(np.float32)
  y = rng.integers(0, 10, size=int(num_train))
  architecture = networks.Architecture.mlp(784, list(hidden), 10, activation)
  target = hmc.network_log_joint(architecture, x, y)
  seeds = [seed + k for k in range(num_cells)]
  starts = [hmc.initial_network_state(architecture, num_chains,
                                      driver.phase_seed(s, 1 << 20))
            for s in seeds]
  config = hmc.HMCConfig(num_results=num_results, num_burnin_steps=0,
                         num_leapfrog_steps=num_leapfrog_steps,
                         num_chains=num_chains, seed=seed)

  def sample_one_by_one(chains):
    samples = []
    for k, (step_size, cell_seed) in enumerate(zip(step_sizes, seeds)):
      state = starts[k]
      for segment in range(num_segments):
        out = chains[k](state, tf.constant(step_size, tf.float32),
                        num_results, driver.phase_seed(cell_seed,
                                                       segment + 1))[0]
        state = [s[-1] for s in out]
      samples.append([s.numpy() for s in out])
    return samples

  def sample_batched(run):
    state = [tf.concat(parts, 0) for parts in zip(*starts)]
    for segment in range(num_segments):
      out = run(state, tf.constant(step_sizes, tf.float32), tf.stack(
          [driver.phase_seed(s, segment + 1) for s in seeds]))[0]
      state = [s[-1] for s in out]
    return [s.numpy() for s in out]

  # Each way's compiled calls are built here and compiled by its first pass.
  plain_chain = driver.fixed_step_chain
  fresh = [plain_chain(target, config) for _ in step_sizes]
  shared = plain_chain(target, config)
  cellwise = batched.fixed_step_chain(target, num_cells, num_chains,
                                      num_leapfrog_steps, num_results)
  stacked = batched.fixed_step_chain(target, num_cells, num_chains,
                                     num_leapfrog_steps, num_results,
                                     per_cell_target=False)
  ways = {
      'one_after_another': lambda: sample_one_by_one(fresh),
      'one_compiled_chain': lambda: sample_one_by_one([shared] * num_cells),
      'batched': lambda: sample_batched(cellwise),
      'batched_stacked': lambda: sample_batched(stacked),
  }
  first, outputs = {}, {}
  for name, fn in ways.items():
    start = time.perf_counter()
    outputs[name] = fn()
    first[name] = time.perf_counter() - start
  steady = {name: [] for name in ways}
  for _ in range(int(repeats)):
    for name, fn in ways.items():
      start = time.perf_counter()
      fn()
      steady[name].append(time.perf_counter() - start)
  seconds = {name: float(np.median(times)) for name, times in steady.items()}
  lone = outputs['one_after_another']

  def difference(name):
    return max(float(np.max(np.abs(
        outputs[name][p][:, k * num_chains:(k + 1) * num_chains] -
        lone[k][p]))) for k in range(num_cells) for p in range(len(lone[k])))

  result = {f'{name}_first_seconds': value for name, value in first.items()}
  result.update({f'{name}_seconds': value for name, value in seconds.items()})
  result.update(
      ratio=seconds['one_after_another'] / seconds['batched'],
      ratio_with_compile=(first['one_after_another'] / first['batched']),
      ratio_stacked=seconds['one_after_another'] / seconds['batched_stacked'],
      ratio_stacked_with_compile=(first['one_after_another'] /
                                  first['batched_stacked']),
      compiled_once_over_batched_with_compile=(
          first['one_compiled_chain'] / first['batched']),
      max_abs_difference=difference('batched'),
      max_abs_difference_stacked=difference('batched_stacked'),
      num_cells=num_cells, num_train=int(num_train), num_chains=num_chains,
      num_leapfrog_steps=num_leapfrog_steps,
      iterations_per_cell=num_results * num_segments)
  return result
