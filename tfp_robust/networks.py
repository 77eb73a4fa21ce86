"""Architecture descriptions and the functional forward pass with a sample axis.

An `Architecture` is plain, JSON-able data. Every fitted model (deterministic
net, deep ensemble, VI, HMC) is described by one, and every posterior ensemble
evaluates it through `forward`, which takes weights with a leading sample axis
`S` and returns logits `[S, B, C]` for all samples in one traced call.
"""

import dataclasses
import json
from typing import Any, Dict, List, Sequence, Tuple

import tensorflow as tf

# One activation table shared by the Keras models and the functional forward
# pass, so that a trained Keras net and its ensemble compute the same function.
def leaky_relu(x):
  """Leaky ReLU with slope 0.2 (a named function, so Keras can serialise it)."""
  return tf.nn.leaky_relu(x, alpha=0.2)


ACTIVATIONS = {
    'relu': tf.nn.relu,
    'leaky_relu': leaky_relu,
    'tanh': tf.math.tanh,
    'sigmoid': tf.math.sigmoid,
}

_LAYER_KINDS = ('dense', 'conv2d', 'max_pool', 'flatten')


@dataclasses.dataclass(frozen=True)
class Architecture:
  """A feed-forward classifier: hidden layers, then a dense logit layer.

  Attributes:
    input_shape: shape of one input, e.g. `(2,)`, `(784,)` or `(28, 28, 1)`.
    num_classes: number of output classes `C`.
    hidden: hidden layers in order, each a dict with a `kind`:
      `{'kind': 'dense', 'units': 128}`,
      `{'kind': 'conv2d', 'filters': 32, 'kernel_size': 5}` (stride 1, SAME),
      `{'kind': 'max_pool', 'size': 2}` or `{'kind': 'flatten'}`.
      The activation follows every dense and conv2d layer; the final dense
      layer producing `num_classes` logits is implicit.
    activation: a key of `ACTIVATIONS`.
  """
  input_shape: Tuple[int, ...]
  num_classes: int
  hidden: Tuple[Dict[str, Any], ...]
  activation: str = 'relu'

  def __post_init__(self):
    object.__setattr__(self, 'input_shape', tuple(int(d) for d in self.input_shape))
    object.__setattr__(self, 'hidden', tuple(dict(layer) for layer in self.hidden))
    if self.activation not in ACTIVATIONS:
      raise ValueError(f'Unknown activation {self.activation!r}; '
                       f'choose one of {sorted(ACTIVATIONS)}.')
    if self.num_classes < 2:
      raise ValueError(f'num_classes must be at least 2, got {self.num_classes}.')
    from tfp_robust.core import validate  # pylint: disable=g-import-not-at-top
    validate.integer('num_classes', self.num_classes, 2)
    for dim in self.input_shape:
      validate.integer('input_shape', dim, 1)
    for index, layer in enumerate(self.hidden):
      if layer.get('kind') not in _LAYER_KINDS:
        raise ValueError(f'Unknown layer {layer!r}; each hidden layer needs a '
                         f'kind in {_LAYER_KINDS}.')
      for key in ('units', 'filters', 'kernel_size', 'size'):
        if key in layer:
          # A width of 0 would abort inside oneDNN; refuse it here.
          validate.integer(f'hidden[{index}].{key}', layer[key], 1,
                           fix='Every layer needs at least one unit, filter '
                           'or pixel.')
    self.param_shapes()  # Validates that the layers fit together.

  @classmethod
  def mlp(cls, input_dim: int, hidden_units: Sequence[int], num_classes: int,
          activation: str = 'relu') -> 'Architecture':
    """A fully connected net with the given hidden widths."""
    return cls((input_dim,), num_classes,
               tuple({'kind': 'dense', 'units': int(u)} for u in hidden_units),
               activation)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> 'Architecture':
    return cls(**json.loads(text))

  def layers(self) -> List[Dict[str, Any]]:
    """All layers including the implicit dense logit layer."""
    needs_flatten = len(self.output_shape_of_hidden()) > 1
    tail = [{'kind': 'flatten'}] if needs_flatten else []
    return list(self.hidden) + tail + [
        {'kind': 'dense', 'units': self.num_classes, 'logits': True}]

  def output_shape_of_hidden(self) -> Tuple[int, ...]:
    shape = self.input_shape
    for layer in self.hidden:
      shape = _layer_output_shape(layer, shape)
    return shape

  def param_shapes(self) -> List[Tuple[str, Tuple[int, ...]]]:
    """Names and shapes (without the sample axis) of all weights, in order."""
    shapes = []
    shape = self.input_shape
    for index, layer in enumerate(self.hidden):
      output_shape = _layer_output_shape(layer, shape)  # Validates first.
      shapes += _layer_param_shapes(index, layer, shape)
      shape = output_shape
    if len(shape) > 1:
      shape = (_prod(shape),)
    shapes += _layer_param_shapes(len(self.hidden),
                                  {'kind': 'dense', 'units': self.num_classes},
                                  shape)
    return shapes

  def widest_activation(self) -> int:
    """Size of the largest per-example tensor, input included."""
    shape = self.input_shape
    widest = _prod(shape)
    for layer in self.layers():
      shape = _layer_output_shape(layer, shape)
      widest = max(widest, _prod(shape))
    return widest

  def num_params(self) -> int:
    return sum(_prod(shape) for _, shape in self.param_shapes())


