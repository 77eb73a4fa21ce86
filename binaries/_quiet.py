"""Quiet stderr for the binaries: progress, not noise.

Imported first by every binary (it sits beside them, outside the package).
It silences TensorFlow's C++ start-up banner and CUDA probing
(TF_CPP_MIN_LOG_LEVEL=2 unless the user set it, and the lines TF 2.21 writes
before reading it, dropped by their text while TensorFlow is imported) and
drops, by their exact text, five messages that say nothing about the run:

- "triggered tf.function retracing": TensorFlow counts traces per code
  object, so the one compiled function each posterior ensemble builds for
  itself looks like retracing when several ensembles are evaluated;
- "casting an input of type complex64": `tfp.mcmc.effective_sample_size`
  takes the real part of an FFT, as intended;
- "`layer.add_variable` is deprecated": inside `tfp.layers`;
- "distutils Version classes are deprecated": inside TFP's import;
- "Sharding callback duration": logged by TensorFlow's checkpoint writer
  at every save.

Everything else, warnings from our own code included, still shows.
"""

import logging
import os
import warnings

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

_NOISE = ('triggered tf.function retracing',
          'casting an input of type complex64',
          'Sharding callback duration')


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


# TensorFlow 2.21 logs through absl's C++ logging before its own flags are
# read, so TF_CPP_MIN_LOG_LEVEL does not silence these start-up lines. They
# are dropped by their exact text while TensorFlow is imported and its
# devices are listed (which probes CUDA); every other line written to stderr
# meanwhile is passed on.
_STARTUP_NOISE = (
    'oneDNN custom operations are on',
    'Could not find cuda drivers on your machine',
    'All log messages before absl::InitializeLog() is called',
    'failed call to cuInit',
    'Unable to register cuDNN factory',
    'Unable to register cuFFT factory',
    'Unable to register cuBLAS factory',
    'computation placer already registered',
    'TF-TRT Warning: Could not find TensorRT',
    'This TensorFlow binary is optimized to use available CPU instructions',
    'To enable the following instructions',
)


def import_tensorflow_quietly():
  """Imports TensorFlow and lists its devices with start-up noise dropped."""
  import sys  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  if os.environ.get('TF_CPP_MIN_LOG_LEVEL') in ('0', '1'):
    return  # The user asked for TensorFlow's informational lines.
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode='w+b') as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      tf.config.list_physical_devices()
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
    captured.seek(0)
    kept = [line for line in captured.read().decode(errors='replace')
            .splitlines(keepends=True)
            if not any(text in line for text in _STARTUP_NOISE)]
  if kept:
    sys.stderr.write(''.join(kept))
    sys.stderr.flush()


def _clean_errors(kind, error, trace):
  """Bad input ends with its one-line message, not a traceback.

  Our checks raise ValueError (validate.InvalidArgument) or a file error whose
  message names the argument, the value and the fix (an OSError names the
  file: a missing --config file, a full disk); the traceback adds only noise
  for a user. TFP_ROBUST_TRACEBACK=1 shows it.
  """
  import sys  # pylint: disable=g-import-not-at-top
  import traceback  # pylint: disable=g-import-not-at-top
  if not os.environ.get('TFP_ROBUST_TRACEBACK'):
    if issubclass(kind, (ValueError, OSError)):
      sys.stderr.write(f'Error: {error}\n')
      sys.stderr.flush()
      return
    files = [frame.filename for frame in traceback.extract_tb(trace)]
    if (issubclass(kind, (AttributeError, KeyError)) and
        any('config_flags' in name for name in files)):
      # ml_collections refusing a --config.<field>=... override of a field
      # the config file does not define.
      text = str(error.args[0]) if error.args else str(error)
      # ml_collections hands over a repr: unescape its quotes and newlines.
      text = text.strip("'").replace('\\n', '\n').replace("\\'", "'")
      lines = [line.strip().strip('\'"') for line in text.splitlines()]
      hint = f' {lines[1]}' if len(lines) > 1 else ''
      sys.stderr.write(
          f'Error: a --config override names {lines[0]!r}, a field the config '
          'file does not define (a typo, or a setting this config does not '
          f'expose).{hint}\n')
      sys.stderr.flush()
      return
  _previous_hook(kind, error, trace)


def install_error_hook():
  import sys  # pylint: disable=g-import-not-at-top
  global _previous_hook
  if sys.excepthook is not _clean_errors:
    _previous_hook = sys.excepthook
    sys.excepthook = _clean_errors


_previous_hook = None
install()
install_error_hook()
import_tensorflow_quietly()
