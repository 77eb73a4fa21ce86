"""Quiet stderr for the binaries: progress, not noise; and --print_config.

Imported first by every binary (it sits beside them, outside the package).
It imports no TensorFlow itself: it installs an import hook that makes the
first `import tensorflow`, wherever it happens, quiet (the binaries import
the heavy modules only after checking their flags and config). It defines
`--print_config`, which every binary answers after flag parsing and before
`main`: the resolved config (the file, its variant and every
`--config.<field>=...` override applied), one `--config.<field>=<value>`
line per field, and the binary's own flags, then exit 0, TensorFlow never
imported.

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

import importlib.abc
import importlib.util
import logging
import os
import shlex
import sys
import warnings

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

_NOISE = ('triggered tf.function retracing',
          'casting an input of type complex64',
          'Sharding callback duration')


_LIBRARY_LOGGERS = ('matplotlib', 'arviz', 'arviz_base', 'arviz_stats',
                    'PIL')


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
  # Libraries that log their own start-up at INFO (matplotlib's backend
  # search, ArviZ's shape checks on short chains): warnings and up only.
  for name in _LIBRARY_LOGGERS:
    logging.getLogger(name).setLevel(logging.WARNING)
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


class _DropStartupNoise:
  """Holds fd 2 in a file while TensorFlow starts; passes on all but noise."""

  def __enter__(self):
    import tempfile  # pylint: disable=g-import-not-at-top
    sys.stderr.flush()
    self._saved = os.dup(2)
    self._captured = tempfile.TemporaryFile(mode='w+b')
    os.dup2(self._captured.fileno(), 2)
    return self

  def __exit__(self, *unused):
    sys.stderr.flush()
    os.dup2(self._saved, 2)
    os.close(self._saved)
    self._captured.seek(0)
    kept = [line for line in self._captured.read().decode(errors='replace')
            .splitlines(keepends=True)
            if not any(text in line for text in _STARTUP_NOISE)]
    self._captured.close()
    if kept:
      sys.stderr.write(''.join(kept))
      sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
  """TensorFlow's own loader, run with the start-up noise dropped; its
  devices are listed at once (that probes CUDA, and logs while doing so)."""

  def __init__(self, loader):
    self._loader = loader

  def __getattr__(self, name):
    return getattr(self._loader, name)

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    with _DropStartupNoise():
      self._loader.exec_module(module)
      module.config.list_physical_devices()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
  """Makes the first `import tensorflow` (wherever it happens) quiet."""

  def find_spec(self, name, path=None, target=None):
    del path, target
    if name != 'tensorflow':
      return None
    sys.meta_path.remove(self)  # Once; and find the real spec without us.
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.loader is not None:
      spec.loader = _QuietLoader(spec.loader)
    return spec


def quiet_tensorflow_import():
  """Installs the hook, unless TensorFlow is in already or the user asked
  for its informational lines (TF_CPP_MIN_LOG_LEVEL=0 or 1)."""
  if 'tensorflow' in sys.modules or os.environ.get(
      'TF_CPP_MIN_LOG_LEVEL') in ('0', '1'):
    return
  if not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlowImport())


PRINT_CONFIG = flags.DEFINE_bool(
    'print_config', False,
    'Print the resolved config (the --config file and variant with every '
    '--config.<field>=<value> override applied), one --config.<field>=<value> '
    'line per field, and this binary\'s other flags; then exit, before '
    'TensorFlow is imported or data loaded. This is the list of fields '
    '--config.<field>=... can set (--helpfull does not show them).')


def _shown(value):
  """A value as it is written on the command line."""
  if isinstance(value, str):
    return shlex.quote(value) if value else "''"
  if isinstance(value, (tuple, list)):
    text = repr(tuple(value))
    # Double quotes read best ("('a', 'b')") where the shell leaves them be.
    return f'"{text}"' if not set(text) & set('"$`\\!') else shlex.quote(text)
  return str(value)


def config_lines(config, prefix='--config'):
  """`--config.<field>=<value>` for every field of a (nested) ConfigDict."""
  lines = []
  for key, value in sorted(config.items()):
    if hasattr(value, 'items') and not isinstance(value, dict):
      lines += config_lines(value, f'{prefix}.{key}')
    else:
      lines.append(f'{prefix}.{key}={_shown(value)}')
  return lines


def print_config_text() -> str:
  """What --print_config prints: the config's fields and the binary's flags."""
  lines = []
  if 'config' in flags.FLAGS and flags.FLAGS['config'].value is not None:
    flag = flags.FLAGS['config']
    source = os.path.normpath(getattr(flag, 'config_filename', None) or
                              flag.serialize())
    lines.append(f'# The config {source}, with the overrides given; set any '
                 'field with --config.<field>=<value>.')
    lines += config_lines(flag.value)
  by_module = flags.FLAGS.flags_by_module_dict()
  own = [f for module in (sys.argv[0], '_experiment')
         for f in by_module.get(module, ()) if f.name != 'config']
  if own:
    lines.append('# Flags of this binary:' if lines else
                 '# This binary takes no --config; its flags:')
    lines += sorted(f.serialize() or f'# --{f.name} (not set)' for f in own)
  return '\n'.join(lines)


def _print_config_and_exit():
  if PRINT_CONFIG.value:
    try:
      print(print_config_text())
      sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has what it wanted.
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


def _clean_errors(kind, error, trace):
  """Bad input ends with its one-line message, not a traceback.

  Our checks raise ValueError (validate.InvalidArgument) or a file error whose
  message names the argument, the value and the fix (an OSError names the
  file: a missing --config file, a full disk); the traceback adds only noise
  for a user. TFP_ROBUST_TRACEBACK=1 shows it.
  """
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
          f'expose).{hint} --print_config lists the fields it defines.\n')
      sys.stderr.flush()
      return
  _previous_hook(kind, error, trace)


def install_error_hook():
  global _previous_hook
  if sys.excepthook is not _clean_errors:
    _previous_hook = sys.excepthook
    sys.excepthook = _clean_errors


_previous_hook = None
install()
install_error_hook()
quiet_tensorflow_import()
app.call_after_init(_print_config_and_exit)
