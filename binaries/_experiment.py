"""The flags and the start that the experiment binaries share.

Imported (after `_quiet`) by attack.py, ablation.py, curves.py and
gradients.py: --config, --workdir, --methods and --train_missing mean the
same in each, and `start()` runs the same checks before any work. Nothing
here imports TensorFlow until the flags and the config have passed their
checks.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from tfp_robust.core import config_checks
from tfp_robust.core import files
from tfp_robust.core import locks
from tfp_robust.core import validate

CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config (file:variant); --print_config lists '
    'its fields, each settable as --config.<field>=<value>.')
WORKDIR = flags.DEFINE_string('workdir', 'workdir', 'Output directory.')
METHODS = flags.DEFINE_list('methods', None,
                            'Methods to evaluate (default: the config\'s).')
TRAIN_MISSING = flags.DEFINE_bool(
    'train_missing', True, 'Train (with the same config) any method that has '
    'no saved ensemble in --workdir yet, so one command gives the result.')
flags.mark_flags_as_required(['config'])


def start():
  """Checks config, methods and work directory, claims the directory and
  trains what is missing. Returns (config, methods, workdir).

  The checks import no TensorFlow (a typo is answered in a second); the
  training, and the checks that need TensorFlow, come after them.
  """
  config, workdir = CONFIG.value, WORKDIR.value
  methods = METHODS.value or list(config.methods)
  config_checks.check_run(config, methods, workdir)
  locks.start_run(workdir)  # One run per work directory.
  # pylint: disable=g-import-not-at-top  # Heavy: after the checks.
  from tfp_robust.fit import fitting
  fitting.check_config(config, methods)  # The fit layer's rules too.
  if TRAIN_MISSING.value:
    fitting.ensure_trained(config, methods, workdir)
  return config, methods, workdir


def evidence_version(flag: str, directory):
  """Before any work, for a binary asked to write a claim folder
  (`--evidence_dir`): the folder is usable and the checkout committed.
  Returns the code version to record (read now, when the run starts), or
  None without a folder."""
  if not directory:
    return None
  validate.workdir(flag, directory)
  version = files.code_version()
  if version.endswith('+dirty'):
    raise app.UsageError(
        f'{flag} needs a committed checkout; this one is {version} (commit '
        'or stash the changes first).')
  return version
