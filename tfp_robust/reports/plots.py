"""Figures (matplotlib, Agg backend): the paper's Figure 1 and friends."""

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib import ticker  # pylint: disable=g-import-not-at-top
import numpy as np


def gradient_components_by_width(cells, title='Expected loss gradients'):
  """Figure 1: expected-gradient components, one panel per hidden width.

  Args:
    cells: dicts with `hidden`, `num_train`, `warmup` and `components`, an
      array `[num_points, 2]` of the expected gradient at each test point.
    title: figure title.

  Returns:
    A matplotlib figure: x is the number of training points (jittered by
    warm-up length), y the gradient component; both partial derivatives are
    shown, as in the paper.
  """
  widths = sorted({c['hidden'] for c in cells})
  sizes = sorted({c['num_train'] for c in cells})
  warmups = sorted({c['warmup'] for c in cells})
  figure, axes = plt.subplots(1, max(1, len(widths)),
                              figsize=(3.2 * max(1, len(widths)), 3.4),
                              sharey=True, squeeze=False)
  colours = plt.cm.viridis(np.linspace(0.1, 0.9, max(1, len(warmups))))
  for axis, width in zip(axes[0], widths):
    for cell in (c for c in cells if c['hidden'] == width):
      position = sizes.index(cell['num_train'])
      offset = 0.25 * (warmups.index(cell['warmup']) - (len(warmups) - 1) / 2)
      values = np.asarray(cell['components']).reshape(-1)
      jitter = np.random.RandomState(0).uniform(-0.06, 0.06, values.shape)
      axis.scatter(position + offset + jitter, values, s=3, alpha=0.5,
                   color=colours[warmups.index(cell['warmup'])],
                   label=f"warm-up {cell['warmup']}")
    axis.axhline(0.0, color='black', linewidth=0.5)
    axis.set_xticks(range(len(sizes)))
    axis.set_xticklabels([str(s) for s in sizes])
    axis.set_xlabel('training points')
    axis.set_title(f'hidden {width}')
  axes[0][0].set_ylabel('expected gradient component')
  handles, labels = axes[0][0].get_legend_handles_labels()
  unique = dict(zip(labels, handles))
  if unique:
    axes[0][-1].legend(unique.values(), unique.keys(), fontsize=7,
                       loc='upper right', markerscale=3)
  figure.suptitle(title)
  figure.tight_layout()
  return figure


def gradient_components_by_model(components, title,
                                 loss='expected cross-entropy (Eq. 2)',
                                 where='the clean test points (eps = 0)',
                                 coordinate_names=None):
  """Strip plot of expected-gradient components, per model and coordinate.

  Args:
    components: dict model name -> gradients `[N, D]` (one row per input,
      D input coordinates), or any array whose last axis is the coordinate.
    title: figure title (first line); a second line names the loss and where
      the gradient is taken.
    loss: the loss whose input gradient is plotted.
    where: the inputs the gradient is taken at (and so the eps: 0 for the
      clean points).
    coordinate_names: names of the D coordinates (default `x1`, `x2`, ...);
      with more than 4 coordinates, all are pooled into one column.

  Returns:
    A matplotlib figure: one column per model and coordinate, the y axis
    the gradient of `loss` with respect to that input coordinate.
  """
  names = list(components)
  arrays = {n: np.asarray(components[n]) for n in names}
  width = arrays[names[0]].shape[-1] if arrays[names[0]].ndim > 1 else 1
  pooled = width > 4
  if coordinate_names is None:
    coordinate_names = [f'x{j + 1}' for j in range(width)]
  columns = ['all coordinates'] if pooled else list(coordinate_names)
  figure, axis = plt.subplots(
      figsize=(max(4.0, 1.4 * len(names) * len(columns) + 1.5), 4.0))
  rng = np.random.RandomState(0)
  spread = 0.8 / len(columns)
  for index, name in enumerate(names):
    values = arrays[name].reshape(-1, 1 if pooled else width)
    for j, column in enumerate(columns):
      where_x = index + (j - (len(columns) - 1) / 2) * spread
      axis.scatter(where_x + rng.uniform(-spread / 3, spread / 3,
                                         len(values)), values[:, j], s=4, alpha=0.5, color=f'C{j}',
                   label=column if index == 0 else None)
  axis.axhline(0.0, color='black', linewidth=0.5)
  axis.set_xticks(range(len(names)))
  axis.set_xticklabels(names)
  axis.set_xlabel('model')
  axis.set_ylabel(f'd loss / d input coordinate\n(loss: {loss})')
  axis.set_title(f'{title}\nloss: {loss}; gradient at {where}', fontsize=10)
  axis.legend(title='input coordinate', fontsize=8, loc='best')
  figure.tight_layout()
  return figure


