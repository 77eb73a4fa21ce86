"""Where the grid's units run: in process, on Ray, or one shard of many.

Every executor runs `runner.run_unit`, which is idempotent (finished cells
are skipped, results written atomically), so any of them can be killed and
started again, and shards can run on different machines against one shared
work directory:

- `in_process` (default): the units one after another; before a unit that
  is not done yet it checks how many memory maps the process holds (each
  unit's XLA programs add about 360 that are never released, and at the
  kernel's `vm.max_map_count` the next compilation fails and the process
  segfaults: seen at unit 97 of the CPU grid) and raises
  `RestartProcess` past half the limit, so that the binary starts itself
  again and resumes;
- `ray`: one Ray task per unit with its CPU request, retried when a worker
  dies (`pip install "tfp_robust[ray]"`; `ray.init()` locally, or an
  `address` for a cluster);
- `shard(units, index, count)`: every `count`-th unit from `index`, for a
  Slurm array or a Kubernetes indexed Job (`--shard_index`, `--num_shards`),
  with no engine at all.
"""

import time
from typing import List, Optional, Sequence

from absl import logging

from tfp_robust.core import validate
from tfp_robust.experiments.grid import cells as cells_lib
from tfp_robust.experiments.grid import runner

EXECUTORS = ('in_process', 'ray')


def shard(units: Sequence[cells_lib.Unit], index: int, count: int
          ) -> List[cells_lib.Unit]:
  """The units of shard `index` of `count` (round robin over the plan)."""
  count = validate.integer('--num_shards', count, 1)
  index = validate.integer('--shard_index', index, 0, count - 1,
                           fix='Shards are numbered 0 .. num_shards - 1.')
  return list(units[index::count])


# The share of `vm.max_map_count` past which `in_process` asks for a fresh
# process: half leaves room for a unit of any size (each takes well under
# 1% of the default 65,530).
MAX_MAP_FRACTION = 0.5


class RestartProcess(Exception):
  """The process should start again: it is near the kernel's map limit."""


def memory_map_use() -> Optional[float]:
  """This process's memory maps as a share of `vm.max_map_count`, or None
  where the kernel does not say (not Linux)."""
  try:
    with open('/proc/self/maps', 'rb') as maps:
      count = sum(1 for _ in maps)
    with open('/proc/sys/vm/max_map_count') as limit:
      return count / int(limit.read())
  except (OSError, ValueError):
    return None


def in_process(units: Sequence[cells_lib.Unit], grid_config, workdir: str,
               max_map_fraction: float = MAX_MAP_FRACTION):
  """The units one after another, in this process.

  Raises:
    RestartProcess: before a unit not done yet, when this process holds more
      than `max_map_fraction` of the kernel's memory-map limit; every unit
      finished so far is saved, so a new process resumes after it.
  """
  max_map_fraction = validate.number(
      '--max_map_fraction', max_map_fraction, 0.0, 1.0,
      fix='e.g. 0.5: a fresh process once half the limit is used.')
  start = time.time()
  for number, unit in enumerate(units):
    done = runner.is_done(workdir, grid_config, unit)
    use = None if done else memory_map_use()
    if use is not None and use > max_map_fraction:
      raise RestartProcess(
          f'this process holds {use:.0%} of the kernel\'s memory-map limit '
          f'(vm.max_map_count) after {number} of {len(units)} units; a new '
          'process resumes the grid where this one stopped')
    runner.run_unit(unit, grid_config, workdir)
    logging.info('Grid: unit %d/%d %s%s (%.1f min elapsed)', number + 1,
                 len(units), unit.name, ' (done earlier)' if done else '',
                 (time.time() - start) / 60)


def ray(units: Sequence[cells_lib.Unit], grid_config, workdir: str,
        address: Optional[str] = None, cpus_per_unit: float = 1.0,
        max_retries: int = 2):
  """One Ray task per unit not yet done; waits for all of them."""
  try:
    import ray as ray_lib  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ImportError('The Ray executor needs Ray: pip install '
                      '"tfp_robust[ray]" (or use --executor=in_process, or '
                      '--shard_index/--num_shards).') from error
  if not ray_lib.is_initialized():
    ray_lib.init(address=address, include_dashboard=False,
                 log_to_driver=False)
  task = ray_lib.remote(num_cpus=cpus_per_unit, max_retries=max_retries)(
      runner.run_unit)
  config = grid_config.to_dict() if hasattr(grid_config, 'to_dict') else (
      grid_config)
  pending = [task.remote(unit, _config_dict_to_config(config), workdir)
             for unit in units if not runner.is_done(workdir, grid_config,
                                                     unit)]
  logging.info('Grid on Ray: %d units submitted (%d done earlier).',
               len(pending), len(units) - len(pending))
  finished = 0
  while pending:
    ready, pending = ray_lib.wait(pending, num_returns=1)
    ray_lib.get(ready)
    finished += 1
    logging.info('Grid on Ray: %d units finished, %d running or queued.',
                 finished, len(pending))


def _config_dict_to_config(config):
  import ml_collections  # pylint: disable=g-import-not-at-top
  return ml_collections.ConfigDict(config)


def run(units, grid_config, workdir: str, executor: str = 'in_process',
        **options):
  """Runs `units` with the named executor."""
  validate.one_of('--executor', executor, EXECUTORS)
  if executor == 'ray':
    return ray(units, grid_config, workdir, **options)
  return in_process(units, grid_config, workdir, **options)
