"""Reading `tf_keras` models into bound operations (`bound_ops`).

A Sequential or functional model that is a chain of single-input layers
(nested models are read inline) becomes a structure and its weights:
Dense, Conv2D, BatchNormalization (inference mode: a per-channel affine map
of its moving statistics), Rescaling, the activations relu / leaky relu /
tanh / sigmoid (as layers, `Activation`, `ReLU`, `LeakyReLU`, or the
`activation=` of Dense and Conv2D), MaxPooling2D, AveragePooling2D,
GlobalAveragePooling2D, Flatten, Reshape, and the layers that are the
identity at inference (Dropout, SpatialDropout2D, AlphaDropout,
GaussianNoise, GaussianDropout, ActivityRegularization, Identity). A final
softmax is dropped for a model whose outputs are probabilities (its logits
are bounded). Anything else is refused, naming the layer and its class.
"""

import numpy as np
import tensorflow as tf
import tf_keras

from tfp_robust import networks

_LAYERS = tf_keras.layers
_IDENTITY = tuple(getattr(_LAYERS, name) for name in (
    'Dropout', 'SpatialDropout2D', 'AlphaDropout', 'GaussianNoise',
    'GaussianDropout', 'ActivityRegularization', 'Identity')
                  if hasattr(_LAYERS, name))
SUPPORTED = ('Dense', 'Conv2D', 'BatchNormalization', 'Rescaling',
             'Activation', 'ReLU', 'LeakyReLU', 'MaxPooling2D',
             'AveragePooling2D', 'GlobalAveragePooling2D', 'Flatten',
             'Reshape', 'InputLayer') + tuple(c.__name__ for c in _IDENTITY)


class UnsupportedLayerError(NotImplementedError):
  """A layer (or a model's shape) that the bound propagation cannot read."""


def _refuse(layer, why):
  raise UnsupportedLayerError(
      f'Cannot bound layer {layer.name!r} (class {type(layer).__name__}): '
      f'{why}. Certification reads chains of these layers: '
      f'{", ".join(SUPPORTED)} (activations relu, leaky relu, tanh, '
      'sigmoid); rebuild the model with them, or certify by sampling/attack '
      'only.')


_BY_FUNCTION = {
    tf_keras.activations.linear: None, tf_keras.activations.relu: 'relu',
    tf.nn.relu: 'relu', tf_keras.activations.tanh: 'tanh',
    tf.math.tanh: 'tanh', tf_keras.activations.sigmoid: 'sigmoid',
    tf.math.sigmoid: 'sigmoid', tf_keras.activations.softmax: 'softmax',
    networks.leaky_relu: ('leaky_relu', 0.2),
    tf.nn.leaky_relu: ('leaky_relu', 0.2)}
_BY_NAME = {'linear': None, 'relu': 'relu', 'tanh': 'tanh',
            'sigmoid': 'sigmoid', 'softmax': 'softmax'}


def _activation(layer, fn):
  """Entries for an activation function (none for linear)."""
  try:
    found = _BY_FUNCTION[fn]
  except (KeyError, TypeError):
    name = getattr(fn, '__name__', repr(fn))
    if name not in _BY_NAME:
      _refuse(layer, f'activation {name!r} has no linear relaxation here')
    found = _BY_NAME[name]
  if found is None:
    return []
  if found == 'softmax':
    return [('softmax', (), [])]
  fn, slope = found if isinstance(found, tuple) else (found, 0.0)
  return [('activation', (('fn', fn), ('slope', slope)), [])]


def _leaky(layer, slope):
  slope = float(slope)
  if not 0.0 <= slope <= 1.0:
    _refuse(layer, f'a leak of {slope} (outside [0, 1]) is not convex')
  fn = 'relu' if slope == 0.0 else 'leaky_relu'
  return [('activation', (('fn', fn), ('slope', slope)), [])]


def _channels_last(layer):
  if getattr(layer, 'data_format', 'channels_last') != 'channels_last':
    _refuse(layer, 'only data_format="channels_last" is read')


def _pool(layer, kind):
  _channels_last(layer)
  return [(kind, (('pool', tuple(int(p) for p in layer.pool_size)),
                  ('strides', tuple(int(s) for s in layer.strides)),
                  ('padding', layer.padding.upper())), [])]


def _bias(layer, size):
  if getattr(layer, 'use_bias', True) and layer.bias is not None:
    return layer.bias.numpy()
  return np.zeros([size], np.float32)


