"""Figures of robustness: decision regions, robustness curves against eps, and
Figure 4 (robustness against accuracy over the grids).
"""

import matplotlib.pyplot as plt
import numpy as np


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
