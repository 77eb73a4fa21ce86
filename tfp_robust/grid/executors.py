"""Where the grid's units run: in process, on Ray, or one shard of many.

Every executor runs `runner.run_unit`, which is idempotent (finished cells
are skipped, results written atomically), so any of them can be killed and
started again, and shards can run on different machines against one shared
work directory:

- `in_process` (default): the units one after another;
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

from tfp_robust import validate
from tfp_robust.grid import cells as cells_lib
from tfp_robust.grid import runner

EXECUTORS = ('in_process', 'ray')


def shard(units: Sequence[cells_lib.Unit], index: int, count: int
          ) -> List[cells_lib.Unit]:
  """The units of shard `index` of `count` (round robin over the plan)."""
  count = validate.integer('--num_shards', count, 1)
  index = validate.integer('--shard_index', index, 0, count - 1,
                           fix='Shards are numbered 0 .. num_shards - 1.')
  return list(units[index::count])


def in_process(units: Sequence[cells_lib.Unit], grid_config, workdir: str):
  start = time.time()
  for number, unit in enumerate(units):
    done = runner.is_done(workdir, grid_config, unit)
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
  return in_process(units, grid_config, workdir)
