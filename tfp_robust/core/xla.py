"""The default of every `jit_compile` setting (XLA compilation).

Compiled hot paths are the package's default (`jit_compile=True` in
`HMCConfig` and the ensembles that compile). The environment variable
`TFP_ROBUST_JIT_COMPILE=0` turns that default off for a whole process and
its children; the test suite sets it, because compiling a tiny chain or
attack takes seconds that running it does not (one test per compiled path
passes `jit_compile=True` itself). An explicit `jit_compile=` always wins.
"""

import os

VARIABLE = 'TFP_ROBUST_JIT_COMPILE'


def default() -> bool:
  """False when `$TFP_ROBUST_JIT_COMPILE` is '0' or 'false', else True."""
  value = os.environ.get(VARIABLE, '1').strip().lower()
  if value not in ('0', '1', 'false', 'true', ''):
    raise ValueError(f'${VARIABLE}={value!r} is invalid; use 0 or 1 (or '
                     'unset it: XLA on).')
  return value not in ('0', 'false')
