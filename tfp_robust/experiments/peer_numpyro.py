"""The peer of `experiments.peer`: NumPyro's NUTS on our network target.

The target is `fit.hmc.network_log_joint` written as a NumPyro model: one
`Normal(0, prior_scale)` site per weight tensor of the architecture (in
`param_shapes()` order) and a `Categorical(logits=net(x))` likelihood of
all training labels, full batch. No site is constrained, so NumPyro samples
the weights as they are and its potential energy is minus our log-joint
(`same_target` checks it, against ours and float64, before anything
samples).

JAX and NumPyro are optional (the `benchmark` extra): they are imported
only inside these functions, and `require` says how to install them.
"""

import os
import time
from typing import Dict, List, Sequence

import numpy as np

from tfp_robust.core import validate

INSTALL = 'pip install -e ".[benchmark]"'
# The JAX events whose durations add up to compile time (trace, lower to
# MLIR, XLA compile); recorded by `jax.monitoring`.
_COMPILE_EVENTS = ('/jax/core/compile/jaxpr_trace_duration',
                   '/jax/core/compile/jaxpr_to_mlir_module_duration',
                   '/jax/core/compile/backend_compile_duration')


def require():
  """`(jax, numpyro)`, or an ImportError naming the `benchmark` extra.
  JAX runs on the CPU (`JAX_PLATFORMS`, unless set)."""
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  try:
    import jax  # pylint: disable=g-import-not-at-top
    import numpyro  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ImportError(
        f'The comparison with NumPyro needs JAX and NumPyro ({error}). '
        f'Install the benchmark extra: {INSTALL} (jax[cpu] and numpyro).'
    ) from None
  return jax, numpyro


def check_architecture(architecture) -> None:
  """The JAX side ports dense nets only (the comparison's target is one)."""
  kinds = [layer.get('kind') for layer in architecture.hidden]
  if any(kind != 'dense' for kind in kinds):
    validate.fail('hmc.layers', kinds, 'the NumPyro side of the comparison '
                  'ports dense nets only',
                  "Use a dense net: --config.hmc.hidden='(128,)' and "
                  '--config.hmc.layers=().')


def site_names(architecture) -> List[str]:
  """One NumPyro site per weight tensor, named in `param_shapes()` order."""
  return [f'p{index}_' + name.replace('/', '_').replace(':', '_')
          for index, (name, _) in enumerate(architecture.param_shapes())]


def _activation(name):
  import jax  # pylint: disable=g-import-not-at-top
  return {'relu': jax.nn.relu,
          'leaky_relu': lambda h: jax.nn.leaky_relu(h, 0.2),  # As networks'.
          'tanh': jax.numpy.tanh, 'sigmoid': jax.nn.sigmoid}[name]


def logits(architecture, params: Sequence, x):
  """The net's logits `[N, classes]` for one weight sample, in JAX."""
  activation = _activation(architecture.activation)
  h = x.reshape(x.shape[0], -1)
  last = len(params) // 2 - 1
  for layer in range(last + 1):
    h = h @ params[2 * layer] + params[2 * layer + 1]
    if layer < last:
      h = activation(h)
  return h


def model(architecture, prior_scale: float):
  """The target as a NumPyro model `model(x, y)`."""
  require()
  import numpyro  # pylint: disable=g-import-not-at-top
  import numpyro.distributions as dist  # pylint: disable=g-import-not-at-top
  check_architecture(architecture)
  names = site_names(architecture)
  shapes = [shape for _, shape in architecture.param_shapes()]

  def network_model(x, y):
    params = [numpyro.sample(name, dist.Normal(0.0, float(prior_scale))
                             .expand(shape).to_event(len(shape)))
              for name, shape in zip(names, shapes)]
    numpyro.sample('y', dist.Categorical(logits=logits(architecture, params,
                                                       x)), obs=y)

  return network_model


