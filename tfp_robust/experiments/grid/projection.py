"""What a grid costs at scale: its work counted per unit, priced by measured rates.

The paper's Figure 4 grids cannot run on one 2-core machine, so their cost is
projected. Each training unit of the shared-work plan (`cells.plan`) is
counted in the units its cost grows with, and priced by rates measured on
this machine (`measure_rates`):

- HMC: leapfrog steps of its chains on the full training set
  (`L * (burn_in + longest chain)`), at the measured seconds per leapfrog
  step of that net (the log-joint is a sum over the data, so the rate is
  measured on a fraction and scaled linearly; `measure_rates` reports the
  fraction);
- SGD and VI: epochs of the longest run, at the measured seconds per epoch
  of that net and batch size (the slope between a 1-epoch and an 11-epoch
  run, so model building and compilation are not counted per epoch, and
  one fixed cost per training is added);
- every cell's evaluation: its protocols on `num_points` images with its
  number of samples, at the measured seconds per (sample x image) of that
  net (the attack loop is compute-bound and linear in both).

`project` sums them per unit and schedules the units on N workers, longest
first (LPT): the wall time is at least the longest unit, whatever N.
"""

import dataclasses
import heapq
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from tfp_robust.experiments.grid import cells as cells_lib

# A net as the rates see it: (hidden, depth, activation).
NetKey = Tuple[int, int, str]


def net_key(params: Dict) -> NetKey:
  return int(params['hidden']), int(params['depth']), str(params['activation'])


@dataclasses.dataclass(frozen=True)
class UnitWork:
  """One unit's work in countable units (see the module docstring)."""
  name: str
  method: str
  net: NetKey
  batch_size: int            # SGD / VI: the batch size; HMC: 0.
  leapfrog_steps: int        # HMC: leapfrog steps of all chains together.
  epochs: int                # SGD / VI: epochs of the longest run.
  attacked_sample_images: Tuple[Tuple[str, int], ...]  # (protocol, S * P).


