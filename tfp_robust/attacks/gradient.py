"""L-infinity attacks on a posterior ensemble.

Every attack is a plain function of (ensemble, inputs, labels, settings) and
returns adversarial inputs in the eps-ball around the inputs and in [0, 1].
The objective is chosen by name (see `losses`): the paper's attacks use
`expected`, whose gradient is E_w[grad_x L(x, w)] (its Eq. 2); `predictive`
attacks the averaged model itself. Seeds are explicit and stateless.
"""

import dataclasses
import functools

import tensorflow as tf

from tfp_robust.attacks import batching as attack_batches
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.evaluation import gradients
from tfp_robust.attacks import losses
from tfp_robust.core import seeds
from tfp_robust.core import validate


def _check_eps(eps):
  return validate.eps('eps', eps)


def project(x_adv, x, eps):
  """Projects onto the eps-ball around `x` intersected with [0, 1]."""
  return tf.clip_by_value(tf.clip_by_value(x_adv, x - eps, x + eps), 0.0, 1.0)


def random_sign(x, eps, seed=0):
  """The paper's random attack: each component moves by +eps or -eps.

  Args:
    x: inputs `[B, ...]` in [0, 1].
    eps: perturbation size (>= 0).
    seed: int or stateless seed `[2]`.

  Returns:
    `clip(x + eps * r, 0, 1)` with independent random signs `r`.
  """
  eps = _check_eps(eps)
  x = tf.convert_to_tensor(x, tf.float32)
  ensemble_lib.check_inputs(x, x.shape[1:])
  signs = tf.where(tf.random.stateless_uniform(tf.shape(x), seeds.stateless_seed(seed)) < 0.5,
                   -1.0, 1.0)
  return project(x + eps * signs, x, eps)


def fgsm(ensemble, x, labels, eps, loss='expected'):
  """Fast gradient sign method: one eps step along the sign of the gradient.

  Args:
    ensemble: a `PosteriorEnsemble`.
    x: inputs `[B, *input_shape]` in [0, 1].
    labels: labels `[B]`.
    eps: L-infinity radius (>= 0).
    loss: objective name; 'expected' is the paper's Eq. 2.

  Returns:
    Adversarial inputs `[B, *input_shape]`.
  """
  eps = _check_eps(eps)
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  _, gradient = gradients.loss_and_input_gradient(ensemble, x, labels, loss)
  return project(x + eps * tf.sign(gradient), x, eps)


@dataclasses.dataclass
class PGDResult:
  """Adversarial inputs and, per example, the loss they reach."""
  x_adv: tf.Tensor
  loss: tf.Tensor
  misclassified: tf.Tensor


def _pgd_run_fn(ensemble, loss, num_steps, keep_best_iterate, compiled):
  """One PGD restart as a `tf.while_loop`: `(chunk, x, labels, eps, step,
  x_start) -> (x_adv,)`, compiled, or run step by step (eagerly) when
  `compiled` is False (the chunked fallback, and the reference in tests).
  """
  loss_fn = losses.get(loss)

  def run(chunk, x, labels, eps, step_size, x_start):
    def evaluate(point):
      return attack_batches.loss_gradient_prediction(ensemble, chunk, point,
                                                     labels, loss_fn)

    _, grad, predicted = evaluate(x_start)
    fooled = predicted != labels

    def body(step, x_adv, grad, best, fooled):
      x_adv = project(x_adv + step_size * tf.sign(grad), x, eps)
      # The gradient for the next step and the prediction at this iterate
      # come from one evaluation.
      _, grad, predicted = evaluate(x_adv)
      now = predicted != labels
      mask = tf.reshape(now & ~fooled, [-1] + [1] * (len(x.shape) - 1))
      return step + 1, x_adv, grad, tf.where(mask, x_adv, best), fooled | now

    # One iteration at a time: a model that draws its weights on every call
    # (Flipout, MC dropout) would otherwise draw those of the next
    # iterations ahead (they do not depend on the iterate), holding up to
    # ten iterations' draws at once.
    _, x_adv, _, best, fooled = tf.while_loop(
        lambda step, *_: step < num_steps, body,
        (tf.constant(0), x_start, grad, x_start, fooled),
        parallel_iterations=1)
    if not keep_best_iterate:
      return (x_adv,)
    mask = tf.reshape(fooled, [-1] + [1] * (len(x.shape) - 1))
    return (tf.where(mask, best, x_adv),)

  if not compiled:
    return run
  return compile_loop(run, ensemble.jit_compile)


def compile_loop(run, jit_compile: bool):
  """An attack loop built for one ensemble and setting, as a `tf.function`
  whose retracing is counted on its own.

  TensorFlow counts traces per code object, so the loops that one closure
  (`run`) gives for each ensemble, loss and step count, each traced once
  (twice when the batch size changes: `reduce_retracing` then relaxes the
  batch axis), looked like one function retracing ("5 out of the last 5
  calls ... triggered tf.function retracing") when several models or
  settings were attacked. A `functools.partial` has no code object of its
  own, so TensorFlow counts the traces of this function alone: a real
  retracing (a new trace on every call) is still reported.
  """
  return tf.function(functools.partial(run), jit_compile=jit_compile,
                     reduce_retracing=True)