def _prod(shape):
  result = 1
  for d in shape:
    result *= int(d)
  return result


def _require(layer, *keys):
  missing = [k for k in keys if k not in layer]
  if missing:
    raise ValueError(f'Layer {layer!r} lacks {missing}; e.g. '
                     "{'kind': 'conv2d', 'filters': 32, 'kernel_size': 5}.")


def _layer_output_shape(layer, shape):
  kind = layer['kind']
  if kind in ('conv2d', 'max_pool') and len(shape) != 3:
    raise ValueError(f'{kind} needs an [H, W, C] input, got shape {shape}; '
                     'load images with flat=False or put it before flatten.')
  if kind == 'dense':
    if len(shape) != 1:
      raise ValueError(f'A dense layer needs a flat input, got shape {shape}; '
                       "add {'kind': 'flatten'} before it.")
    return (int(layer['units']),)
  if kind == 'conv2d':
    _require(layer, 'filters', 'kernel_size')
    return (shape[0], shape[1], int(layer['filters']))
  if kind == 'max_pool':
    size = int(layer.get('size', 2))
    if not 1 <= size <= min(shape[0], shape[1]):
      raise ValueError(f'max_pool size {size} does not fit an input of shape '
                       f'{shape}.')
    return (shape[0] // size, shape[1] // size, shape[2])
  return (_prod(shape),)  # flatten


def _layer_param_shapes(index, layer, shape):
  kind = layer['kind']
  if kind == 'dense':
    units = int(layer['units'])
    return [(f'dense_{index}/kernel', (shape[0], units)),
            (f'dense_{index}/bias', (units,))]
  if kind == 'conv2d':
    k = int(layer['kernel_size'])
    filters = int(layer['filters'])
    return [(f'conv2d_{index}/kernel', (k, k, shape[2], filters)),
            (f'conv2d_{index}/bias', (filters,))]
  return []


def forward(architecture: Architecture, params: Sequence[tf.Tensor],
            x: tf.Tensor) -> tf.Tensor:
  """Logits of every weight sample on a batch of inputs.

  Args:
    architecture: the network description.
    params: weights in `architecture.param_shapes()` order, each with a
      leading sample axis `S`.
    x: inputs `[B, *input_shape]` shared by all samples, or
      `[S, B, *input_shape]` with one batch per sample (used to take each
      sample's own input gradient in one call).

  Returns:
    Logits `[S, B, C]`.
  """
  activation = ACTIVATIONS[architecture.activation]
  rank = len(architecture.input_shape)
  per_sample_inputs = len(x.shape) == rank + 2
  h = x
  params = list(params)
  layers = architecture.layers()
  for layer in layers:
    kind = layer['kind']
    if kind == 'dense':
      kernel, bias = params.pop(0), params.pop(0)
      if per_sample_inputs:
        h = tf.matmul(h, kernel)
      else:
        # All samples share the inputs: one contraction over the sample axis.
        h = tf.einsum('bd,sdh->sbh', h, kernel)
        per_sample_inputs = True
      h = h + bias[:, None, :]
      if not layer.get('logits'):
        h = activation(h)
    elif kind == 'conv2d':
      kernel, bias = params.pop(0), params.pop(0)
      h = _conv2d_over_samples(h, kernel, per_sample_inputs)
      per_sample_inputs = True
      h = activation(h + bias[:, None, None, None, :])
    elif kind == 'max_pool':
      h = _fold_samples(h, per_sample_inputs,
                        lambda t, s=int(layer.get('size', 2)): tf.nn.max_pool2d(
                            t, s, s, 'VALID'))
    else:  # flatten
      if per_sample_inputs:
        h = tf.reshape(h, tf.concat([tf.shape(h)[:2], [-1]], 0))
      else:
        h = tf.reshape(h, [tf.shape(h)[0], -1])
  return h


def log_probs(architecture: Architecture, params: Sequence[tf.Tensor],
              x: tf.Tensor) -> tf.Tensor:
  """Per-sample log-softmax `[S, B, C]`: `forward` followed by log_softmax."""
  return tf.nn.log_softmax(forward(architecture, params, x))


# Above this many multiply-adds per sample (batch x dense weights), the input
# gradient is taken one sample at a time, each a tape over 2-D matmuls in a
# compiled loop, instead of through one contraction over the sample axis.
# Measured on 2 cores (BUILD_NOTES, "The forward pass, picked per shape"):
# fraction of the same-run matmul peak, loop against contraction:
# 784-1024-1024-10 S=100 B=500 0.91/0.65, S=250 B=100 0.69/0.34;
# 784-512-10 S=250 B=500 0.85/0.53; 784-128-10 S=250 B=500 0.61/0.51;
# the half-moons net 2-128-128-2 S=250 B=100 (1.7e6) 0.25/0.29.
SAMPLE_LOOP_MIN_MACS = 1e7


def sample_loop_pays(architecture: Architecture, batch_size) -> bool:
  """Whether `weighted_input_gradient` should loop over samples.

  Only all-dense architectures (a leading flatten allowed), whose loop form
  was measured, and only with a static batch size.
  """
  if batch_size is None:
    return False
  if any(layer['kind'] not in ('dense', 'flatten')
         for layer in architecture.layers()):
    return False
  macs = sum(_prod(shape) for name, shape in architecture.param_shapes()
             if len(shape) == 2)
  return int(batch_size) * macs >= SAMPLE_LOOP_MIN_MACS


def _dense_forward_one(architecture: Architecture, params, x):
  """Logits `[B, C]` of one sample's weights (no sample axis) on `x`."""
  activation = ACTIVATIONS[architecture.activation]
  h = tf.reshape(x, [tf.shape(x)[0], -1])
  params = list(params)
  for layer in architecture.layers():
    if layer['kind'] != 'dense':
      continue  # flatten: done above.
    kernel, bias = params.pop(0), params.pop(0)
    h = tf.matmul(h, kernel) + bias
    if not layer.get('logits'):
      h = activation(h)
  return h


def weighted_input_gradient(architecture: Architecture,
                            params: Sequence[tf.Tensor], x: tf.Tensor,
                            weights: tf.Tensor):
  """Per-sample log-softmax and d/dx sum(weights * log_softmax), by sample.

  A `tf.while_loop` over the sample axis; each iteration is a tape over one
  sample's 2-D matmuls and adds that sample's input gradient. All-dense
  architectures only (see `sample_loop_pays`).

  Args:
    architecture: an all-dense network description.
    params: weights with a leading sample axis `n`.
    x: inputs `[B, *input_shape]`, shared by all samples.
    weights: `[n, B, C]`, or `[B, C]` shared by every sample.

  Returns:
    `(log_probs [n, B, C], gradient [B, *input_shape])`.
  """
  params = list(params)
  num_samples = tf.shape(params[0])[0]
  shared = len(weights.shape) == 2

  def body(s, gradient, log_probs):
    with tf.GradientTape() as tape:
      tape.watch(x)
      sample_log_probs = tf.nn.log_softmax(_dense_forward_one(
          architecture, [tf.gather(p, s) for p in params], x))
      sample_weights = weights if shared else tf.gather(weights, s)
      objective = tf.reduce_sum(sample_weights * sample_log_probs)
    # A sample whose output does not depend on x has a zero gradient, as on
    # the one-tape path, not None.
    return (s + 1, gradient + tape.gradient(
        objective, x, unconnected_gradients=tf.UnconnectedGradients.ZERO),
            log_probs.write(s, sample_log_probs))

  _, gradient, log_probs = tf.while_loop(
      lambda s, *_: s < num_samples, body,
      (tf.constant(0), tf.zeros_like(x),
       tf.TensorArray(x.dtype, size=num_samples, element_shape=[
           x.shape[0], architecture.num_classes])))
  return log_probs.stack(), gradient


def _fold_samples(h, per_sample_inputs, fn):
  """Applies a per-image op to `[S, B, ...]` by folding S into the batch."""
  if not per_sample_inputs:
    return fn(h)
  shape = tf.shape(h)
  out = fn(tf.reshape(h, tf.concat([[-1], shape[2:]], 0)))
  return tf.reshape(out, tf.concat([shape[:2], tf.shape(out)[1:]], 0))


def _conv2d_over_samples(h, kernel, per_sample_inputs):
  """SAME convolution of `[S?, B, H, W, Cin]` with kernels `[S, k, k, Cin, Cout]`.

  The samples become groups of one grouped convolution: inputs of all samples
  are stacked along channels and the kernels along output channels, which
  evaluates S different convolutions in a single op.
  """
  num_samples = tf.shape(kernel)[0]
  k, cin, cout = kernel.shape[1], kernel.shape[3], kernel.shape[4]
  if not per_sample_inputs:
    h = tf.broadcast_to(h[None], tf.concat([[num_samples], tf.shape(h)], 0))
  # [S, B, H, W, Cin] -> [B, H, W, S * Cin]
  b, height, width = tf.shape(h)[1], tf.shape(h)[2], tf.shape(h)[3]
  stacked = tf.reshape(tf.transpose(h, [1, 2, 3, 0, 4]),
                       [b, height, width, num_samples * cin])
  # [S, k, k, Cin, Cout] -> [k, k, Cin, S * Cout] grouped by sample.
  grouped_kernel = tf.reshape(tf.transpose(kernel, [1, 2, 3, 0, 4]),
                              [k, k, cin, num_samples * cout])
  out = tf.nn.conv2d(stacked, grouped_kernel, strides=1, padding='SAME')
  out = tf.reshape(out, [b, height, width, num_samples, cout])
  return tf.transpose(out, [3, 0, 1, 2, 4])


def interval_forward(architecture: Architecture, params: Sequence[tf.Tensor],
                     lower: tf.Tensor, upper: tf.Tensor):
  """Interval bounds on the logits of every sample over an input box.

  Interval bound propagation (Gowal et al., 2018) in centre-radius form: an
  affine layer maps centre `m` and radius `r` to `m W + b` and `r |W|`; the
  activations (all monotone) and max-pooling map lower and upper bounds
  through themselves. Every logit of every sample at every input of the box
  lies inside the returned interval.

  Args:
    architecture: the network description.
    params: weights with a leading sample axis `S`.
    lower: `[B, *input_shape]` lower corner of the input box.
    upper: `[B, *input_shape]` upper corner (>= lower).

  Returns:
    `(lower_logits, upper_logits)`, each `[S, B, C]`.
  """
  activation = ACTIVATIONS[architecture.activation]
  params = list(params)
  low, high = lower, upper
  per_sample_inputs = False
  for layer in architecture.layers():
    kind = layer['kind']
    if kind in ('dense', 'conv2d'):
      kernel, bias = params.pop(0), params.pop(0)
      centre, radius = (high + low) / 2.0, (high - low) / 2.0
      if kind == 'dense':
        if per_sample_inputs:
          centre = tf.matmul(centre, kernel)
          radius = tf.matmul(radius, tf.abs(kernel))
        else:
          centre = tf.einsum('bd,sdh->sbh', centre, kernel)
          radius = tf.einsum('bd,sdh->sbh', radius, tf.abs(kernel))
        centre = centre + bias[:, None, :]
      else:
        centre = _conv2d_over_samples(centre, kernel, per_sample_inputs)
        radius = _conv2d_over_samples(radius, tf.abs(kernel),
                                      per_sample_inputs)
        centre = centre + bias[:, None, None, None, :]
      per_sample_inputs = True
      low, high = centre - radius, centre + radius
      if not layer.get('logits'):
        low, high = activation(low), activation(high)
    elif kind == 'max_pool':
      size = int(layer.get('size', 2))
      pool = lambda t, s=size: tf.nn.max_pool2d(t, s, s, 'VALID')
      low = _fold_samples(low, per_sample_inputs, pool)
      high = _fold_samples(high, per_sample_inputs, pool)
    else:  # flatten
      if per_sample_inputs:
        flat = lambda t: tf.reshape(t, tf.concat([tf.shape(t)[:2], [-1]], 0))
      else:
        flat = lambda t: tf.reshape(t, [tf.shape(t)[0], -1])
      low, high = flat(low), flat(high)
  return low, high