def decision_regions(ensembles, x, y, title='Predictive probability',
                     adversarial=None, eps=None):
  """Predictive probability of class 1 over the data's square, per model.

  Test points are drawn over the background by correctness (white if the
  model classifies them correctly, yellow if not; circles class 0, squares
  class 1); adversarial points, if given, as black crosses joined to the
  point they came from, filled red where the attack flipped the prediction.

  Args:
    ensembles: dict name -> posterior ensemble with 2-D inputs.
    x: test inputs `[N, 2]`.
    y: test labels `[N]`.
    title: figure title.
    adversarial: optional dict name -> `(indices, x_adv)`: adversarial
      versions of the test points `x[indices]`.
    eps: the attack's radius, for the legend.

  Returns:
    A matplotlib figure.
  """
  adversarial = adversarial or {}
  low = np.maximum(x.min(axis=0) - 0.05, 0.0)
  high = np.minimum(x.max(axis=0) + 0.05, 1.0)
  size = 120
  u, v = np.meshgrid(np.linspace(low[0], high[0], size),
                     np.linspace(low[1], high[1], size))
  grid = np.stack([u, v], -1).reshape(-1, 2).astype(np.float32)
  names = list(ensembles)
  figure, axes = plt.subplots(1, len(names), figsize=(3.9 * len(names), 3.9),
                              squeeze=False)
  for axis, name in zip(axes[0], names):
    ensemble = ensembles[name]
    probs = np.exp(ensemble.predictive_log_probs(grid).numpy())[:, 1]
    filled = axis.contourf(u, v, probs.reshape(size, size),
                           levels=np.linspace(0, 1, 21), cmap='RdBu_r',
                           vmin=0, vmax=1)
    axis.contour(u, v, probs.reshape(size, size), levels=[0.5],
                 colors='black', linewidths=0.8)
    correct = ensemble.predict(x).numpy() == y
    for label, marker in ((0, 'o'), (1, 's')):
      for right, face in ((True, 'white'), (False, 'yellow')):
        chosen = (y == label) & (correct == right)
        axis.scatter(x[chosen, 0], x[chosen, 1], s=9 if right else 22,
                     marker=marker, facecolors=face, edgecolors='black',
                     linewidths=0.4,
                     label=(f'class {label}, ' +
                            ('correct' if right else 'misclassified')))
    if name in adversarial:
      indices, x_adv = adversarial[name]
      x_adv = np.asarray(x_adv)
      flipped = ensemble.predict(x_adv).numpy() != y[indices]
      for start, end in zip(x[indices], x_adv):
        axis.plot([start[0], end[0]], [start[1], end[1]], color='black',
                  linewidth=0.5)
      axis.scatter(x_adv[~flipped, 0], x_adv[~flipped, 1], marker='X', s=30,
                   facecolors='white', edgecolors='black', linewidths=0.6,
                   label='adversarial, resisted')
      axis.scatter(x_adv[flipped, 0], x_adv[flipped, 1], marker='X', s=30,
                   facecolors='red', edgecolors='black', linewidths=0.6,
                   label='adversarial, flipped')
    axis.set_title(f'{name}: accuracy {np.mean(correct):.3f}')
    axis.set_xlabel('$x_1$ (scaled)')
    axis.set_ylabel('$x_2$ (scaled)')
    axis.set_xlim(low[0], high[0])
    axis.set_ylim(low[1], high[1])
  figure.subplots_adjust(bottom=0.24, top=0.84, wspace=0.3, left=0.06,
                         right=0.9)
  colorbar = figure.colorbar(filled, cax=figure.add_axes(
      [0.915, 0.24, 0.012, 0.6]))
  colorbar.set_label('predictive P(class 1)')
  colorbar.set_ticks(np.linspace(0, 1, 6))
  handles, labels = axes[0][-1].get_legend_handles_labels()
  figure.legend(handles, labels, loc='lower center', ncol=3, fontsize=7,
                frameon=False)
  suffix = f' (PGD, eps {eps:g})' if eps is not None else ''
  figure.suptitle(title + suffix)
  return figure


