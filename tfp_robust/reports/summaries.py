"""TensorBoard summaries: what every stage of a run writes, and reading it back.

Layout: one TensorBoard run per (dataset, method, stage) under
`<workdir>/tensorboard`, so `tensorboard --logdir <workdir>/tensorboard` shows
the whole work directory:

  <workdir>/tensorboard/<dataset>/<method>/fit            training
  <workdir>/tensorboard/<dataset>/<method>/attacks_<protocol>
  <workdir>/tensorboard/<dataset>/<method>/curves_<protocol>
  <workdir>/tensorboard/<dataset>/<method>/gradients

Tags (BUILD_NOTES.md lists which binary writes which):

- `sgd/loss`, `sgd/accuracy` per epoch (each deep-ensemble member in its own
  `member_<i>` run); `vi/elbo`, `vi/nll`, `vi/kl`, `vi/accuracy` per epoch,
  all per training example (ELBO = -(nll + kl)).
- `hmc/log_joint/chain_<c>`, `hmc/acceptance` (fraction of chains accepting)
  and `hmc/step_size` at every MCMC iteration, warm-up (iterations
  0 .. B-1) and sampling (B onwards) on one axis; `hmc/diagnostics/<name>`
  (R-hat, ESS, acceptance, function-space R-hat and ESS) once at the end.
- `posterior/<parameter>` histograms of the sampled weights, at up to 10
  steps: step k holds the samples of the k-th of 10 consecutive groups (the
  step is the index of the group's last sample), so the Distributions tab
  shows the weights along the chains and the Histograms tab stacks them;
  `posterior_std/<parameter>` of each weight's spread across the samples
  kept up to that step (every k-th value when there are more than 2^20).
- `attack/<protocol>/results`: every result row (attack, loss, eps,
  adversarial and clean accuracy, softmax robustness) as one Markdown table
  in the Text tab. Where a (protocol, attack, loss) has several eps, its
  curve is also written as scalars `attack/<protocol>/<attack>/<loss>/
  adversarial_accuracy` and `.../softmax_robustness` with step =
  round(1000 * eps) (TensorBoard steps are integers: the x axis is eps in
  thousandths); a single eps writes no one-dot scalar chart.
  `adversarial/clean`, `adversarial/<attack>` and `adversarial/perturbation`
  images, enlarged to at least 112 pixels a side.
- `gradients/expected/n=<S>` heatmaps and `gradients/mean_abs` (step = S).
- `figures/<name>`: the run's matplotlib figures as images (150 dpi).
- HParams for each grid cell and each quickstart model.

A rerun into the same directory does not duplicate series: `open_writer`
removes the run's earlier event files before writing, and a resumed HMC run
writes again, from its checkpoints, what the killed run had written.
"""

import glob
import io
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

EPS_STEP_SCALE = 1000


def run_dir(workdir: str, dataset: str, method: str, stage: str) -> str:
  """`<workdir>/tensorboard/<dataset>/<method>/<stage>`."""
  return os.path.join(workdir, 'tensorboard', dataset, method, stage)


def open_writer(log_dir: str, fresh: bool = True):
  """A summary writer for `log_dir`; `fresh` drops the run's earlier events.

  Only the event files directly in `log_dir` are removed (sub-runs such as
  deep-ensemble members clear their own), so a rerun replaces a series
  instead of drawing a second copy over it.
  """
  os.makedirs(log_dir, exist_ok=True)
  if fresh:
    for path in glob.glob(os.path.join(log_dir, 'events.out.tfevents.*')):
      os.remove(path)
  return tf.summary.create_file_writer(log_dir)


def scalars(writer, values: Dict[str, float], step: int,
            prefix: str = '') -> None:
  """Writes each finite-or-not number of `values` as `<prefix><name>`."""
  with writer.as_default():
    for name, value in values.items():
      if isinstance(value, (bool, np.bool_)) or value is None:
        continue
      if isinstance(value, (int, float, np.integer, np.floating)):
        tf.summary.scalar(prefix + name, float(value), step=int(step))


def hmc_trace(writer, log_prob: np.ndarray, accepted: np.ndarray,
              step_size, first_step: int, step_stride: int = 1) -> None:
  """Per-iteration HMC scalars for `K` iterations of `C` chains.

  Args:
    writer: a summary writer.
    log_prob: `[K, C]` log-joint of each chain's state after each iteration.
    accepted: `[K, C]` whether each proposal was accepted.
    step_size: `[K]` step size used at each iteration, or one number.
    first_step: the MCMC iteration of the first row.
    step_stride: iterations between rows (the thinning of kept samples).
  """
  log_prob = np.asarray(log_prob, np.float64)
  accepted = np.asarray(accepted, np.float64)
  sizes = np.broadcast_to(np.asarray(step_size, np.float64),
                          (log_prob.shape[0],))
  with writer.as_default():
    for row in range(log_prob.shape[0]):
      step = int(first_step + row * step_stride)
      for chain in range(log_prob.shape[1]):
        tf.summary.scalar(f'hmc/log_joint/chain_{chain}',
                          log_prob[row, chain], step=step)
      tf.summary.scalar('hmc/acceptance', accepted[row].mean(), step=step)
      tf.summary.scalar('hmc/step_size', sizes[row], step=step)
  writer.flush()


