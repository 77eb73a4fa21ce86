"""The Keras-backed posterior ensemble: a list of `tf_keras` models.

Any architecture (conv nets, batch norm, residual blocks): each model is one
sample, called in inference mode. A deep ensemble is the list of its
members; a single model is S = 1.
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from tfp_robust.ensemble import base

OUTPUTS = ('logits', 'probabilities')


def _ends_in_softmax(model) -> bool:
  last = model.layers[-1] if getattr(model, 'layers', None) else None
  activation = getattr(last, 'activation', None)
  return activation is tf_keras.activations.softmax or isinstance(
      last, tf_keras.layers.Softmax)


def _widest_output(model) -> int:
  widest = 1
  for layer in getattr(model, 'layers', []):
    try:
      shapes = layer.output_shape
    except (AttributeError, RuntimeError):
      continue
    shapes = shapes if isinstance(shapes, list) else [shapes]
    for shape in shapes:
      if shape and all(d is not None for d in shape[1:]):
        widest = max(widest, int(np.prod(shape[1:])))
  return widest


class KerasEnsemble(base.PosteriorEnsemble):
  """S `tf_keras` models of one input and output shape, averaged.

  Args:
    models: a `tf_keras.Model` or a list of them; each must be built, with a
      fully defined input shape and a `[B, C]` output.
    method: a name for reports.
    outputs: 'logits' (the default: the models return logits) or
      'probabilities' (they end in a softmax; the log is taken, which loses
      gradient wherever the softmax saturates to exactly 0 or 1 in float32:
      give logits where you can).
    call_kwargs: keyword arguments of every call; by default
      `{'training': False}` (batch norm uses its moving statistics, dropout
      is off).
    memory_budget_bytes: see `PosteriorEnsemble`.
    jit_compile: compile with XLA.

  Raises:
    ValueError: on an empty list, models of different input or output
      shapes, an output that is not floats `[B, C]` with C >= 2 (strings,
      booleans, integers, one column), or a model ending in a softmax with
      `outputs='logits'`.
  """

  def __init__(self, models, method: str = 'keras', outputs: str = 'logits',
               call_kwargs: Optional[dict] = None,
               memory_budget_bytes: int = base.DEFAULT_MEMORY_BUDGET_BYTES,
               jit_compile: Optional[bool] = None):
    super().__init__(method, memory_budget_bytes, jit_compile)
    if isinstance(models, tf_keras.Model):
      models = [models]
    models = list(models)
    if not models:
      raise ValueError('models must hold at least one tf_keras model.')
    if outputs not in OUTPUTS:
      raise ValueError(f'outputs must be one of {OUTPUTS}, got {outputs!r}.')
    shapes = set()
    for index, model in enumerate(models):
      if not isinstance(model, tf_keras.Model):
        raise ValueError(f'models[{index}] is a {type(model).__name__}, not a '
                         'tf_keras.Model (Keras 3 models are not supported: '
                         'build them with tf_keras).')
      try:
        in_shape, out_shape = model.input_shape, model.output_shape
      except (AttributeError, RuntimeError) as error:
        raise ValueError(f'models[{index}] is not built ({error}); call it '
                         'once or give it an Input layer.') from None
      if (not isinstance(in_shape, tuple) or None in in_shape[1:] or
          not isinstance(out_shape, tuple) or len(out_shape) != 2):
        raise ValueError(f'models[{index}] must map [B, *input_shape] (fully '
                         f'defined) to [B, C]; it maps {in_shape} to '
                         f'{out_shape}.')
      # Checked here, not in the first predict's autograph trace (issue 27).
      graph_outputs = getattr(model, 'outputs', None) or [None]
      out_dtype = tf.as_dtype(getattr(graph_outputs[0], 'dtype', None) or
                              tf.float32)
      if not out_dtype.is_floating or out_shape[-1] is None or int(
          out_shape[-1]) < 2:
        raise ValueError(
            f'models[{index}] must return {outputs} as floats [B, C] with C '
            f'>= 2 classes; it returns {out_dtype.name} {out_shape}. End it '
            'in a Dense(num_classes) layer (for one sigmoid logit z, return '
            '[0, z]).')
      if outputs == 'logits' and _ends_in_softmax(model):
        raise ValueError(f'models[{index}] ends in a softmax but outputs='
                         "'logits': a second softmax would be applied. Pass "
                         "outputs='probabilities', or better a model that "
                         'returns logits.')
      shapes.add((tuple(in_shape[1:]), int(out_shape[-1])))
    if len(shapes) != 1:
      raise ValueError(f'All models must share input and output shapes, got '
                       f'{sorted(shapes)}.')
    (self._input_shape, self._num_classes), = shapes
    self.models = models
    self.outputs = outputs
    self.call_kwargs = dict(call_kwargs if call_kwargs is not None
                            else {'training': False})
    self._widest = max(_widest_output(m) for m in models)

  @property
  def num_samples(self) -> int:
    return len(self.models)

  def activation_elements_per_example(self) -> int:
    return max(self._widest, int(np.prod(self._input_shape)))

  def chunk_log_probs(self, chunk, x):
    start, stop = chunk
    parts = []
    for model in self.models[start:stop]:
      out = tf.cast(model(x, **self.call_kwargs), tf.float32)
      parts.append(tf.math.log(out) if self.outputs == 'probabilities'
                   else tf.nn.log_softmax(out))
    return tf.stack(parts)

  def subset(self, indices: Sequence[int]) -> 'KerasEnsemble':
    return KerasEnsemble([self.models[int(i)] for i in indices], self.method,
                         self.outputs, self.call_kwargs,
                         self.memory_budget_bytes, self.jit_compile)
