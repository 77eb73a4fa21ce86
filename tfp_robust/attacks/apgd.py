"""Auto-PGD (Croce and Hein, 2020) in the L-infinity ball, compiled.

APGD needs no step size per model: it starts at 2 eps, moves with momentum
0.75, and at checkpoints (the first after 22% of the iterations, then ever
closer, down to 6%) halves the step and returns to the best point for every
image whose loss rose in at most 75% of the steps since the last checkpoint,
or whose step was not halved last time and whose best loss did not improve.
The schedule follows `autoattack/autopgd_base.py` of fra31/auto-attack. The
whole iteration loop is one `tf.while_loop` in one compiled call per image
batch (see `attack_batches`).

Objectives (by name, from `losses`): 'predictive' (cross-entropy of the
predictive mean, APGD-CE), 'dlr' (difference of log-ratios on the predictive
log-probabilities, APGD-DLR, at least 3 classes), 'margin', and
'dlr_targeted' (APGD-T: the targeted DLR towards a class per image, at
least 4 classes); all are computed from log-probabilities, so none
underflows on confident points.
"""


import tensorflow as tf

from tfp_robust.attacks import batching as attack_batches
from tfp_robust.attacks import gradient as attacks
from tfp_robust import ensemble as ensemble_lib
from tfp_robust.attacks import losses
from tfp_robust.core import seeds
from tfp_robust.core import validate

RHO = 0.75
MOMENTUM = 0.75
TARGETED = 'dlr_targeted'


def _schedule(num_steps):
  """First checkpoint, its decrement, and the smallest gap (as AutoAttack)."""
  return (max(int(0.22 * num_steps), 1), max(int(0.03 * num_steps), 1),
          max(int(0.06 * num_steps), 1))


def _project(x_adv, x, eps):
  return tf.clip_by_value(tf.clip_by_value(x_adv, x - eps, x + eps), 0.0, 1.0)


def _per_example(mask, tensor):
  return tf.reshape(mask, [-1] + [1] * (len(tensor.shape) - 1))