def gradient_heatmaps(images, grads_by_n, title):
  """Figure 2: each image beside its expected gradient for several n.

  Args:
    images: `[K, 28, 28]` or `[K, 784]` images.
    grads_by_n: dict n -> `[K, ...]` expected gradients for those images.
    title: figure title.

  Returns:
    A matplotlib figure with one row per image.
  """
  images = np.asarray(images).reshape(len(images), 28, 28)
  ns = sorted(grads_by_n)
  figure, axes = plt.subplots(len(images), len(ns) + 1,
                              figsize=(2.1 * (len(ns) + 1), 2.1 * len(images)),
                              squeeze=False)
  for row, image in enumerate(images):
    axes[row][0].imshow(image, cmap='gray')
    axes[row][0].set_title('image' if row == 0 else '')
    limit = max(float(np.abs(np.asarray(grads_by_n[n][row])).max())
                for n in ns) or 1.0
    for column, n in enumerate(ns, start=1):
      grad = np.asarray(grads_by_n[n][row]).reshape(28, 28)
      shown = axes[row][column].imshow(grad, cmap='RdBu_r', vmin=-limit,
                                       vmax=limit)
      if row == 0:
        axes[row][column].set_title(f'{n} sample{"s" if n > 1 else ""}')
    figure.colorbar(shown, ax=axes[row][-1], fraction=0.046)
  for axis in axes.reshape(-1):
    axis.set_xticks([])
    axis.set_yticks([])
  figure.suptitle(title)
  figure.tight_layout()
  return figure


def gradient_strips(grads_by_n, title, max_points=20000, seed=0):
  """Figure 3: gradient components over many images, per number of samples.

  Args:
    grads_by_n: dict n -> array of expected gradients (all components).
    title: figure title.
    max_points: components drawn per column (a uniform subsample; the
      statistics in the tables use all of them).
    seed: seed of the subsample.

  Returns:
    A matplotlib figure.
  """
  rng = np.random.RandomState(seed)
  ns = sorted(grads_by_n)
  figure, axis = plt.subplots(figsize=(1.3 * len(ns) + 1.5, 3.6))
  for index, n in enumerate(ns):
    values = np.asarray(grads_by_n[n]).reshape(-1)
    if values.size > max_points:
      values = values[rng.choice(values.size, max_points, replace=False)]
    axis.scatter(index + rng.uniform(-0.3, 0.3, values.shape), values, s=1,
                 alpha=0.3)
  axis.axhline(0.0, color='black', linewidth=0.5)
  axis.set_xticks(range(len(ns)))
  axis.set_xticklabels([str(n) for n in ns])
  axis.set_xlabel('posterior samples')
  axis.set_ylabel('expected gradient component')
  axis.set_title(title)
  figure.tight_layout()
  return figure


def robustness_curves(frame, title):
  """Adversarial accuracy against eps, with the certified band, per method.

  Args:
    frame: rows of `experiments.robustness_curves` (columns `method`,
      `protocol`, `attack`, `loss`, `eps`, `adversarial_accuracy`,
      `softmax_robustness`).
    title: figure title.

  Returns:
    A figure with two panels. Left: for each method, the accuracy the
    strongest attack leaves (solid: strong protocol's worst case; dashed:
    the paper's PGD on the expected loss) and, shaded down to it, the
    certified accuracy: the true robust accuracy lies in the band. Right:
    the paper's softmax robustness of the paper's PGD, for comparison.
  """
  figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
  methods = list(dict.fromkeys(frame['method']))
  colours = plt.cm.tab10(np.arange(len(methods)) % 10)
  for colour, method in zip(colours, methods):
    rows = frame[frame['method'] == method]
    strong = rows[(rows['protocol'] == 'strong') &
                  (rows['attack'] == 'worst_case')].sort_values('eps')
    paper = rows[(rows['protocol'] == 'paper') & (rows['attack'] == 'pgd') &
                 (rows['loss'] == 'expected')].sort_values('eps')
    certified = rows[rows['attack'] == 'certified'].groupby('eps')[
        'adversarial_accuracy'].max()
    if len(strong):
      left.plot(strong['eps'], strong['adversarial_accuracy'], '-o',
                color=colour, markersize=3, label=f'{method}: strong')
      if len(certified):
        upper = strong.set_index('eps')['adversarial_accuracy']
        common = upper.index.intersection(certified.index)
        left.fill_between(common, certified[common], upper[common],
                          color=colour, alpha=0.15)
        left.plot(common, certified[common], ':', color=colour, linewidth=1)
    if len(paper):
      left.plot(paper['eps'], paper['adversarial_accuracy'], '--',
                color=colour, linewidth=1, label=f'{method}: paper PGD')
      right.plot(paper['eps'], paper['softmax_robustness'], '--o',
                 color=colour, markersize=3, label=method)
  left.set_xlabel('eps (L-infinity radius, pixels in [0, 1])')
  left.set_ylabel('adversarial accuracy of the predictive')
  left.set_title('accuracy: attacks (lines) and certified (dotted, band)')
  left.set_ylim(-0.02, 1.02)
  left.legend(fontsize=7)
  right.set_xlabel('eps')
  right.set_ylabel('softmax robustness (1 - softmax difference)')
  right.set_title("the paper's measure, paper's PGD")
  right.set_ylim(-0.02, 1.02)
  right.legend(fontsize=7)
  figure.suptitle(title)
  figure.tight_layout()
  return figure


