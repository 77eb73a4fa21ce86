"""Shared pieces below everything: argument checks, files, locks, seeds, configs.

- `validate`: one message style for bad input (argument, value, fix).
- `files`: atomic writes, staging, untrusted reads, the code version.
- `locks`: one writer per directory; who owns a staging entry.
- `seeds`: stateless seeds.
- `xla`: the default of every `jit_compile` (off with $TFP_ROBUST_JIT_COMPILE=0).
- `config_lib`, `config_checks`: building blocks of configs/ and their checks.

Nothing here imports the rest of the package (config_checks imports the
modules whose settings it checks only inside its functions).
"""