def _build_run(ensemble, loss_name, num_steps, eot_iter, compiled=True):
  """A single APGD run: `(chunk, x, labels, eps, noise, targets)` -> results.

  `targets` (a class per image) is read by the targeted loss only.
  Compiled (one `tf.while_loop`) for the plan that holds every sample in one
  chunk; eager (the same loop, run step by step) for the chunked fallback.
  """
  first_check, decrement, min_gap = _schedule(num_steps)

  def run(chunk, x, labels, eps, noise, targets):
    if loss_name == TARGETED:
      loss_fn = lambda log_probs, y: losses.predictive_targeted_dlr(
          log_probs, y, targets)
    else:
      loss_fn = losses.get(loss_name)

    def evaluate(chunk, x_adv, labels):
      return attack_batches.loss_gradient_prediction(
          ensemble, chunk, x_adv, labels, loss_fn, eot_iter)

    # A uniform direction scaled so its largest component is eps.
    flat_max = tf.reduce_max(tf.abs(tf.reshape(noise, [tf.shape(x)[0], -1])),
                             axis=-1)
    start = x + eps * noise / _per_example(flat_max + 1e-12, x)
    x_adv = tf.clip_by_value(start, 0.0, 1.0)
    loss, grad, predicted = evaluate(chunk, x_adv, labels)
    fooled = predicted != labels
    batch = tf.shape(x)[0]
    step = tf.fill([batch], 2.0 * eps)
    state = dict(
        i=tf.constant(0), x_adv=x_adv, x_old=x_adv, grad=grad,
        x_best=x_adv, loss_best=loss, grad_best=grad, x_best_adv=x_adv,
        fooled=fooled, loss_prev=loss, increases=tf.zeros([batch]),
        step=step, since_check=tf.constant(0),
        gap=tf.constant(first_check), reduced_last=tf.ones([batch], tf.bool),
        loss_best_last=loss)

    def body(s):
      momentum = tf.where(s['i'] > 0, MOMENTUM, 1.0)
      step = _per_example(s['step'], x)
      z = _project(s['x_adv'] + step * tf.sign(s['grad']), x, eps)
      x_new = _project(s['x_adv'] + momentum * (z - s['x_adv']) +
                       (1.0 - momentum) * (s['x_adv'] - s['x_old']), x, eps)
      loss, grad, predicted = evaluate(chunk, x_new, labels)
      now_fooled = predicted != labels
      x_best_adv = tf.where(_per_example(now_fooled, x), x_new,
                            s['x_best_adv'])
      improved = loss > s['loss_best']
      x_best = tf.where(_per_example(improved, x), x_new, s['x_best'])
      grad_best = tf.where(_per_example(improved, x), grad, s['grad_best'])
      loss_best = tf.where(improved, loss, s['loss_best'])
      increases = s['increases'] + tf.cast(loss > s['loss_prev'], tf.float32)
      since_check = s['since_check'] + 1
      at_check = tf.equal(since_check, s['gap'])
      oscillating = increases <= tf.cast(s['gap'], tf.float32) * RHO
      stalled = ~s['reduced_last'] & (s['loss_best_last'] >= loss_best)
      reduce = at_check & (oscillating | stalled)
      mask = _per_example(reduce, x)
      return (dict(
          i=s['i'] + 1,
          x_adv=tf.where(mask, x_best, x_new), x_old=s['x_adv'],
          grad=tf.where(mask, grad_best, grad),
          x_best=x_best, loss_best=loss_best, grad_best=grad_best,
          x_best_adv=x_best_adv, fooled=s['fooled'] | now_fooled,
          loss_prev=loss,
          increases=tf.where(at_check, tf.zeros_like(increases), increases),
          step=tf.where(reduce, s['step'] / 2.0, s['step']),
          since_check=tf.where(at_check, 0, since_check),
          gap=tf.where(at_check, tf.maximum(s['gap'] - decrement, min_gap),
                       s['gap']),
          reduced_last=tf.where(at_check, reduce, s['reduced_last']),
          loss_best_last=tf.where(at_check, loss_best, s['loss_best_last'])),)

    # One iteration at a time (see attacks._pgd_run_fn): models that draw
    # weights on every call would draw later iterations' ahead.
    state = tf.while_loop(lambda s: s['i'] < num_steps, body, (state,),
                          parallel_iterations=1)[0]
    x_out = tf.where(_per_example(state['fooled'], x), state['x_best_adv'],
                     state['x_best'])
    return x_out, state['loss_best'], state['fooled']

  if not compiled:
    return run
  return attacks.compile_loop(run, ensemble.jit_compile)


def apgd_run(ensemble, x, labels, eps, num_steps=100, loss='predictive',
             seed=0, eot_iter=1, targets=None):
  """One APGD run from a random start, on every image of `x`.

  Args:
    ensemble: a `PosteriorEnsemble`.
    x: inputs `[B, *input_shape]` in [0, 1] (checked).
    labels: labels `[B]`.
    eps: L-infinity radius (>= 0).
    num_steps: iterations (AutoAttack uses 100).
    loss: 'predictive', 'dlr', 'margin', 'expected' or 'dlr_targeted'.
    seed: int or stateless seed `[2]` for the random start.
    eot_iter: evaluations averaged per gradient (for resampling ensembles).
    targets: for 'dlr_targeted', the target class of each image `[B]`.

  Returns:
    `(x_adv, best_loss, fooled)`: per image an iterate that fooled the
    predictive if one did, else the highest-loss iterate.
  """
  eps = validate.eps('eps', eps)
  num_steps = validate.integer('num_steps', num_steps, 1)
  eot_iter = validate.integer('eot_iter', eot_iter, 1)
  if loss == TARGETED:
    if ensemble.num_classes < 4:
      raise ValueError(f"loss='{TARGETED}' needs at least 4 classes; the "
                       f'model has {ensemble.num_classes}: use '
                       f"loss='{dlr_or_margin(ensemble.num_classes)}'.")
    if targets is None:
      raise ValueError(f"loss='{TARGETED}' needs targets, a class per "
                       'image.')
    _, targets = ensemble_lib.check_inputs(x, ensemble.input_shape, targets,
                                           ensemble.num_classes)
  else:
    losses.get(loss)
  if loss == 'dlr' and ensemble.num_classes < 3:
    raise ValueError("loss='dlr' needs at least 3 classes; use 'margin' for "
                     f'{ensemble.num_classes}.')
  x, labels = ensemble_lib.check_inputs(x, ensemble.input_shape, labels,
                                        ensemble.num_classes)
  if targets is None:
    targets = labels  # Read by the targeted loss only.
  seed = seeds.stateless_seed(seed)
  size, chunk = attack_batches.plan(ensemble, int(x.shape[0]))
  compiled = chunk is not None
  run = ensemble.compiled(
      ('apgd', loss, int(num_steps), int(eot_iter), compiled),
      lambda: _build_run(ensemble, loss, int(num_steps), int(eot_iter),
                         compiled))
  eps_t = tf.constant(eps, tf.float32)
  noise = tf.random.stateless_uniform(tf.shape(x), seed, -1.0, 1.0)
  return attack_batches.map_batches(
      ensemble, x, labels,
      lambda xb, yb, positions: run(chunk, xb, yb, eps_t,
                                    tf.gather(noise, positions),
                                    tf.gather(targets, positions)), size)