def _entries(layer):
  """`[(kind, config, weights)]` of one layer (no sample axis)."""
  kind = type(layer)
  if kind is _LAYERS.InputLayer or isinstance(layer, _IDENTITY):
    return []
  if kind is _LAYERS.Dense:
    if len(layer.input_shape) != 2:
      _refuse(layer, f'a dense layer on inputs of shape {layer.input_shape} '
              '(flatten first)')
    kernel = layer.kernel.numpy()
    return [('dense', (('num_weights', 2),),
             [kernel, _bias(layer, kernel.shape[-1])])] + _activation(
                 layer, layer.activation)
  if kind is _LAYERS.Conv2D:
    _channels_last(layer)
    if tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
      _refuse(layer, 'dilated or grouped convolutions are not read')
    kernel = layer.kernel.numpy()
    return [('conv2d', (('num_weights', 2),
                        ('strides', tuple(int(s) for s in layer.strides)),
                        ('padding', layer.padding.upper())),
             [kernel, _bias(layer, kernel.shape[-1])])] + _activation(
                 layer, layer.activation)
  if kind is _LAYERS.BatchNormalization:
    rank = len(layer.input_shape) - 1
    if list(layer.axis) not in ([rank], [-1]) or layer.renorm or (
        layer.virtual_batch_size or layer.adjustment):
      _refuse(layer, 'only batch norm over the last axis, without renorm, '
              'virtual batches or adjustment, is an affine map at inference')
    mean = layer.moving_mean.numpy().astype(np.float64)
    variance = layer.moving_variance.numpy().astype(np.float64)
    gamma = layer.gamma.numpy() if layer.scale else np.ones_like(mean)
    beta = layer.beta.numpy() if layer.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + layer.epsilon)
    return [('affine', (('num_weights', 2),),
             [scale.astype(np.float32),
              (beta - mean * scale).astype(np.float32)])]
  if kind is _LAYERS.Rescaling:
    channels = int(layer.input_shape[-1])
    full = lambda v: np.broadcast_to(np.asarray(v, np.float32), [channels])
    return [('affine', (('num_weights', 2),),
             [full(layer.scale).copy(), full(layer.offset).copy()])]
  if kind is _LAYERS.Activation:
    return _activation(layer, layer.activation)
  if kind is _LAYERS.ReLU:
    if layer.max_value is not None or float(layer.threshold) != 0.0:
      _refuse(layer, 'a ReLU with max_value or threshold is not read')
    return _leaky(layer, layer.negative_slope)
  if kind is _LAYERS.LeakyReLU:
    return _leaky(layer, layer.alpha)
  if kind is _LAYERS.Softmax:
    return [('softmax', (), [])]
  if kind is _LAYERS.MaxPooling2D:
    return _pool(layer, 'max_pool')
  if kind is _LAYERS.AveragePooling2D:
    return _pool(layer, 'avg_pool')
  if kind is _LAYERS.GlobalAveragePooling2D:
    _channels_last(layer)
    if getattr(layer, 'keepdims', False):
      _refuse(layer, 'keepdims=True is not read')
    return [('global_avg_pool', (), [])]
  if kind is _LAYERS.Flatten:
    _channels_last(layer)
    return [('reshape', (('shape', (-1,)),), [])]
  if kind is _LAYERS.Reshape:
    return [('reshape', (('shape', tuple(int(d) for d in
                                         layer.target_shape)),), [])]
  if isinstance(layer, tf_keras.Model):
    return _model_entries(layer)
  _refuse(layer, 'it has no bound propagation')


def _model_entries(model):
  """The entries of a chain model's layers, in order."""
  if isinstance(model, tf_keras.Sequential):
    return [e for layer in model.layers for e in _entries(layer)]
  if len(model.inputs) != 1 or len(model.outputs) != 1:
    raise UnsupportedLayerError(
        f'Cannot bound model {model.name!r}: it has {len(model.inputs)} '
        f'inputs and {len(model.outputs)} outputs; certification reads '
        'chains of layers with one input and one output.')
  entries, previous = [], model.inputs[0]
  for layer in model.layers:
    if type(layer) is _LAYERS.InputLayer:
      continue
    try:
      given = layer.input
    except AttributeError:
      _refuse(layer, 'it is called more than once (a shared layer)')
    if given is not previous:
      _refuse(layer, f'model {model.name!r} is not a chain: this layer does '
              'not take (only) the previous layer\'s output')
    entries += _entries(layer)
    previous = layer.output
  if previous is not model.outputs[0]:
    raise UnsupportedLayerError(
        f'Cannot bound model {model.name!r}: its output is not its last '
        "layer's; certification reads chains of layers.")
  return entries


def read_model(model, outputs='logits'):
  """`(structure, weights)` of a tf_keras model that returns `outputs`."""
  entries = _model_entries(model)
  if outputs == 'probabilities':
    if not entries or entries[-1][0] != 'softmax':
      raise UnsupportedLayerError(
          f'Cannot bound model {model.name!r}: its outputs are '
          'probabilities, but it does not end in a softmax whose logits '
          'could be bounded.')
    entries = entries[:-1]
  for kind, _, _ in entries:
    if kind == 'softmax':
      raise UnsupportedLayerError(
          f'Cannot bound model {model.name!r}: a softmax before its last '
          'layer has no relaxation here.')
  if not any(weights for _, _, weights in entries):
    raise UnsupportedLayerError(f'Cannot bound model {model.name!r}: it has '
                                'no dense or convolutional layer.')
  structure = tuple((kind, config) for kind, config, _ in entries)
  weights = [np.asarray(w, np.float32) for _, _, ws in entries for w in ws]
  return structure, weights


def read_ensemble(ensemble):
  """`[(structure, stacked weights [n, ...], start, stop)]` of a
  `KerasEnsemble`: consecutive models of one structure share a group."""
  if ensemble.call_kwargs.get('training', False):
    raise UnsupportedLayerError(
        'Cannot bound a KerasEnsemble that calls its models with '
        f'{ensemble.call_kwargs}: bounds hold for the deterministic '
        'inference-mode model (training=False).')
  groups = []
  for index, model in enumerate(ensemble.models):
    structure, weights = read_model(model, ensemble.outputs)
    key = (structure, tuple(w.shape for w in weights))
    if groups and groups[-1][0] == key:
      groups[-1][1].append(weights)
    else:
      groups.append((key, [weights], index))
  return [(key[0], [np.stack(ws) for ws in zip(*members)], start,
           start + len(members)) for key, members, start in groups]