def pgd_loop(ensemble, loss='expected', num_steps: int = 15,
             keep_best_iterate: bool = False, compiled: bool = True):
  """The PGD restart loop `pgd` runs on `ensemble` with these settings.

  Built once per ensemble and setting (loss, steps, keeping the best
  iterate, compiled or not) and cached on the ensemble, so a repeated
  attack reuses it: the compiled loop (a `tf.function`) is traced and
  compiled on the first call of each batch shape only, and eps and the
  step size are arguments, not constants of the trace. A new ensemble
  object (even of the same weights) builds its own.
  """
  key = ('pgd', loss, int(num_steps), bool(keep_best_iterate), bool(compiled))
  return ensemble.compiled(key, lambda: _pgd_run_fn(
      ensemble, loss, int(num_steps), bool(keep_best_iterate),
      bool(compiled)))


def pgd(ensemble, x, labels, eps, num_steps=15, step_size=None,
        restarts=1, random_start=True, loss='expected', seed=0,
        return_details=False, keep_best_iterate=False, compiled=True):
  """Projected gradient descent (Madry et al.) in the L-infinity ball.

  Each step moves by `step_size` along the gradient's sign and projects onto
  the eps-ball and [0, 1]. Over restarts, each example keeps the run that
  misclassifies it, or else the one with the highest loss. Each restart's
  iteration loop is one compiled `tf.while_loop` per image batch (batches
  that hold every sample in one chunk); `compiled=False`, or an ensemble too
  large for one chunk, runs the same loop step by step.

  Args:
    ensemble: a `PosteriorEnsemble`.
    x: inputs `[B, *input_shape]` in [0, 1].
    labels: labels `[B]`.
    eps: L-infinity radius (>= 0).
    num_steps: gradient steps per restart.
    step_size: step size; defaults to 2.5 * eps / num_steps.
    restarts: independent runs, each from its own random start.
    random_start: start from a uniform point of the eps-ball.
    loss: objective name (see `losses.LOSSES`) or a loss function.
    seed: int or stateless seed `[2]` for the random starts.
    return_details: return a `PGDResult` instead of the inputs alone.
    keep_best_iterate: keep, per example, an iterate that misclassified if
      any did (free: every iterate is evaluated anyway); otherwise each
      restart's last iterate (Madry et al.'s PGD).
    compiled: run the loop compiled (default) or step by step.

  Returns:
    Adversarial inputs `[B, *input_shape]`, or a `PGDResult`.
  """
  eps = _check_eps(eps)
  num_steps = validate.integer('num_steps', num_steps, 1)
  restarts = validate.integer('restarts', restarts, 1)
  step_size = 2.5 * eps / num_steps if step_size is None else float(step_size)
  if not step_size >= 0:
    raise ValueError(f'step_size must be >= 0, got {step_size}.')
  losses.get(loss)
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  seed = seeds.stateless_seed(seed)
  size, chunk = attack_batches.plan(ensemble, int(x.shape[0]))
  run = pgd_loop(ensemble, loss, num_steps, keep_best_iterate,
                 compiled and chunk is not None)
  eps_t = tf.constant(eps, tf.float32)
  step_t = tf.constant(step_size, tf.float32)
  best = None
  for restart in range(restarts):
    if random_start:
      noise = tf.random.stateless_uniform(
          tf.shape(x), tf.random.experimental.stateless_fold_in(seed, restart),
          -eps, eps)
      start = project(x + noise, x, eps)
    else:
      start = x
    x_adv, = attack_batches.map_batches(
        ensemble, x, labels,
        lambda xb, yb, positions, s=start: run(
            chunk, xb, yb, eps_t, step_t, tf.gather(s, positions)), size)
    best = _keep_better(best, PGDResult(x_adv, *_score(ensemble, x_adv,
                                                       labels, loss)))
  return best if return_details else best.x_adv


def _keep_better(best, candidate):
  """Per example, the misclassifying result, else the higher loss."""
  if best is None:
    return candidate
  better = ((candidate.misclassified & ~best.misclassified) |
            ((candidate.misclassified == best.misclassified) &
             (candidate.loss > best.loss)))
  mask = tf.reshape(better, [-1] + [1] * (len(best.x_adv.shape) - 1))
  return PGDResult(tf.where(mask, candidate.x_adv, best.x_adv),
                   tf.where(better, candidate.loss, best.loss),
                   best.misclassified | candidate.misclassified)


def _score(ensemble, x_adv, labels, loss):
  log_probs = ensemble.log_probs(x_adv)
  value = losses.get(loss)(log_probs, labels)
  predicted = tf.argmax(ensemble_lib.predictive_from_log_probs(log_probs),
                        axis=-1, output_type=tf.int32)
  return value, predicted != labels


def strongest(ensemble, x, labels, candidates):
  """Per example, the candidate input that fools the predictive, if any.

  Args:
    ensemble: a `PosteriorEnsemble`.
    x: clean inputs `[B, ...]`.
    labels: labels `[B]`.
    candidates: adversarial inputs from several attacks, each `[B, ...]`.

  Returns:
    For each example, among the candidates the predictive misclassifies (or
    among all if none does), the one with the highest predictive
    cross-entropy.
  """
  best = None
  for candidate in candidates:
    best = _keep_better(best, PGDResult(
        candidate, *_score(ensemble, candidate, labels, 'predictive')))
  return best.x_adv