def as_sites(architecture, params: Sequence[np.ndarray]) -> Dict:
  """Weights in our order (any leading axes) as NumPyro's site dict."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return {name: jnp.asarray(np.asarray(p, np.float32))
          for name, p in zip(site_names(architecture), params)}


def _data(x, y):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return jnp.asarray(np.asarray(x, np.float32)), jnp.asarray(
      np.asarray(y, np.int32))


def value_and_gradient(architecture, prior_scale: float, x, y):
  """A compiled `f(sites) -> (log-joint [C], gradients {site: [C, ...]})`
  over chains: minus NumPyro's potential energy, the function its NUTS
  differentiates, and its gradient."""
  jax, _ = require()
  from numpyro.infer import util  # pylint: disable=g-import-not-at-top
  network_model = model(architecture, prior_scale)
  x, y = _data(x, y)

  def log_joint(sites):
    return -util.potential_energy(network_model, (x, y), {}, sites)

  return jax.jit(jax.vmap(jax.value_and_grad(log_joint)))


class _CompileClock:
  """Seconds JAX spends tracing, lowering and compiling, while open."""

  def __init__(self):
    self.seconds = 0.0

  def __call__(self, event, duration_secs, **unused):
    if event in _COMPILE_EVENTS:
      self.seconds += float(duration_secs)

  def __enter__(self):
    jax, _ = require()
    jax.monitoring.register_event_duration_secs_listener(self)
    return self

  def __exit__(self, *unused):
    import jax  # pylint: disable=g-import-not-at-top
    jax.monitoring.unregister_event_duration_listener(self)


def sample(architecture, x, y, start: Sequence[np.ndarray], settings) -> Dict:
  """NumPyro's NUTS (diagonal mass matrix) from `start`, warm-up then kept.

  Args:
    architecture: the network (dense).
    x: training inputs `[N, ...]`; y: labels `[N]`.
    start: weights `[C, ...]` in `param_shapes()` order, one start per chain.
    settings: the `hmc` config section (`num_chains`, `num_burnin_steps`,
      `num_results`, `max_tree_depth`, `target_accept_prob`, `step_size`,
      `prior_scale`) plus `seed` and `chain_method`.

  Returns:
    `samples` (per weight `[K, C, ...]`), `log_joint` `[K, C]` (minus the
    potential energy), `leapfrogs` `[K, C]` and `warm_up_leapfrogs`
    `[W, C]` (NumPyro's `num_steps`), `accept_prob` `[K, C]`, `diverging`
    (count), `step_size` (per chain, adapted), `warm_up_seconds` and
    `sampling_seconds` (wall, compile included) and `warm_up_compile_seconds`
    / `sampling_compile_seconds` (JAX's own compile events).
  """
  jax, _ = require()
  from numpyro.infer import MCMC  # pylint: disable=g-import-not-at-top
  from numpyro.infer import NUTS  # pylint: disable=g-import-not-at-top
  x, y = _data(x, y)
  kernel = NUTS(model(architecture, settings['prior_scale']),
                step_size=float(settings['step_size']), dense_mass=False,
                max_tree_depth=int(settings['max_tree_depth']),
                target_accept_prob=float(settings['target_accept_prob']),
                adapt_step_size=True, adapt_mass_matrix=True)
  chains = int(settings['num_chains'])
  mcmc = MCMC(kernel, num_warmup=int(settings['num_burnin_steps']),
              num_samples=int(settings['num_results']), num_chains=chains,
              chain_method=settings['chain_method'], progress_bar=False)
  key = jax.random.PRNGKey(int(settings['seed']))
  warm_up_key, sampling_key = jax.random.split(key)
  fields = ('num_steps', 'accept_prob', 'potential_energy', 'diverging')
  with _CompileClock() as warm_up_clock:
    begin = time.perf_counter()
    # Warm-up's leapfrog counts are kept, its states are not ('~z.<site>').
    mcmc.warmup(warm_up_key, x, y, init_params=as_sites(architecture, start),
                extra_fields=('num_steps',) + tuple(
                    f'~z.{name}' for name in site_names(architecture)),
                collect_warmup=True)
    warm_up_steps = np.asarray(mcmc.get_extra_fields(
        group_by_chain=True)['num_steps'])
    jax.block_until_ready(mcmc.post_warmup_state)
    warm_up_seconds = time.perf_counter() - begin
  with _CompileClock() as sampling_clock:
    begin = time.perf_counter()
    mcmc.run(sampling_key, x, y, extra_fields=fields)
    draws = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    sampling_seconds = time.perf_counter() - begin
  extra = {k: np.asarray(v) for k, v in
           mcmc.get_extra_fields(group_by_chain=True).items()}
  # NumPyro groups chains first: [C, K, ...] -> ours, [K, C, ...].
  draws_first = lambda a: np.swapaxes(np.asarray(a), 0, 1)
  step_size = np.asarray(mcmc.last_state.adapt_state.step_size).reshape(-1)
  return {
      'samples': [draws_first(draws[name])
                  for name in site_names(architecture)],
      'log_joint': draws_first(-extra['potential_energy']),
      'leapfrogs': draws_first(extra['num_steps']).astype(np.float64),
      'warm_up_leapfrogs': draws_first(warm_up_steps).astype(np.float64),
      'accept_prob': draws_first(extra['accept_prob']),
      'diverging': int(np.sum(extra['diverging'])),
      'step_size': [float(s) for s in step_size],
      'warm_up_seconds': warm_up_seconds,
      'sampling_seconds': sampling_seconds,
      'warm_up_compile_seconds': warm_up_clock.seconds,
      'sampling_compile_seconds': sampling_clock.seconds,
  }


# -- against ours -----------------------------------------------------------

def _reference_log_joint(architecture, params, x, y, prior_scale):
  """The log-joint `[C]` in float64 NumPy: a third, independent reading."""
  fns = {'relu': lambda h: np.maximum(h, 0.0),
         'leaky_relu': lambda h: np.where(h > 0, h, 0.2 * h),
         'tanh': np.tanh, 'sigmoid': lambda h: 1.0 / (1.0 + np.exp(-h))}
  activation = fns[architecture.activation]
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  params = [np.asarray(p, np.float64) for p in params]
  h = np.broadcast_to(x, (params[0].shape[0],) + x.shape)
  last = len(params) // 2 - 1
  for layer in range(last + 1):
    h = h @ params[2 * layer] + params[2 * layer + 1][:, None, :]
    if layer < last:
      h = activation(h)
  top = h.max(axis=-1, keepdims=True)
  log_softmax = h - top - np.log(np.exp(h - top).sum(-1, keepdims=True))
  likelihood = np.take_along_axis(
      log_softmax, np.asarray(y, np.int64)[None, :, None], -1).sum((1, 2))
  prior = sum(np.sum(-0.5 * (p / prior_scale) ** 2 - np.log(prior_scale) -
                     0.5 * np.log(2 * np.pi), axis=tuple(range(1, p.ndim)))
              for p in params)
  return likelihood + prior


def _ours_value_and_gradient(architecture, x, y, prior_scale, jit_compile):
  """`f(*params) -> (log-joint [C], gradients)` of `hmc.network_log_joint`
  (`jit_compile` as the sampler runs it)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_robust.fit import hmc  # pylint: disable=g-import-not-at-top
  log_joint = hmc.network_log_joint(architecture, x, y, prior_scale)

  @tf.function(jit_compile=jit_compile)
  def value_and_gradient(*params):
    with tf.GradientTape() as tape:
      tape.watch(params)
      value = log_joint(*params)
    return value, tape.gradient(value, params)

  return value_and_gradient


def _tensors(params):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return [tf.constant(p, tf.float32) for p in params]


def same_target(architecture, x, y, prior_scale: float,
                points: Sequence[Sequence[np.ndarray]]) -> Dict:
  """Both log-joints and gradients at the same weights, and their gaps.

  Each point is weights `[C, ...]`. Returns the largest relative gaps over
  the points and chains: `value_rel_gap` (ours against NumPyro's),
  `ours_vs_float64` / `numpyro_vs_float64` (each against a float64 NumPy
  evaluation), `gradient_rel_gap` (per weight tensor, the largest entry gap
  over the largest entry), and the values at the first point.
  """
  ours_fn = _ours_value_and_gradient(architecture, x, y, prior_scale, False)
  theirs_fn = value_and_gradient(architecture, prior_scale, x, y)
  names = site_names(architecture)
  gaps = {'value_rel_gap': 0.0, 'ours_vs_float64': 0.0,
          'numpyro_vs_float64': 0.0, 'gradient_rel_gap': 0.0}
  first = None
  for params in points:
    ours, ours_grad = ours_fn(*_tensors(params))
    theirs, theirs_grad = theirs_fn(as_sites(architecture, params))
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs,
                                                            np.float64)
    exact = _reference_log_joint(architecture, params, x, y, prior_scale)
    relative = lambda a, b: float(np.max(np.abs(a - b) / np.abs(b)))
    gaps['value_rel_gap'] = max(gaps['value_rel_gap'], relative(ours, theirs))
    gaps['ours_vs_float64'] = max(gaps['ours_vs_float64'],
                                  relative(ours, exact))
    gaps['numpyro_vs_float64'] = max(gaps['numpyro_vs_float64'],
                                     relative(theirs, exact))
    for mine, name in zip(ours_grad, names):
      mine, other = np.asarray(mine), np.asarray(theirs_grad[name])
      scale = max(float(np.max(np.abs(other))), 1e-30)
      gaps['gradient_rel_gap'] = max(
          gaps['gradient_rel_gap'], float(np.max(np.abs(mine - other))) / scale)
    if first is None:
      first = dict(ours_log_joint=ours.tolist(),
                   numpyro_log_joint=theirs.tolist(),
                   float64_log_joint=exact.tolist())
  return dict(gaps, points=len(points), **first)


def gradient_seconds(architecture, x, y, prior_scale: float, params,
                     repeats: int, jit_compile: bool) -> Dict:
  """One value-and-gradient of each log-joint over all chains, alone.

  Each compiled as its sampler runs it (ours with `jit_compile`, NumPyro's
  with `jax.jit`), timed `repeats` times in alternation after a first call,
  so that the machine's load falls on both alike. Returns the medians and
  minima in seconds.
  """
  import jax  # pylint: disable=g-import-not-at-top
  ours_fn = _ours_value_and_gradient(architecture, x, y, prior_scale,
                                     jit_compile)
  theirs_fn = value_and_gradient(architecture, prior_scale, x, y)
  sites = as_sites(architecture, params)
  tensors = _tensors(params)
  run_ours = lambda: np.asarray(ours_fn(*tensors)[0])
  run_theirs = lambda: jax.block_until_ready(theirs_fn(sites))
  run_ours(), run_theirs()
  times = {'ours': [], 'numpyro': []}
  for _ in range(repeats):
    for name, fn in (('ours', run_ours), ('numpyro', run_theirs)):
      begin = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - begin)
  out = {}
  for name, values in times.items():
    out[f'{name}_median'] = float(np.median(values))
    out[f'{name}_min'] = float(np.min(values))
  return out
