"""Stateless seeds: one conversion used by every sampling function."""

import numpy as np
import tensorflow as tf


def stateless_seed(seed) -> tf.Tensor:
  """An int (Python or numpy) or a pair as a stateless seed `[2]` int32.

  Raises:
    ValueError: for anything that is neither.
  """
  if isinstance(seed, (int, np.integer)):
    return tf.constant([int(seed), 0], tf.int32)
  seed = tf.convert_to_tensor(seed)
  if seed.dtype not in (tf.int32, tf.int64) or tuple(seed.shape) != (2,):
    raise ValueError('A seed must be an int or a pair of ints (a stateless '
                     f'seed of shape [2]), got {seed!r}.')
  return tf.cast(seed, tf.int32)
