"""The Square attack (Andriushchenko et al., 2020), L-infinity, gradient-free.

A random search that needs only the predictive's outputs: it starts from
vertical stripes of +-eps and, at each query, sets one random square window
of each still-unbroken image to a random corner of the eps-box (per channel),
keeping the change when it lowers the margin of the predictive (true class
minus best other class, in log-probability). The window shrinks on the
schedule of `autoattack/square.py` (fra31/auto-attack), rescaled to the
query budget. Here the window and signs are drawn per image, not once per
batch; the queries run in rounds, each a compiled `tf.while_loop` per image
batch, and between rounds the images already fooled are dropped.

Because it never looks at a gradient, Square is the reference that gradient
masking cannot fool: if it beats the gradient attacks, their gradients lie.
"""

import math

import numpy as np
import tensorflow as tf

from tfp_robust.attacks import batching as attack_batches
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.attacks import losses
from tfp_robust.core import seeds
from tfp_robust.core import validate

P_INIT = 0.8
_THRESHOLDS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def image_shape(input_shape):
  """The `(H, W, C)` grid that windows are cut from.

  Images keep their shape; a flat input of a square size (784) is read as a
  square grey image; any other flat input as a 1 x d strip.
  """
  if len(input_shape) == 3:
    return tuple(input_shape)
  if len(input_shape) == 1:
    side = math.isqrt(int(input_shape[0]))
    if side * side == int(input_shape[0]):
      return (side, side, 1)
    return (1, int(input_shape[0]), 1)
  raise ValueError(f'The Square attack needs [H, W, C] or flat inputs, got '
                   f'input shape {input_shape}.')


def _p_selection(step, num_queries):
  """AutoAttack's schedule of the window's share of the image."""
  rescaled = tf.cast(step, tf.float32) / float(num_queries) * 10000.0
  halvings = tf.reduce_sum(tf.cast(
      rescaled > tf.constant(_THRESHOLDS, tf.float32), tf.float32))
  return P_INIT / tf.pow(2.0, halvings)


def _margin(log_probs, labels):
  """True class minus best other class, predictive; <= 0 means fooled."""
  return -losses.predictive_margin(log_probs, labels)


def _build_fns(ensemble, num_queries, compiled=True):
  """`(init, run)`: the stripes start, and a round of queries.

  Both take `positions` (each image's index in the whole set, `total`
  images) so that an image's random draws depend on its index and the step
  only, not on how the images were batched or compacted.
  """
  height, width, channels = image_shape(ensemble.input_shape)
  num_features = height * width * channels
  rows = tf.range(height)[None, :, None, None]
  cols = tf.range(width)[None, None, :, None]

  def margin_of(chunk, images, labels):
    flat = tf.reshape(images, [-1] + list(ensemble.input_shape))
    if chunk is None:  # The chunked fallback, eager.
      return _margin(ensemble.log_probs(flat), labels)
    return _margin(ensemble.chunk_log_probs(chunk, flat), labels)

  def drawer(positions, total):
    def draw(shape, step_seed, minval, maxval, dtype=tf.float32):
      values = tf.random.stateless_uniform(
          tf.concat([[total], tf.constant(shape, tf.int32)], 0), step_seed,
          minval, maxval, dtype)
      return tf.gather(values, positions)
    return draw

  def as_images(x):
    return tf.reshape(x, [tf.shape(x)[0], height, width, channels])

  def init(chunk, x, labels, eps, seed, positions, total):
    draw = drawer(positions, total)
    stripes = tf.sign(draw([1, width, channels], seed, -1.0, 1.0))
    x_best = tf.clip_by_value(as_images(x) + eps * stripes, 0.0, 1.0)
    return (tf.reshape(x_best, tf.shape(x)),
            margin_of(chunk, x_best, labels))

  def run(chunk, x, labels, eps, seed, positions, total, x_best, margin_min,
          queries, first_step, last_step):
    draw = drawer(positions, total)
    images = as_images(x)

    def body(step, x_best, margin_min, queries):
      step_seed = tf.random.experimental.stateless_fold_in(seed, step + 1)
      seed_h, seed_w, seed_sign = tf.unstack(
          tf.random.experimental.stateless_split(step_seed, 3))
      p = _p_selection(step, num_queries)
      side = tf.cast(tf.round(tf.sqrt(p * num_features / channels)),
                     tf.int32)
      side = tf.clip_by_value(side, 1, min(height, width))
      top = draw([], seed_h, 0, height - side + 1, tf.int32)
      left = draw([], seed_w, 0, width - side + 1, tf.int32)
      top, left = top[:, None, None, None], left[:, None, None, None]
      window = ((rows >= top) & (rows < top + side) &
                (cols >= left) & (cols < left + side))
      signs = tf.sign(draw([1, 1, channels], seed_sign, -1.0, 1.0))
      candidate = x_best + 2.0 * eps * signs * tf.cast(window, tf.float32)
      candidate = tf.clip_by_value(
          tf.clip_by_value(candidate, images - eps, images + eps), 0.0, 1.0)
      margin = margin_of(chunk, candidate, labels)
      active = margin_min > 0.0
      accept = active & ((margin < margin_min) | (margin <= 0.0))
      x_best = tf.where(accept[:, None, None, None], candidate, x_best)
      margin_min = tf.where(accept, margin, margin_min)
      queries += tf.cast(active, tf.float32)
      return step + 1, x_best, margin_min, queries

    _, x_best, margin_min, queries = tf.while_loop(
        lambda step, x_best, margin_min, queries: (
            (step < last_step) & tf.reduce_any(margin_min > 0.0)),
        body, (first_step, as_images(x_best), margin_min, queries))
    return tf.reshape(x_best, tf.shape(x)), margin_min, queries

  if not compiled:
    return init, run
  return tuple(tf.function(fn, jit_compile=ensemble.jit_compile,
                           reduce_retracing=True) for fn in (init, run))


