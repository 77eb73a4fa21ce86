"""CROWN: linear bounds on a network's logit margins, for all samples at once.

Zhang et al. (2018), "Efficient Neural Network Robustness Certification with
General Activation Functions". A specification `<lam, z_t>` of a node `z_t`
(the logits, or an intermediate pre-activation) is propagated backward
through the ops (`bound_ops`): exactly through linear ones, through the
relaxation of each nonlinear op (which needs interval bounds on that op's
input), down to a linear function of the input, whose minimum over the box
is closed-form. The result is a lower bound on `<lam, z_t>` over the box for
every sample of the chunk (sample axis `S` first throughout).

Intermediate bounds come from interval bound propagation, and, for every
pre-activation node of at most `max_tightened` neurons that IBP cannot
bound exactly (one after a nonlinearity, or after two linear layers), are
tightened by CROWN itself layer by layer (full CROWN: `2n` specifications,
one per neuron and side), keeping the tighter of the two on each side.

The final specification is the margin of the label: `z_y - z_j` for every
class j (`j = y` gives 0), bounded directly rather than from separate logit
bounds. alpha-CROWN (Xu et al. 2021) optimises the lower slopes of the
unstable ReLU / leaky-ReLU neurons of the final pass per specification by
projected sign-gradient ascent on the margin bounds; every slope in
`[leak, 1]` is sound, so any step count is.
"""

import numpy as np
import tensorflow as tf

from tfp_robust.evaluation.bounds import ops as bound_ops

# Pre-activation nodes above this many neurons keep their IBP bounds.
MAX_TIGHTENED = 512
_WEIGHTY = ('Dense', 'Conv2D', 'AvgPool', 'GlobalAvgPool')


def _box(lower, upper, num_samples):
  shape = tf.concat([[num_samples], tf.shape(lower)], 0)
  return tf.broadcast_to(lower, shape), tf.broadcast_to(upper, shape)


def backward(ops, bounds, node, lam, lower, upper, slopes=None):
  """Lower bounds `[S, B, K]` of `<lam[k], z_node>` over the input box.

  Args:
    ops: the network's ops (`bound_ops.build`).
    bounds: interval bounds `(low, high)` of every node up to `node - 1`
      (node 0 is the input), each `[S, B, *features]`.
    node: the node the specification is on (`len(ops)`: the logits).
    lam: coefficients `[S, B, K, *features of node]`.
    lower: the input box's lower corner `[B, *input_shape]`.
    upper: its upper corner.
    slopes: optional dict op index -> lower slopes `[S, B, K, *features]`
      of that activation (alpha-CROWN).
  """
  const = tf.zeros(tf.shape(lam)[:3], lam.dtype)
  for index in reversed(range(node)):
    op = ops[index]
    if slopes and index in slopes:
      lam, const = op.backward(lam, const, *bounds[index],
                               lower_slope=slopes[index])
    else:
      lam, const = op.backward(lam, const, *bounds[index])
  centre = tf.expand_dims((upper + lower) / 2.0, 1)[None]
  radius = tf.expand_dims((upper - lower) / 2.0, 1)[None]
  return (const + bound_ops._sum_features(lam * centre)  # pylint: disable=protected-access
          - bound_ops._sum_features(tf.abs(lam) * radius))  # pylint: disable=protected-access


def _tightenable(ops, max_tightened):
  """Indices of the ops whose output CROWN tightens (see the docstring)."""
  chosen, nonlinear_before, weighty = [], False, 0
  for index, op in enumerate(ops):
    if op.linear:
      weighty += type(op).__name__ in _WEIGHTY
      feeds_nonlinear = index + 1 < len(ops) and not ops[index + 1].linear
      if (feeds_nonlinear and (nonlinear_before or weighty >= 2) and
          bound_ops._prod(op.out_shape) <= max_tightened):  # pylint: disable=protected-access
        chosen.append(index)
    else:
      nonlinear_before = True
  return chosen


