"""Figures of expected loss gradients: Figure 1 (by width, by model), and
Figures 2 and 3 (heatmaps and strips against the number of samples).
"""

import matplotlib.pyplot as plt
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
