"""Network layers as bound operations over a sample axis (for `certify`).

A network to bound is a list of ops built from a *structure* (a tuple of
`(kind, config)` pairs, hashable: it keys the compiled bound functions) and
its weights, each with a leading sample axis `S`. Tensors between ops have
shape `[S, N, *features]`; linear bound coefficients `[S, B, K, *features]`
(K specifications per image). Every op maps intervals forward (interval
bound propagation) and linear lower bounds backward (CROWN, Zhang et al.
2018):

- linear ops (`dense`, `conv2d`, `affine` (batch norm in inference mode,
  rescaling), `avg_pool`, `global_avg_pool`, `reshape`): exact; the
  transpose of a convolution or pooling is the gradient of its forward map.
- `activation` (relu, leaky_relu with slope in [0, 1], tanh, sigmoid):
  CROWN's adaptive relaxation for the piecewise-linear ones (upper: the
  chord; lower: slope 1 or the leak, whichever is closer); tanh and sigmoid
  take two lines parallel to the chord, each through the extreme of
  `f(z) - k z` over the interval (found in closed form: the endpoints and
  the two points where `f' = k`), so both are sound by construction.
- `max_pool`: non-overlapping windows get the DeepPoly relaxation (lower:
  the input with the largest lower bound; upper: that input when it
  dominates its window, else the largest upper bound); any other pooling is
  bounded by its interval alone (zero slopes: sound, as loose as IBP there).
"""

import numpy as np
import tensorflow as tf

ACTIVATIONS = ('relu', 'leaky_relu', 'tanh', 'sigmoid')
_SLACK = 2e-6  # Float32 rounding in the tanh/sigmoid intercepts, relative.


def _prod(shape):
  return int(np.prod(shape, dtype=np.int64))


def _fold(h, fn):
  """Applies a per-image op to `[S, N, *features]` by folding S into N."""
  shape = tf.shape(h)
  out = fn(tf.reshape(h, tf.concat([[-1], shape[2:]], 0)))
  return tf.reshape(out, tf.concat([shape[:2], tf.shape(out)[1:]], 0))


def _channel(vector, rank):
  """`[S, C]` -> `[S, 1, 1, ..., C]` broadcasting over `[S, N, *features]`."""
  return tf.reshape(vector, tf.concat(
      [tf.shape(vector)[:1], tf.ones([rank], tf.int32), tf.shape(vector)[1:]],
      0))


def _fold_k(lam):
  """`[S, B, K, *f]` -> `[S, B * K, *f]`."""
  shape = tf.shape(lam)
  return tf.reshape(lam, tf.concat([shape[:1], [-1], shape[3:]], 0))


def _unfold_k(lam, like):
  shape, like_shape = tf.shape(lam), tf.shape(like)
  return tf.reshape(lam, tf.concat([like_shape[:3], shape[2:]], 0))


def _sum_features(t):
  return tf.reduce_sum(tf.reshape(t, tf.concat([tf.shape(t)[:3], [-1]], 0)),
                       -1)


class Linear:
  """An affine op `y = A x + b`; subclasses define `apply` (A x)."""
  linear = True
  bias = None

  def __init__(self, config, weights, in_shape):
    self.config, self.weights, self.in_shape = config, weights, tuple(in_shape)

  def apply_abs(self, h):
    return self.apply(h)

  def intervals(self, low, high):
    centre, radius = (high + low) / 2.0, (high - low) / 2.0
    centre = self.apply(centre)
    if self.bias is not None:
      centre = centre + self.bias_b
    radius = self.apply_abs(radius)
    return centre - radius, centre + radius

  def transpose(self, lam):
    """`[S, N, *out]` -> `[S, N, *in]`: the gradient of `<lam, A z>`."""
    z = tf.zeros(tf.concat([tf.shape(lam)[:2], self.in_shape], 0), lam.dtype)
    with tf.GradientTape() as tape:
      tape.watch(z)
      out = self.apply(z)
    return tape.gradient(out, z, output_gradients=lam)

  def backward(self, lam, const, low, high):
    del low, high
    if self.bias is not None:
      const = const + _sum_features(lam * tf.expand_dims(self.bias_b, 2))
    return _unfold_k(self.transpose(_fold_k(lam)), lam), const

  @property
  def bias_b(self):
    """The bias broadcasting over `[S, N, *out]`."""
    return _channel(self.bias, len(self.out_shape))


