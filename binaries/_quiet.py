"""Quiet stderr for the binaries: progress, not noise.

Imported first by every binary (it sits beside them, outside the package, so
that importing it imports no TensorFlow). It silences
TensorFlow's C++ start-up banner and CUDA probing (TF_CPP_MIN_LOG_LEVEL=2
unless the user set it) and drops, by their exact text, four warnings that
say nothing about the run:

- "triggered tf.function retracing": TensorFlow counts traces per code
  object, so the one compiled function each posterior ensemble builds for
  itself looks like retracing when several ensembles are evaluated;
- "casting an input of type complex64": `tfp.mcmc.effective_sample_size`
  takes the real part of an FFT, as intended;
- "`layer.add_variable` is deprecated": inside `tfp.layers`;
- "distutils Version classes are deprecated": inside TFP's import.

Everything else, warnings from our own code included, still shows.
"""

import logging
import os
import warnings

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

_NOISE = ('triggered tf.function retracing',
          'casting an input of type complex64')


class _DropNoise(logging.Filter):

  def filter(self, record):
    message = record.getMessage()
    return not any(text in message for text in _NOISE)


def install():
  """Adds the filters (idempotent)."""
  for name in ('tensorflow', 'absl', ''):
    logger = logging.getLogger(name)
    if not any(isinstance(f, _DropNoise) for f in logger.filters):
      logger.addFilter(_DropNoise())
  warnings.filterwarnings('ignore', message='`layer.add_variable` is '
                          'deprecated')
  warnings.filterwarnings('ignore', message='distutils Version classes are '
                          'deprecated')


install()