HISTOGRAM_GROUPS = 10


def posterior_histograms(writer, ensemble, first_step: int = 0) -> None:
  """Histograms of an architecture ensemble's sampled weights, over samples.

  The S samples (in their order: along the chains for HMC) are cut into
  `min(S, HISTOGRAM_GROUPS)` consecutive groups; `posterior/<name>` at step
  `first_step + i` (i the index of a group's last sample) holds that group's
  values of a parameter, so the steps together hold every sample's values
  and TensorBoard's Distributions tab draws them along the samples (one
  step would leave it blank). `posterior_std/<name>` at the same steps is
  each weight's standard deviation across the samples up to that one
  (absent for S = 1). Ensembles without explicit weights write nothing.
  """
  params = getattr(ensemble, 'params', None)
  architecture = getattr(ensemble, 'architecture', None)
  if params is None or architecture is None:
    return
  names = [name for name, _ in architecture.param_shapes()]
  num_samples = int(np.shape(params[0])[0])
  groups = np.array_split(np.arange(num_samples),
                          min(num_samples, HISTOGRAM_GROUPS))
  limit = max(1, MAX_HISTOGRAM_VALUES // len(groups))
  with writer.as_default():
    for name, values in zip(names, params):
      values = tf.convert_to_tensor(values)
      for group in groups:
        start, stop = int(group[0]), int(group[-1]) + 1
        step = first_step + stop - 1
        tf.summary.histogram(f'posterior/{name}',
                             _spread_subset(values[start:stop], limit),
                             step=step)
        if stop > 1:
          tf.summary.histogram(
              f'posterior_std/{name}', _spread_subset(
                  tf.math.reduce_std(values[:stop], axis=0), limit),
              step=step)
  writer.flush()


# TensorBoard's histogram op one-hots every value into its buckets in
# float64: 750 samples of a 784 x 512 kernel would need 72 GB.
MAX_HISTOGRAM_VALUES = 1 << 20


def _spread_subset(values, limit: int = MAX_HISTOGRAM_VALUES):
  """All values, or every k-th of them (k fixed) when there are too many."""
  flat = tf.reshape(values, [-1])
  size = int(flat.shape[0])
  if size <= limit:
    return flat
  return flat[::-(-size // limit)]


_TABLE_COLUMNS = ('method', 'model', 'attack', 'loss', 'eps',
                  'adversarial_accuracy', 'clean_accuracy',
                  'softmax_robustness', 'checks_failed')


def _cell(value) -> str:
  if value is None:
    return '-'
  if isinstance(value, (float, np.floating)):
    return '-' if not np.isfinite(value) else f'{float(value):.3f}'
  return str(value).replace('|', '\\|') or '-'


def markdown_table(rows: Sequence[Dict], columns: Sequence[str]) -> str:
  """`rows` as a Markdown table of `columns` (those some row has), numbers
  to three decimals."""
  columns = [c for c in columns if any(c in row for row in rows)]
  lines = ['| ' + ' | '.join(columns) + ' |',
           '|' + '---|' * len(columns)]
  for row in rows:
    lines.append('| ' + ' | '.join(_cell(row.get(c)) for c in columns) +
                 ' |')
  return '\n'.join(lines)


def attack_rows(writer, rows: Iterable[Dict]) -> None:
  """Result rows: one Markdown table per protocol, and curves over eps.

  `attack/<protocol>/results` (Text tab) holds every row. A (protocol,
  attack, loss) evaluated at several eps is also a curve of scalars at
  step round(1000 * eps); one at a single eps writes none (a chart of one
  dot says nothing the table does not).
  """
  rows = list(rows)
  curves = {}
  for row in rows:
    key = (row['protocol'], row['attack'], row['loss'])
    curves.setdefault(key, set()).add(float(row['eps']))
  with writer.as_default():
    for protocol in sorted({row['protocol'] for row in rows}):
      chosen = sorted((r for r in rows if r['protocol'] == protocol),
                      key=lambda r: (str(r['attack']), str(r['loss']),
                                     float(r['eps'])))
      tf.summary.text(f'attack/{protocol}/results',
                      markdown_table(chosen, _TABLE_COLUMNS), step=0)
    for row in rows:
      if len(curves[(row['protocol'], row['attack'], row['loss'])]) < 2:
        continue
      base = f"attack/{row['protocol']}/{row['attack']}/{row['loss']}"
      step = int(round(float(row['eps']) * EPS_STEP_SCALE))
      for name in ('adversarial_accuracy', 'softmax_robustness',
                   'clean_accuracy'):
        value = row.get(name)
        if value is not None and np.isfinite(float(value)):
          tf.summary.scalar(f'{base}/{name}', float(value), step=step)
  writer.flush()


def as_images(x: np.ndarray, input_shape: Sequence[int]) -> Optional[np.ndarray]:
  """`[N, H, W, C]` images in [0, 1] for flat square or image inputs.

  None for inputs that are not images (half moons' two coordinates).
  """
  x = np.asarray(x, np.float32)
  if len(input_shape) == 3:
    return x
  side = int(round(np.sqrt(int(np.prod(input_shape)))))
  if len(input_shape) == 1 and side * side == int(input_shape[0]) and side > 4:
    return x.reshape((-1, side, side, 1))
  return None


MIN_IMAGE_SIDE = 112


def enlarged(images: np.ndarray, min_side: int = MIN_IMAGE_SIDE) -> np.ndarray:
  """`[N, H, W, C]` images repeated pixel by pixel (an integer factor) to at
  least `min_side` a side: TensorBoard shows a 28 x 28 image at 28 pixels."""
  factor = max(1, -(-min_side // max(1, min(images.shape[1:3]))))
  return np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)


def adversarial_images(writer, x, x_adv, input_shape, name: str,
                       eps: float, max_images: int = 8) -> None:
  """Clean images, their adversarial versions and the perturbations."""
  clean = as_images(x[:max_images], input_shape)
  if clean is None:
    return
  adversarial = as_images(x_adv[:max_images], input_shape)
  # The perturbation in [-eps, eps], shown on [0, 1] with grey as zero.
  perturbation = 0.5 + (adversarial - clean) / (2 * max(float(eps), 1e-12))
  with writer.as_default():
    tf.summary.image('adversarial/clean', enlarged(clean), step=0,
                     max_outputs=max_images)
    tf.summary.image(f'adversarial/{name}', enlarged(adversarial), step=0,
                     max_outputs=max_images)
    tf.summary.image('adversarial/perturbation',
                     enlarged(np.clip(perturbation, 0.0, 1.0)), step=0,
                     max_outputs=max_images)
  writer.flush()


def heatmaps(writer, tag: str, grads: np.ndarray, input_shape,
             step: int = 0, max_images: int = 8) -> None:
  """Gradients as red (positive) / blue (negative) images, 0 as white.

  Each image is scaled by its own largest |component|, as Figure 2 is.
  """
  images = as_images(grads[:max_images], input_shape)
  if images is None:
    return
  images = images.mean(axis=-1)
  scale = np.max(np.abs(images), axis=(1, 2), keepdims=True)
  signed = images / np.where(scale > 0, scale, 1.0)
  red = np.clip(1.0 + np.minimum(signed, 0.0), 0, 1)
  blue = np.clip(1.0 - np.maximum(signed, 0.0), 0, 1)
  green = np.minimum(red, blue)
  rgb = np.stack([red, green, blue], axis=-1)
  with writer.as_default():
    tf.summary.image(tag, enlarged(rgb), step=step, max_outputs=max_images)
  writer.flush()


FIGURE_DPI = 150


def figure(writer, tag: str, fig, step: int = 0) -> None:
  """A matplotlib figure as an image summary, at `FIGURE_DPI` (a 6-inch
  figure is 900 pixels wide: readable, not a thumbnail)."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=FIGURE_DPI)
  image = tf.image.decode_png(buffer.getvalue(), channels=4)
  with writer.as_default():
    tf.summary.image(tag, image[None], step=step)
  writer.flush()


def hparams(writer, values: Dict[str, object], metrics: Dict[str, float],
            step: int = 0) -> None:
  """One grid cell's hyperparameters and its metrics (HParams dashboard)."""
  from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
  clean = {k: (v if isinstance(v, (bool, str)) else float(v)
               if isinstance(v, (float, np.floating)) else int(v)
               if isinstance(v, (int, np.integer)) else str(v))
           for k, v in values.items()}
  with writer.as_default():
    hp.hparams(clean)
  scalars(writer, metrics, step)
  writer.flush()


def _events(log_dir: str):
  for path in sorted(glob.glob(os.path.join(log_dir, 'events.out.tfevents.*'))):
    for event in tf.compat.v1.train.summary_iterator(path):
      yield event


def read_scalars(log_dir: str) -> Dict[str, List[Tuple[int, float]]]:
  """Every scalar in `log_dir`'s event files as `{tag: [(step, value)]}`."""
  result = {}
  for event in _events(log_dir):
    for value in event.summary.value:
      if value.metadata.plugin_data.plugin_name != 'scalars':
        continue
      number = float(tf.make_ndarray(value.tensor))
      result.setdefault(value.tag, []).append((int(event.step), number))
  return result


def read_text(log_dir: str) -> Dict[str, List[Tuple[int, str]]]:
  """Every text summary in `log_dir` as `{tag: [(step, text)]}`."""
  result = {}
  for event in _events(log_dir):
    for value in event.summary.value:
      if value.metadata.plugin_data.plugin_name != 'text':
        continue
      text = tf.make_ndarray(value.tensor).reshape(-1)[0]
      result.setdefault(value.tag, []).append(
          (int(event.step), text.decode() if isinstance(text, bytes)
           else str(text)))
  return result


def read_tags(log_dir: str) -> Dict[str, str]:
  """Every tag in `log_dir`'s event files with its plugin (scalars, images...)."""
  tags = {}
  for event in _events(log_dir):
    for value in event.summary.value:
      tags[value.tag] = value.metadata.plugin_data.plugin_name
  return tags