class Dense(Linear):

  def __init__(self, config, weights, in_shape):
    super().__init__(config, weights, in_shape)
    self.kernel, self.bias = weights
    if len(self.in_shape) != 1:
      raise ValueError(f'A dense layer needs flat inputs, got {self.in_shape}.')
    self.out_shape = (int(self.kernel.shape[-1]),)

  def apply(self, h):
    return tf.matmul(h, self.kernel)

  def apply_abs(self, h):
    return tf.matmul(h, tf.abs(self.kernel))

  def transpose(self, lam):
    return tf.matmul(lam, self.kernel, transpose_b=True)


class Conv2D(Linear):
  """Convolution with per-sample kernels `[S, kh, kw, Cin, Cout]`: the
  samples are the groups of one grouped convolution (as `networks`)."""

  def __init__(self, config, weights, in_shape):
    super().__init__(config, weights, in_shape)
    self.kernel, self.bias = weights
    self.strides, self.padding = dict(config)['strides'], dict(config)['padding']
    h, w, _ = self.in_shape
    kh, kw, cout = (int(d) for d in (self.kernel.shape[1], self.kernel.shape[2],
                                     self.kernel.shape[4]))
    if self.padding == 'SAME':
      self.out_shape = (-(-h // self.strides[0]), -(-w // self.strides[1]), cout)
    else:
      self.out_shape = ((h - kh) // self.strides[0] + 1,
                        (w - kw) // self.strides[1] + 1, cout)

  def _conv(self, h, kernel):
    num, (kh, kw, cin, cout) = tf.shape(kernel)[0], self.kernel.shape[1:]
    batch = tf.shape(h)[1]
    stacked = tf.reshape(tf.transpose(h, [1, 2, 3, 0, 4]),
                         [batch, self.in_shape[0], self.in_shape[1], -1])
    grouped = tf.reshape(tf.transpose(kernel, [1, 2, 3, 0, 4]),
                         [kh, kw, cin, num * cout])
    out = tf.nn.conv2d(stacked, grouped, self.strides, self.padding)
    out = tf.reshape(out, [batch, self.out_shape[0], self.out_shape[1], num,
                           cout])
    return tf.transpose(out, [3, 0, 1, 2, 4])

  def apply(self, h):
    return self._conv(h, self.kernel)

  def apply_abs(self, h):
    return self._conv(h, tf.abs(self.kernel))


class Affine(Linear):
  """Per-channel `x * scale + shift` (batch norm at inference, rescaling)."""

  def __init__(self, config, weights, in_shape):
    super().__init__(config, weights, in_shape)
    self.scale, self.bias = weights
    self.out_shape = self.in_shape

  def apply(self, h):
    return h * _channel(self.scale, len(self.in_shape))

  def apply_abs(self, h):
    return h * tf.abs(_channel(self.scale, len(self.in_shape)))

  def transpose(self, lam):
    return self.apply(lam)  # Diagonal.


class AvgPool(Linear):

  def __init__(self, config, weights, in_shape):
    super().__init__(config, weights, in_shape)
    config = dict(config)
    self.pool, self.strides = config['pool'], config['strides']
    self.padding = config['padding']
    self.out_shape = _pool_shape(self.in_shape, self.pool, self.strides,
                                 self.padding)

  def apply(self, h):
    return _fold(h, lambda t: tf.nn.avg_pool2d(t, self.pool, self.strides,
                                               self.padding))


class GlobalAvgPool(Linear):

  def __init__(self, config, weights, in_shape):
    super().__init__(config, weights, in_shape)
    self.out_shape = self.in_shape[-1:]

  def apply(self, h):
    return tf.reduce_mean(h, [2, 3])


class Reshape(Linear):
  """A reshape; the shape `(-1,)` flattens."""

  def __init__(self, config, weights, in_shape):
    super().__init__(config, weights, in_shape)
    self.out_shape = tuple(dict(config)['shape'])
    if self.out_shape == (-1,):
      self.out_shape = (_prod(self.in_shape),)
    if _prod(self.out_shape) != _prod(self.in_shape):
      raise ValueError(f'Cannot reshape {self.in_shape} to {self.out_shape}.')

  def apply(self, h):
    return tf.reshape(h, tf.concat([tf.shape(h)[:2], self.out_shape], 0))

  def transpose(self, lam):
    return tf.reshape(lam, tf.concat([tf.shape(lam)[:2], self.in_shape], 0))


def _pool_shape(shape, pool, strides, padding):
  h, w, c = shape
  if padding == 'SAME':
    return (-(-h // strides[0]), -(-w // strides[1]), c)
  return ((h - pool[0]) // strides[0] + 1, (w - pool[1]) // strides[1] + 1, c)


def _linear_relaxation(low, high, slope):
  """(lower slope, lower intercept, upper slope, upper intercept) of
  `max(z, slope * z)`, slope in [0, 1], over `[low, high]` (adaptive)."""
  unstable = (low < 0.0) & (high > 0.0)
  width = tf.where(unstable, high - low, tf.ones_like(low))
  chord = (high - slope * low) / width
  upper_slope = tf.where(unstable, chord, tf.where(low >= 0.0, 1.0, slope))
  upper_const = tf.where(unstable, (slope - chord) * low, 0.0)
  lower_slope = tf.where(high >= -low, 1.0, slope) * tf.ones_like(low)
  lower_slope = tf.where(unstable, lower_slope, upper_slope)
  return lower_slope, tf.zeros_like(low), upper_slope, upper_const


def _smooth_relaxation(fn, low, high):
  """Parallel lines bounding tanh or sigmoid over `[low, high]` (see top)."""
  f, top = (tf.math.tanh, 1.0) if fn == 'tanh' else (tf.math.sigmoid, 0.25)
  derivative = ((lambda z: 1.0 - tf.math.tanh(z) ** 2) if fn == 'tanh' else
                (lambda z: tf.math.sigmoid(z) * (1.0 - tf.math.sigmoid(z))))
  width = high - low
  wide = width > 1e-4
  chord = (f(high) - f(low)) / tf.where(wide, width, 1.0)
  slope = tf.where(wide, chord, derivative((low + high) / 2.0))
  slope = tf.clip_by_value(slope, 1e-6 * top, top)
  if fn == 'tanh':
    critical = tf.math.atanh(tf.minimum(tf.sqrt(tf.maximum(1.0 - slope, 0.0)),
                                        1.0 - 1e-7))
  else:
    s = (1.0 + tf.sqrt(tf.maximum(1.0 - 4.0 * slope, 0.0))) / 2.0
    s = tf.minimum(s, 1.0 - 1e-7)
    critical = tf.math.log(s) - tf.math.log1p(-s)
  candidates = tf.stack([low, high, critical, -critical])
  inside = (candidates >= low) & (candidates <= high)
  gap = f(candidates) - slope * candidates
  g_min = tf.reduce_min(tf.where(inside, gap, np.inf), 0)
  g_max = tf.reduce_max(tf.where(inside, gap, -np.inf), 0)
  slack = _SLACK * (1.0 + slope * tf.maximum(tf.abs(low), tf.abs(high)))
  return slope, g_min - slack, slope, g_max + slack


class Activation:
  """An elementwise monotone activation."""
  linear = False

  def __init__(self, config, weights, in_shape):
    config = dict(config)
    self.fn, self.slope = config['fn'], float(config.get('slope', 0.0))
    self.in_shape = self.out_shape = tuple(in_shape)

  def __call__(self, z):
    if self.fn in ('relu', 'leaky_relu'):
      return tf.maximum(z, self.slope * z)
    return tf.math.tanh(z) if self.fn == 'tanh' else tf.math.sigmoid(z)

  def intervals(self, low, high):
    return self(low), self(high)

  def relaxation(self, low, high):
    if self.fn in ('relu', 'leaky_relu'):
      return _linear_relaxation(low, high, self.slope)
    return _smooth_relaxation(self.fn, low, high)

  def backward(self, lam, const, low, high, lower_slope=None):
    a_low, c_low, a_up, c_up = (tf.expand_dims(t, 2) for t in
                                self.relaxation(low, high))
    if lower_slope is not None:  # alpha-CROWN: optimised lower slopes.
      a_low = tf.where(a_low == a_up, a_low, lower_slope)
    positive, negative = tf.nn.relu(lam), tf.minimum(lam, 0.0)
    const = const + _sum_features(positive * c_low + negative * c_up)
    return positive * a_low + negative * a_up, const


class MaxPool:
  """Max pooling; see the module docstring for its relaxation."""
  linear = False

  def __init__(self, config, weights, in_shape):
    config = dict(config)
    self.pool, self.strides = config['pool'], config['strides']
    self.padding = config['padding']
    self.in_shape = tuple(in_shape)
    self.out_shape = _pool_shape(self.in_shape, self.pool, self.strides,
                                 self.padding)
    h, w, _ = self.in_shape
    self.windows = tuple(self.strides) == tuple(self.pool) and (
        self.padding == 'VALID' or (h % self.pool[0] == 0 and
                                    w % self.pool[1] == 0))

  def __call__(self, h):
    return _fold(h, lambda t: tf.nn.max_pool2d(t, self.pool, self.strides,
                                               self.padding))

  def intervals(self, low, high):
    return self(low), self(high)

  def _windows(self, t):
    """`[S, B, H, W, C]` -> `[S, B, Ho, Wo, C, ph * pw]` (cropped)."""
    (ho, wo, c), (ph, pw) = self.out_shape, self.pool
    t = t[:, :, :ho * ph, :wo * pw]
    t = tf.reshape(t, tf.concat([tf.shape(t)[:2], [ho, ph, wo, pw, c]], 0))
    t = tf.transpose(t, [0, 1, 2, 4, 6, 3, 5])
    return tf.reshape(t, tf.concat([tf.shape(t)[:5], [ph * pw]], 0))

  def backward(self, lam, const, low, high):
    positive, negative = tf.nn.relu(lam), tf.minimum(lam, 0.0)
    if not self.windows:  # Zero slopes: the output's interval alone.
      out_low, out_high = (tf.expand_dims(t, 2) for t in
                           self.intervals(low, high))
      const = const + _sum_features(positive * out_low + negative * out_high)
      zeros = tf.zeros(tf.concat([tf.shape(lam)[:3], self.in_shape], 0))
      return zeros, const
    low_w, high_w = self._windows(low), self._windows(high)
    chosen = tf.one_hot(tf.argmax(low_w, -1), low_w.shape[-1])
    best_low = tf.reduce_max(low_w, -1)
    rival = tf.reduce_max(tf.where(chosen > 0, -np.inf, high_w), -1)
    dominates = tf.expand_dims(best_low >= rival, 2)
    top = tf.expand_dims(tf.reduce_max(high_w, -1), 2)
    const = const + _sum_features(tf.where(dominates, 0.0, negative) * top)
    selected = positive + tf.where(dominates, negative, 0.0)
    coefficients = tf.expand_dims(selected, -1) * tf.expand_dims(chosen, 2)
    (ho, wo, c), (ph, pw) = self.out_shape, self.pool
    shape = tf.shape(coefficients)
    coefficients = tf.reshape(coefficients, tf.concat(
        [shape[:3], [ho, wo, c, ph, pw]], 0))
    coefficients = tf.transpose(coefficients, [0, 1, 2, 3, 6, 4, 7, 5])
    coefficients = tf.reshape(coefficients, tf.concat(
        [shape[:3], [ho * ph, wo * pw, c]], 0))
    h, w, _ = self.in_shape
    padding = [[0, 0]] * 3 + [[0, h - ho * ph], [0, w - wo * pw], [0, 0]]
    return tf.pad(coefficients, padding), const


OPS = {'dense': Dense, 'conv2d': Conv2D, 'affine': Affine,
       'avg_pool': AvgPool, 'global_avg_pool': GlobalAvgPool,
       'reshape': Reshape, 'activation': Activation, 'max_pool': MaxPool}


def build(structure, weights, input_shape):
  """The ops of a structure, each given its slice of `weights` (in order)."""
  ops, weights, shape = [], list(weights), tuple(input_shape)
  for kind, config in structure:
    count = dict(config).get('num_weights', 0)
    op = OPS[kind](config, weights[:count], shape)
    weights = weights[count:]
    ops.append(op)
    shape = op.out_shape
  return ops


def from_architecture(architecture):
  """The structure of a `networks.Architecture` (weights: its params)."""
  structure = []
  slope = 0.2 if architecture.activation == 'leaky_relu' else 0.0
  activation = ('activation', (('fn', architecture.activation),
                               ('slope', slope)))
  for layer in architecture.layers():
    kind = layer['kind']
    if kind == 'dense':
      structure.append(('dense', (('num_weights', 2),)))
    elif kind == 'conv2d':
      structure.append(('conv2d', (('num_weights', 2), ('strides', (1, 1)),
                                   ('padding', 'SAME'))))
    elif kind == 'max_pool':
      size = int(layer.get('size', 2))
      structure.append(('max_pool', (('pool', (size, size)),
                                     ('strides', (size, size)),
                                     ('padding', 'VALID'))))
    else:
      structure.append(('reshape', (('shape', (-1,)),)))
    if kind in ('dense', 'conv2d') and not layer.get('logits'):
      structure.append(activation)
  return tuple(structure)