def square_run(ensemble, x, labels, eps, num_queries=1000, seed=0,
               round_queries=100):
  """One Square run on every image of `x`.

  The queries run in rounds of `round_queries`; between rounds the images
  already fooled are dropped, so later rounds cost only what still stands
  (the result does not depend on the round length: tested).

  Args:
    ensemble: a `PosteriorEnsemble` (only its outputs are used).
    x: inputs `[B, *input_shape]` in [0, 1].
    labels: labels `[B]`.
    eps: L-infinity radius (>= 0).
    num_queries: the query budget per image (one query = one evaluation of
      the predictive on the image): the stripes start is the first, so at
      most `num_queries - 1` proposals follow it.
    seed: int or stateless seed `[2]`.
    round_queries: queries between two compactions.

  Returns:
    `(x_adv, margin, queries)`: the best input per image, its predictive
    margin (<= 0 when fooled) and the queries it used (at most
    `num_queries`, the start included).
  """
  eps = validate.eps('eps', eps)
  num_queries = validate.integer('num_queries', num_queries, 1)
  round_queries = validate.integer('round_queries', round_queries, 1)
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  seed = seeds.stateless_seed(seed)
  size, chunk = attack_batches.plan(ensemble, int(x.shape[0]))
  compiled = chunk is not None
  init, run = ensemble.compiled(
      ('square', int(num_queries), compiled),
      lambda: _build_fns(ensemble, int(num_queries), compiled))
  eps_t = tf.constant(eps, tf.float32)
  total = tf.constant(int(x.shape[0]))
  x_best, margin = attack_batches.map_batches(
      ensemble, x, labels,
      lambda xb, yb, positions: init(chunk, xb, yb, eps_t, seed, positions,
                                     total), size)
  queries = tf.ones([int(x.shape[0])])  # The stripes start.
  proposals = int(num_queries) - 1
  for first in range(0, proposals, int(round_queries)):
    standing = np.flatnonzero(margin.numpy() > 0.0)
    if not standing.size:
      break
    index = tf.constant(standing, tf.int32)
    last = min(first + int(round_queries), proposals)
    parts = [tf.gather(t, index) for t in (x_best, margin, queries)]

    def one_round(xb, yb, positions, parts=parts, index=index, first=first,
                  last=last):
      best_b, margin_b, queries_b = (tf.gather(t, positions) for t in parts)
      return run(chunk, xb, yb, eps_t, seed, tf.gather(index, positions),
                 total, best_b, margin_b, queries_b, tf.constant(first),
                 tf.constant(last))

    new_best, new_margin, new_queries = attack_batches.map_batches(
        ensemble, tf.gather(x, index), tf.gather(labels, index), one_round,
        size)
    where = index[:, None]
    x_best = tf.tensor_scatter_nd_update(x_best, where, new_best)
    margin = tf.tensor_scatter_nd_update(margin, where, new_margin)
    queries = tf.tensor_scatter_nd_update(queries, where, new_queries)
  return x_best, margin, queries


def square(ensemble, x, labels, eps, num_queries=1000, restarts=1, seed=0):
  """Square with restarts, each on the images still classified correctly.

  Returns:
    Adversarial inputs `[B, *input_shape]`.
  """
  worst = attack_batches.WorstCase(ensemble, x, labels)
  worst.restarts(lambda xs, ys, s: square_run(
      ensemble, xs, ys, eps, num_queries, s)[0], restarts,
                 seeds.stateless_seed(seed))
  return worst.x_adv