def figure4(frame, dataset: str, protocol: str = 'paper'):
  """Figure 4: robustness against accuracy per network, and by width.

  Row 1 is the paper's measure (1 - softmax difference under FGSM); row 2
  adversarial accuracy (PGD under the paper protocol, the per-image worst
  case of every attack under the strong one), both from the protocol's own
  columns. Columns: HMC beside SGD, VI beside SGD, and
  boxplots of the measure by hidden width for the BNNs.

  Args:
    frame: the grid table (one row per cell) of one dataset.
    dataset: its name, for the title.
    protocol: 'paper' or 'strong'.

  Returns:
    A matplotlib figure, or None when no cell of the table ran `protocol`
    at a single radius.

  Raises:
    ValueError: when the table has the protocol's columns but not the two
      plotted.
  """
  from tfp_robust.experiments.grid import answers  # pylint: disable=g-import-not-at-top
  measures = answers.measures(protocol)
  if not any(c.startswith(f'{protocol}_') and '@' not in c
             for c in frame.columns):
    # No cell ran the protocol, or each ran several radii (columns
    # `..._acc@<eps>`), for which the figure is not defined.
    return None
  missing = [c for c, _ in measures if c not in frame.columns]
  if missing:
    held = sorted(c for c in frame.columns if c.startswith(f'{protocol}_'))
    raise ValueError(
        f'The grid table has {protocol!r} columns but not {missing}; it '
        f'holds {held}. '
        'Merge the grid again with this version of tfp_robust.')
  figure, axes = plt.subplots(len(measures), 3,
                              figsize=(11, 3.4 * len(measures)),
                              squeeze=False)
  sgd = frame[frame['method'] == 'sgd']
  for row, (column, label) in enumerate(measures):
    for col, method in enumerate(('hmc', 'vi')):
      axis = axes[row][col]
      bnn = frame[frame['method'] == method]
      axis.scatter(sgd['clean_accuracy'], sgd[column], s=10, c='tab:blue',
                   alpha=0.6, label=f'SGD ({len(sgd)})')
      axis.scatter(bnn['clean_accuracy'], bnn[column], s=10, c='tab:pink',
                   alpha=0.8, label=f'{method.upper()} ({len(bnn)})')
      axis.set_xlabel('clean accuracy')
      axis.set_ylabel(label)
      axis.set_title(f'({"ab"[col]}) {method.upper()} and SGD')
      axis.legend(fontsize=7)
    axis = axes[row][2]
    groups, names = [], []
    for method in ('hmc', 'vi'):
      bnn = frame[frame['method'] == method]
      for width in sorted(bnn['hidden'].dropna().unique()):
        groups.append(bnn[bnn['hidden'] == width][column].dropna().values)
        names.append(f'{method}\n{int(width)}')
    if groups:
      axis.boxplot(groups, tick_labels=names)
    axis.set_xlabel('method and hidden width')
    axis.set_ylabel(label)
    axis.set_title('by width')
  figure.suptitle(f'Figure 4, {dataset}, {protocol} protocol')
  figure.tight_layout()
  return figure


def sampler_comparison(frame):
  """Mixing per variant, and robustness against mixing (issue 11).

  Args:
    frame: rows of `sampler_comparison.run`.

  Returns:
    A figure with one row of three panels per target: the worst
    function-space R-hat per variant (the 1.1 line marked), the worst
    function-space ESS per hour of sampling, and PGD accuracy and the mean
    expected-gradient magnitude against R-hat, one point per variant.
  """
  targets = list(dict.fromkeys(frame['target']))
  figure, axes = plt.subplots(len(targets), 3, figsize=(13, 3.6 * len(targets)),
                              squeeze=False)
  for row, target in zip(axes, targets):
    rows = frame[frame['target'] == target]
    names = list(rows['variant'])
    positions = np.arange(len(names))
    row[0].bar(positions, rows['fn_rhat_max'], color='tab:blue')
    row[0].axhline(1.1, color='k', linestyle='--', linewidth=1)
    row[0].set_ylabel('function-space R-hat (max)')
    row[1].bar(positions, rows['fn_ess_min_per_hour'], color='tab:green')
    row[1].set_ylabel('function-space ESS (min) per hour')
    row[1].set_yscale('log')
    for axis in row[:2]:
      axis.set_xticks(positions)
      axis.set_xticklabels(names, rotation=45, ha='right', fontsize=8)
      axis.set_title(target)
    row[2].scatter(rows['fn_rhat_max'], rows['pgd_predictive_acc'],
                   color='tab:red', label='PGD accuracy')
    for name, x, y in zip(names, rows['fn_rhat_max'],
                          rows['pgd_predictive_acc']):
      row[2].annotate(name, (x, y), fontsize=7)
    row[2].set_xlabel('function-space R-hat (max)')
    row[2].set_ylabel('PGD accuracy (predictive loss)', color='tab:red')
    twin = row[2].twinx()
    twin.scatter(rows['fn_rhat_max'], rows['mean_abs_expected_grad'],
                 color='tab:purple', marker='x')
    twin.set_ylabel('mean |expected gradient|', color='tab:purple')
    row[2].set_title(f'{target}: robustness against mixing')
  figure.tight_layout()
  return figure