def apgd(ensemble, x, labels, eps, num_steps=100, restarts=1,
         loss='predictive', seed=0, eot_iter=1):
  """APGD with restarts; each restart attacks only the images still standing.

  Returns:
    Adversarial inputs `[B, *input_shape]`.
  """
  worst = attack_batches.WorstCase(ensemble, x, labels)
  worst.restarts(lambda xs, ys, s: apgd_run(
      ensemble, xs, ys, eps, num_steps, loss, s, eot_iter)[0], restarts,
                 seeds.stateless_seed(seed))
  return worst.x_adv


def dlr_or_margin(num_classes: int) -> str:
  """APGD's second objective: DLR where it is defined, else the margin."""
  return 'dlr' if num_classes >= 3 else 'margin'



def ranked_class(ensemble, x, rank: int):
  """The class of rank `rank` (1: the most probable) in the predictive at x."""
  predictive = ensemble_lib.predictive_from_log_probs(ensemble.log_probs(x))
  return tf.math.top_k(predictive, k=rank).indices[:, rank - 1]


def check_targets(targets, num_classes: int) -> int:
  """`targets` APGD-T runs are possible for `num_classes`, or a clear error."""
  targets = validate.integer('apgd_targets', targets, 0)
  if targets and num_classes < 4:
    validate.fail('apgd_targets', targets,
                  f'targeted DLR needs at least 4 classes; the model has '
                  f'{num_classes}', 'Set --config.attack.apgd_targets=0.')
  if targets > num_classes - 1:
    validate.fail('apgd_targets', targets,
                  f'there are only {num_classes - 1} classes besides the '
                  'label',
                  f'Set --config.attack.apgd_targets={num_classes - 1} or '
                  'fewer.')
  return targets


def apgd_cascade(ensemble, x, labels, eps, num_steps=100, restarts=5, seed=0,
                 eot_iter=1, targets=0):
  """APGD-CE then APGD-DLR (margin for two classes), restarts on survivors,
  then `targets` APGD-T runs.

  Every run attacks only the images no earlier run fooled, as AutoAttack
  does; per image the strongest input found is kept. APGD-T run k (k = 1,
  ..., `targets`) aims each surviving image at the class of rank k + 1 of
  its clean predictive (the label being rank 1), one run per target, as
  AutoAttack's APGD-T.

  Returns:
    Adversarial inputs `[B, *input_shape]`.
  """
  targets = check_targets(targets, ensemble.num_classes)
  worst = attack_batches.WorstCase(ensemble, x, labels)
  seed = seeds.stateless_seed(seed)
  for index, loss in enumerate(('predictive',
                                dlr_or_margin(ensemble.num_classes))):
    worst.restarts(lambda xs, ys, s, l=loss: apgd_run(
        ensemble, xs, ys, eps, num_steps, l, s, eot_iter)[0], restarts, seed,
                   offset=1000 * index, name=f'APGD-{loss}')
  for rank in range(2, targets + 2):
    worst.restarts(lambda xs, ys, s, r=rank: apgd_run(
        ensemble, xs, ys, eps, num_steps, TARGETED, s, eot_iter,
        targets=ranked_class(ensemble, xs, r))[0], 1, seed,
                   offset=2000 + rank, name=f'APGD-T (class of rank {rank})')
  return worst.x_adv
