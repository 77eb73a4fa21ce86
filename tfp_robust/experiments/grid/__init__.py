"""The paper's Figure 4 grids: cells, shared trainings, executors, merge.

`cells` turns a grid config into cells and groups the cells that one
training serves (the shared-work plan); `runner` trains one group and
evaluates each of its cells into an atomic result file; `executors` run the
groups in process, as Ray tasks, or as one shard of many; `merge` builds
the table, and `answers` measures Figure 4's claims on it.
"""

from tfp_robust.experiments.grid import answers
from tfp_robust.experiments.grid import cells
from tfp_robust.experiments.grid import executors
from tfp_robust.experiments.grid import merge
from tfp_robust.experiments.grid import runner