def _plain_log_ticks(axis):
  """Log x ticks as plain numbers (1.05, not 1.05 x 10^0); the minor ones
  labelled only when the axis spans less than a decade."""
  plain = ticker.FuncFormatter(lambda value, _: f'{value:g}')
  axis.xaxis.set_major_formatter(plain)
  low, high = axis.get_xlim()
  axis.xaxis.set_minor_formatter(
      plain if high < 10 * low else ticker.NullFormatter())


def robustness_against_mixing(frame):
  """Does robustness follow mixing? Every sampler-comparison row pooled.

  Args:
    frame: rows of `sampler_comparison.run`, from any number of targets.

  Returns:
    A 2 x 2 figure, one point per (target, variant), one colour per target:
    the mean expected-gradient magnitude (top) and PGD accuracy (bottom)
    against the worst function-space R-hat (left; the 1.1 line marked) and
    against the worst function-space ESS, the number of effectively
    independent draws (right). Both x axes are logarithmic.
  """
  targets = list(dict.fromkeys(frame['target']))
  colours = plt.cm.tab10(np.arange(len(targets)) % 10)
  figure, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex='col')
  measures = (('mean_abs_expected_grad', 'mean |expected gradient|'),
              ('pgd_predictive_acc', 'PGD accuracy (predictive loss)'))
  mixing = (('fn_rhat_max', 'function-space R-hat (max)'),
            ('fn_ess_min', 'function-space ESS (min)'))
  for row, (measure, measure_label) in zip(axes, measures):
    for axis, (column, column_label) in zip(row, mixing):
      for target, colour in zip(targets, colours):
        rows = frame[frame['target'] == target]
        axis.scatter(rows[column], rows[measure], color=colour, label=target)
        for name, x, y in zip(rows['variant'], rows[column], rows[measure]):
          axis.annotate(name, (x, y), fontsize=6)
      axis.set_xscale('log')
      _plain_log_ticks(axis)
      axis.set_ylabel(measure_label)
      if measure == 'pgd_predictive_acc':
        axis.set_xlabel(column_label)
      if column == 'fn_rhat_max':
        axis.axvline(1.1, color='k', linestyle='--', linewidth=1)
  axes[0][0].legend(fontsize=7)
  figure.suptitle('Robustness against mixing, one point per sampler and target')
  figure.tight_layout()
  return figure


def mixing_trajectory(frame, criteria):
  """One run's mixing against compute: worst split R-hat of the class
  probabilities and of the log-joint, and the worst bulk ESS, after each
  segment (x: sampler seconds, warm-up included), with the targets."""
  figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
  hours = frame['seconds'] / 3600.0
  left.plot(hours, frame['fn_split_rhat_max'], 'o-',
            label='class probabilities (worst)')
  left.plot(hours, frame['logjoint_split_rhat'], 's-', label='log-joint')
  left.axhline(criteria['split_rhat'], color='k', ls='--', lw=1,
               label=f"target {criteria['split_rhat']}")
  left.set_yscale('log')
  left.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f'{v:g}'))
  left.set_xlabel('sampler hours (warm-up included)')
  left.set_ylabel('rank-normalised split R-hat')
  left.legend()
  right.plot(hours, frame['fn_bulk_ess_min'], 'o-',
             label='class probabilities (worst)')
  right.axhline(criteria['bulk_ess'], color='k', ls='--', lw=1,
                label=f"target {criteria['bulk_ess']:g}")
  right.set_xlabel('sampler hours (warm-up included)')
  right.set_ylabel('bulk ESS')
  right.legend()
  figure.suptitle('Mixing against compute (ArviZ diagnostics)')
  figure.tight_layout()
  return figure