def node_bounds(ops, lower, upper, num_samples, tighten=True,
                max_tightened=None):
  """Interval bounds of every node, `[(low, high)]`, IBP and full CROWN."""
  max_tightened = MAX_TIGHTENED if max_tightened is None else max_tightened
  bounds = [_box(lower, upper, num_samples)]
  chosen = _tightenable(ops, max_tightened) if tighten else []
  for index, op in enumerate(ops):
    low, high = op.intervals(*bounds[index])
    if index in chosen:
      n = bound_ops._prod(op.out_shape)  # pylint: disable=protected-access
      eye = tf.eye(n, dtype=low.dtype)
      spec = tf.reshape(tf.concat([eye, -eye], 0), (2 * n,) + op.out_shape)
      spec = tf.broadcast_to(spec, tf.concat([tf.shape(low)[:2],
                                              tf.shape(spec)], 0))
      found = backward(ops, bounds, index + 1, spec, lower, upper)
      shape = tf.shape(low)
      low = tf.maximum(low, tf.reshape(found[..., :n], shape))
      high = tf.minimum(high, -tf.reshape(found[..., n:], shape))
    bounds.append((low, high))
  return bounds


def margin_spec(labels, num_classes, num_samples):
  """`[S, B, C, C]`: row j is `e_y - e_j` (zero for j = y)."""
  spec = (tf.one_hot(labels, num_classes)[:, None, :] -
          tf.eye(num_classes)[None])
  return tf.broadcast_to(spec[None], tf.concat(
      [[num_samples], tf.shape(spec)], 0))


def margin_bounds(ops, bounds, labels, lower, upper, alpha_steps=0,
                  alpha_step_size=0.1):
  """Lower bounds `[S, B, C]` on `z_y - z_j` over the box, every sample."""
  num_samples = tf.shape(bounds[-1][0])[0]
  num_classes = ops[-1].out_shape[-1]
  spec = margin_spec(labels, num_classes, num_samples)
  found = backward(ops, bounds, len(ops), spec, lower, upper)
  relus = [i for i, op in enumerate(ops)
           if not op.linear and getattr(op, 'fn', '') in ('relu',
                                                          'leaky_relu')]
  if not alpha_steps or not relus:
    return found
  # alpha-CROWN: start at CROWN's adaptive slopes, one set per spec.
  leak = {i: ops[i].slope for i in relus}
  slopes = [tf.broadcast_to(tf.expand_dims(ops[i].relaxation(*bounds[i])[0], 2),
                            tf.concat([tf.shape(spec)[:3], ops[i].in_shape], 0))
            for i in relus]

  def body(i, best, *current):
    with tf.GradientTape() as tape:
      tape.watch(current)
      value = backward(ops, bounds, len(ops), spec, lower, upper,
                       dict(zip(relus, current)))
      objective = tf.reduce_sum(value)
    grads = tape.gradient(objective, current)
    moved = [tf.clip_by_value(s + alpha_step_size * tf.sign(g), leak[r], 1.0)
             for r, s, g in zip(relus, current, grads)]
    return (i + 1, tf.maximum(best, value), *moved)

  result = tf.while_loop(lambda i, *_: i < alpha_steps, body,
                         (tf.constant(0), found, *slopes))
  last = backward(ops, bounds, len(ops), spec, lower, upper,
                  dict(zip(relus, result[2:])))
  return tf.maximum(result[1], last)


def linear_elements(ops, input_shape, num_classes, tighten=True,
                    max_tightened=None):
  """Largest linear-bound tensor per (sample, image), in float32 elements."""
  max_tightened = MAX_TIGHTENED if max_tightened is None else max_tightened
  widths = [int(np.prod(input_shape))] + [
      bound_ops._prod(op.out_shape) for op in ops]  # pylint: disable=protected-access
  largest = num_classes * max(widths)
  for index in (_tightenable(ops, max_tightened) if tighten else []):
    largest = max(largest, 2 * widths[index + 1] * max(widths[:index + 2]))
  return largest
