"""Grid cells and the plan that shares one training between many cells.

A cell is one network of Figure 4: a method (hmc, sgd, vi), a dataset and a
value on every axis of that method's grid (the paper's Tables 5, 6 and 7).
Cells that differ only along a *prefix* axis are read off one training:

- HMC, `num_samples`: 250 and 500 samples are the first samples of the
  750-sample chain (kept samples are ordered step by step, chains
  interleaved, and each checkpointed segment has its own seed, so the first
  n samples of a long run are the samples of a run of length n);
- SGD and VI, `epochs`: the net after 3 epochs of a 15-epoch run is the net
  a 3-epoch run ends with (same seed, same shuffles, same optimiser state).

`plan(cells)` returns the trainings ("units") and `counts` compares them
with the naive count of one training per cell.
"""

import dataclasses
import hashlib
import itertools
import json
from typing import Dict, List, Sequence, Tuple

# The axis each method shares along, and the axes of its grid.
PREFIX_AXIS = {'hmc': 'num_samples', 'sgd': 'epochs', 'vi': 'epochs'}
AXES = {
    'hmc': ('num_samples', 'step_size', 'num_leapfrog_steps', 'hidden',
            'activation', 'depth'),
    'sgd': ('batch_size', 'hidden', 'activation', 'depth', 'epochs',
            'learning_rate'),
    'vi': ('learning_rate', 'hidden', 'activation', 'depth', 'epochs'),
}


@dataclasses.dataclass(frozen=True)
class Cell:
  """One network of the grid: method, dataset and its hyperparameters."""
  method: str
  dataset: str
  values: Tuple[Tuple[str, object], ...]

  @property
  def params(self) -> Dict[str, object]:
    return dict(self.values)

  @property
  def name(self) -> str:
    parts = [self.method, self.dataset] + [f'{k}{v}' for k, v in self.values]
    return '-'.join(str(p) for p in parts)


@dataclasses.dataclass(frozen=True)
class Unit:
  """One training serving `cells`, which differ only along the prefix axis."""
  method: str
  dataset: str
  shared: Tuple[Tuple[str, object], ...]
  cells: Tuple[Cell, ...]

  @property
  def prefix_values(self) -> List:
    axis = PREFIX_AXIS[self.method]
    return sorted(c.params[axis] for c in self.cells)

  @property
  def name(self) -> str:
    text = json.dumps([self.method, self.dataset, list(self.shared)],
                      sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    readable = '-'.join(f'{k}{v}' for k, v in self.shared)
    return f'{self.method}-{self.dataset}-{readable}-{digest}'


def grid_cells(grid_config, datasets: Sequence[str],
               methods: Sequence[str]) -> List[Cell]:
  """Every cell of the config's grids: the product of each method's axes.

  Args:
    grid_config: a config with one section per method (`hmc`, `sgd`, `vi`)
      holding a tuple of values per axis of `AXES[method]`.
    datasets: the datasets to run the grid on.
    methods: the methods (sections) to include.
  """
  cells = []
  for dataset in datasets:
    for method in methods:
      section = grid_config[method]
      axes = AXES[method]
      missing = [a for a in axes if a not in section]
      if missing:
        raise ValueError(f'The {method} grid needs values for {missing}.')
      for combination in itertools.product(*(tuple(section[a]) for a in axes)):
        cells.append(Cell(method, dataset, tuple(zip(axes, combination))))
  return cells


def plan(cells: Sequence[Cell]) -> List[Unit]:
  """Groups the cells one training serves, in a stable order."""
  groups: Dict[Tuple, List[Cell]] = {}
  for cell in cells:
    axis = PREFIX_AXIS[cell.method]
    shared = tuple((k, v) for k, v in cell.values if k != axis)
    groups.setdefault((cell.method, cell.dataset, shared), []).append(cell)
  units = [Unit(method, dataset, shared, tuple(
      sorted(group, key=lambda c: c.params[PREFIX_AXIS[method]])))
           for (method, dataset, shared), group in groups.items()]
  return sorted(units, key=lambda u: u.name)


def counts(cells: Sequence[Cell]) -> Dict[str, Dict[str, int]]:
  """Trainings needed per method: one per cell, against one per unit."""
  result = {}
  units = plan(cells)
  for method in sorted({c.method for c in cells}):
    result[method] = {
        'cells': sum(1 for c in cells if c.method == method),
        'trainings_shared': sum(1 for u in units if u.method == method)}
  result['total'] = {k: sum(v[k] for v in result.values())
                     for k in ('cells', 'trainings_shared')}
  return result