def unit_work(unit: cells_lib.Unit, grid_config) -> UnitWork:
  """Counts a unit's training and its cells' evaluations."""
  params = dict(unit.shared)
  training = grid_config.training
  attack = grid_config.attack
  points = int(attack.num_points)
  wanted = unit.prefix_values
  leapfrog_steps = epochs = batch_size = 0
  if unit.method == 'hmc':
    chains = int(training.hmc_num_chains)
    longest = max(-(-int(n) // chains) for n in wanted)
    leapfrog_steps = int(params['num_leapfrog_steps']) * (
        int(training.hmc_burn_in) + longest)
    samples = [min(int(n), int(attack.num_samples)) for n in wanted]
  else:
    epochs = int(max(wanted))
    batch_size = int(params['batch_size'] if unit.method == 'sgd'
                     else training.vi_batch_size)
    per_cell = (1 if unit.method == 'sgd' else
                min(int(training.vi_num_samples), int(attack.num_samples)))
    samples = [per_cell] * len(unit.cells)
  protocols = tuple(grid_config.get('protocols', ('paper',)))
  attacked = tuple((p, sum(s * points for s in samples)) for p in protocols)
  return UnitWork(unit.name, unit.method, net_key(params), batch_size,
                  leapfrog_steps, epochs, attacked)


@dataclasses.dataclass
class Rates:
  """Measured prices; each dict keyed as `UnitWork` needs it."""
  leapfrog_seconds: Dict[NetKey, float]                 # HMC, all chains.
  epoch_seconds: Dict[Tuple[str, NetKey, int], float]   # (method, net, batch).
  training_fixed_seconds: Dict[Tuple[str, NetKey, int], float]
  attack_seconds: Dict[Tuple[str, NetKey], float]       # (protocol, net): per S*P.


def unit_seconds(work: UnitWork, rates: Rates) -> Dict[str, float]:
  if work.method == 'hmc':
    train = work.leapfrog_steps * rates.leapfrog_seconds[work.net]
  else:
    key = (work.method, work.net, work.batch_size)
    train = (work.epochs * rates.epoch_seconds[key] +
             rates.training_fixed_seconds[key])
  attack = sum(n * rates.attack_seconds[(protocol, work.net)]
               for protocol, n in work.attacked_sample_images)
  return {'train': train, 'attack': attack}


def makespan(durations: Iterable[float], num_workers: int) -> float:
  """Wall time of independent jobs on `num_workers`, longest job first."""
  if num_workers < 1:
    raise ValueError(f'num_workers must be >= 1, got {num_workers}.')
  loads = [0.0] * num_workers
  heapq.heapify(loads)
  for duration in sorted(durations, reverse=True):
    heapq.heappush(loads, heapq.heappop(loads) + float(duration))
  return max(loads)


def project(works: Sequence[UnitWork], rates: Rates,
            num_workers: Sequence[int] = (1, 8, 32, 128)) -> Dict:
  """Hours per method, in all, and on N workers like this machine."""
  seconds = [unit_seconds(w, rates) for w in works]
  result = {'units': len(works)}
  for method in sorted({w.method for w in works}):
    mine = [s for w, s in zip(works, seconds) if w.method == method]
    result[method] = {
        'units': len(mine),
        'train_hours': sum(s['train'] for s in mine) / 3600,
        'attack_hours': sum(s['attack'] for s in mine) / 3600,
        'longest_unit_hours': max(s['train'] + s['attack'] for s in mine) / 3600}
  totals = [s['train'] + s['attack'] for s in seconds]
  result['total_hours'] = sum(totals) / 3600
  result['longest_unit_hours'] = max(totals) / 3600
  result['wall_hours_on_workers'] = {
      int(n): makespan(totals, int(n)) / 3600 for n in num_workers}
  return result


def _slope_seconds(run: Callable[[int], None], small: int, large: int
                   ) -> Tuple[float, float]:
  """(seconds per unit of the argument, fixed seconds) from two timed runs."""
  times = []
  for n in (small, large):
    start = time.perf_counter()
    run(n)
    times.append(time.perf_counter() - start)
  per_unit = max(times[1] - times[0], 0.0) / (large - small)
  return per_unit, max(times[0] - small * per_unit, 0.0)


def measure_rates(works: Sequence[UnitWork], grid_config, x_train, y_train,
                  hmc_fraction: float = 0.1, epoch_images: int = 6000,
                  timed_epochs: Tuple[int, int] = (1, 11),
                  attack_samples: int = 10, attack_points: int = 50,
                  reference_activation: Optional[str] = None,
                  log: Callable[[str], None] = print) -> Tuple[Rates, Dict]:
  """Measures every rate `works` needs on this machine.

  Args:
    works: the units (`unit_work`) whose nets and batch sizes are measured.
    grid_config: the grid's config (training and attack sections).
    x_train, y_train: the full training set the projection is for.
    hmc_fraction: share of the training set the leapfrog cost is timed on
      (scaled linearly to the whole set).
    epoch_images: images of the timed SGD / VI epochs (scaled to the set).
    timed_epochs: the two run lengths whose time difference gives the cost
      of an epoch (far apart: the first epoch of each run compiles, and its
      time varies by more than a short epoch takes).
    attack_samples, attack_points: the ensemble and batch the evaluation
      is timed on (scaled linearly in samples x images).
    reference_activation: if set, each (hidden, depth) is measured with
      this activation only and its rates stand for every activation (a
      third of the measurements for the paper's grids; the activation
      changes elementwise work only, next to matmuls over 60k images).
    log: progress output.

  Returns:
    `(rates, facts)`: facts records the measurement sizes.
  """
  num_train = len(x_train)
  input_dim = int(np.prod(x_train.shape[1:]))
  num_classes = int(np.max(y_train)) + 1

  def arch(net: NetKey):
    # Imported here: the projection's arithmetic needs no TensorFlow.
    from tfp_robust import networks  # pylint: disable=g-import-not-at-top
    hidden, depth, activation = net
    return networks.Architecture.mlp(input_dim, [hidden] * depth, num_classes,
                                     activation)

  works_all = works
  if reference_activation is not None:
    works = [dataclasses.replace(w, net=w.net[:2] + (reference_activation,))
             for w in works]
  rates = Rates({}, {}, {}, {})
  count = max(1, int(round(num_train * hmc_fraction)))
  _measure_leapfrogs(rates, works, grid_config, x_train[:count],
                     y_train[:count], num_train, num_classes, log)
  _measure_epochs(rates, works, arch, x_train, y_train, epoch_images,
                  timed_epochs, log)
  _measure_attacks(rates, works, arch, grid_config, x_train[-attack_points:],
                   attack_samples, log)
  if reference_activation is not None:
    _for_every_activation(rates, sorted({w.net[2] for w in works_all}))
  facts = dict(num_train=num_train, hmc_timed_images=count,
               reference_activation=reference_activation,
               epoch_timed_images=epoch_images, attack_samples=attack_samples,
               attack_points=attack_points)
  return rates, facts


def _measure_leapfrogs(rates: Rates, works, grid_config, x, y,
                       num_train: int, num_classes: int, log) -> None:
  """Seconds per leapfrog step of each HMC net on `x` (all chains), scaled
  linearly to `num_train` images."""
  from tfp_robust.experiments import benchmarks  # pylint: disable=g-import-not-at-top
  for net in sorted({w.net for w in works if w.method == 'hmc'}):
    cost = benchmarks.hmc_leapfrog_cost(
        x, y, hidden=(net[0],) * net[1],
        num_chains=int(grid_config.training.hmc_num_chains),
        num_leapfrog_steps=2, num_classes=num_classes, activation=net[2],
        repeats=2)
    rates.leapfrog_seconds[net] = cost['leapfrog_seconds'] * num_train / len(x)
    log(f'HMC {net}: {rates.leapfrog_seconds[net]:.3f} s per leapfrog step '
        f'on {num_train} images')


def _measure_epochs(rates: Rates, works, arch, x_train, y_train,
                    epoch_images: int, timed_epochs, log) -> None:
  """Seconds per SGD / VI epoch (scaled to the whole training set) and the
  fixed cost of a training, from two run lengths."""
  # pylint: disable=g-import-not-at-top  # Heavy, and only here.
  from tfp_robust.fit import models
  from tfp_robust.fit import vi
  num_train = len(x_train)
  for method, net, batch_size in sorted({(w.method, w.net, w.batch_size)
                                         for w in works
                                         if w.method in ('sgd', 'vi')}):
    # At least 8 batches per timed epoch.
    x_epoch = x_train[:max(epoch_images, 8 * batch_size)]
    y_epoch = y_train[:len(x_epoch)]

    def run(epochs, method=method, net=net, batch_size=batch_size,
            x_epoch=x_epoch, y_epoch=y_epoch):
      config = models.TrainConfig(epochs=epochs, batch_size=batch_size,
                                  learning_rate=1e-3, seed=0)
      if method == 'vi':
        vi.train(arch(net), x_epoch, y_epoch, config)
      else:
        models.train_deterministic(arch(net), x_epoch, y_epoch, config)
    per_epoch, fixed = _slope_seconds(run, *timed_epochs)
    key = (method, net, batch_size)
    rates.epoch_seconds[key] = per_epoch * num_train / len(x_epoch)
    rates.training_fixed_seconds[key] = fixed
    log(f'{method} {net} batch {batch_size}: '
        f'{rates.epoch_seconds[key]:.2f} s per epoch on {num_train} images')


def _measure_attacks(rates: Rates, works, arch, grid_config, x_test,
                     attack_samples: int, log) -> None:
  """Seconds of each protocol's evaluation per sample and image, on a random
  ensemble of `attack_samples` samples and the images `x_test`."""
  # pylint: disable=g-import-not-at-top  # Heavy, and only here.
  from tfp_robust.evaluation import protocols as protocols_lib
  from tfp_robust.experiments import benchmarks
  attack_points = len(x_test)
  for protocol, net in sorted({(p, w.net) for w in works
                               for p, _ in w.attacked_sample_images}):
    ensemble = benchmarks.random_ensemble(arch(net), attack_samples)
    # Labels the nets get right, so that the strong protocol's later runs
    # (on the images still standing) have images to work on.
    labels = np.asarray(ensemble.predict(x_test))
    settings = grid_config.attack.copy_and_resolve_references()
    settings.protocol = protocol
    # The first call compiles (the grid compiles once per unit too, which
    # `unit_seconds` does not count); the second is timed.
    protocols_lib.evaluate(ensemble, x_test, labels, settings,
                           certified=False)
    start = time.perf_counter()
    protocols_lib.evaluate(ensemble, x_test, labels, settings,
                           certified=False)
    seconds = time.perf_counter() - start
    rates.attack_seconds[(protocol, net)] = seconds / (
        attack_samples * attack_points)
    log(f'{protocol} protocol {net}: {seconds:.1f} s for {attack_samples} '
        f'samples x {attack_points} images')


def _for_every_activation(rates: Rates, activations: Sequence[str]) -> None:
  """Each measured (hidden, depth) stands for every activation of the grid."""
  rates.leapfrog_seconds = {
      key[:2] + (a,): value for key, value in rates.leapfrog_seconds.items()
      for a in activations}
  for name in ('epoch_seconds', 'training_fixed_seconds', 'attack_seconds'):
    table = getattr(rates, name)
    setattr(rates, name, {
        key[:1] + (key[1][:2] + (a,),) + key[2:]: value
        for key, value in table.items() for a in activations})


def grid_works(grid_config, dataset: str,
               methods: Sequence[str]) -> List[UnitWork]:
  cells = cells_lib.grid_cells(grid_config, [dataset], methods)
  return [unit_work(u, grid_config) for u in cells_lib.plan(cells)]
