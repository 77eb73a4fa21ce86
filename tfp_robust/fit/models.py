"""Deterministic nets and deep ensembles (tf_keras), as posterior ensembles.

Keras models are built from an `Architecture` by one builder that both the
deterministic nets here and the Flipout nets of `vi` use, with the same
activation functions as `networks.forward`, so a trained Keras model and its
posterior ensemble compute the same function.
"""

import dataclasses
import time
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging
import tensorflow as tf
import tf_keras

from tfp_robust import ensemble as ensemble_lib
from tfp_robust import networks
from tfp_robust.reports import summaries
from tfp_robust.core import validate


@dataclasses.dataclass
class TrainConfig:
  """Mini-batch training settings shared by SGD, deep ensembles and VI."""
  epochs: int = 5
  batch_size: int = 256
  learning_rate: float = 1e-3
  seed: int = 0

  def validate(self):
    validate.integer('TrainConfig.epochs', self.epochs, 1)
    validate.integer('TrainConfig.batch_size', self.batch_size, 1)
    validate.positive('TrainConfig.learning_rate', self.learning_rate,
                      'e.g. 1e-3.')
    validate.seed('TrainConfig.seed', self.seed)
    return self


def check_training_data(architecture: networks.Architecture, x, y,
                        config: TrainConfig):
  """Config, inputs (finite, in [0, 1]) and labels (in range), up front."""
  config.validate()
  x = validate.pixels('x', x)
  y = validate.labels('y', y, architecture.num_classes)
  x, y = ensemble_lib.check_inputs(x, architecture.input_shape, y,
                                   architecture.num_classes)
  return x.numpy(), y.numpy()


def build_keras_model(architecture: networks.Architecture,
                      dense: Callable, conv2d: Callable) -> tf_keras.Model:
  """A Sequential model of `architecture` with the given layer factories.

  Args:
    architecture: the network description.
    dense: `dense(units, activation)` returns a dense-like layer.
    conv2d: `conv2d(filters, kernel_size, activation)` returns a conv layer.

  Returns:
    A `tf_keras.Sequential` producing logits.
  """
  activation = networks.ACTIVATIONS[architecture.activation]
  layers = [tf_keras.Input(shape=architecture.input_shape)]
  for layer in architecture.layers():
    kind = layer['kind']
    if kind == 'dense':
      layers.append(dense(int(layer['units']),
                          None if layer.get('logits') else activation))
    elif kind == 'conv2d':
      layers.append(conv2d(int(layer['filters']), int(layer['kernel_size']),
                           activation))
    elif kind == 'max_pool':
      size = int(layer.get('size', 2))
      layers.append(tf_keras.layers.MaxPool2D(size, size, padding='valid'))
    else:
      layers.append(tf_keras.layers.Flatten())
  return tf_keras.Sequential(layers)


def deterministic_model(architecture: networks.Architecture) -> tf_keras.Model:
  return build_keras_model(
      architecture,
      dense=lambda units, act: tf_keras.layers.Dense(units, activation=act),
      conv2d=lambda filters, k, act: tf_keras.layers.Conv2D(
          filters, k, padding='same', activation=act))


def weighted_layers(model: tf_keras.Model) -> List[tf_keras.layers.Layer]:
  """The layers holding weights, in `Architecture.param_shapes()` order."""
  return [layer for layer in model.layers if layer.trainable_weights]


class ProgressLogger(tf_keras.callbacks.Callback):
  """Logs metrics and throughput with absl, about `times` times per fit."""

  def __init__(self, name: str, num_examples: int, epochs: int,
               times: int = 10):
    super().__init__()
    self._name, self._num_examples = name, num_examples
    self._epochs, self._every = epochs, max(1, epochs // times)

  def on_epoch_begin(self, epoch, logs=None):
    if epoch % self._every == 0:
      self._start, self._first = time.time(), epoch

  def on_epoch_end(self, epoch, logs=None):
    if (epoch + 1) % self._every and epoch + 1 != self._epochs:
      return
    elapsed = time.time() - self._start
    metrics = ', '.join(f'{k}={v:.4f}' for k, v in (logs or {}).items())
    logging.info('%s epoch %d/%d: %s (%.0f examples/s)', self._name,
                 epoch + 1, self._epochs, metrics,
                 self._num_examples * (epoch + 1 - self._first) /
                 max(elapsed, 1e-9))


class SummaryCallback(tf_keras.callbacks.Callback):
  """Writes `tags(logs)` to TensorBoard at every epoch's end (step = epoch)."""

  def __init__(self, log_dir: str, tags: Callable[[dict], dict]):
    super().__init__()
    self._log_dir, self._tags = log_dir, tags

  def on_train_begin(self, logs=None):
    self._writer = summaries.open_writer(self._log_dir)

  def on_epoch_end(self, epoch, logs=None):
    summaries.scalars(self._writer, self._tags(dict(logs or {})), epoch + 1)
    self._writer.flush()

  def on_train_end(self, logs=None):
    self._writer.close()


def sgd_tags(logs: dict) -> dict:
  return {'sgd/loss': logs.get('loss'), 'sgd/accuracy': logs.get('accuracy')}


class Snapshots(tf_keras.callbacks.Callback):
  """Calls `take()` after each epoch in `epochs`; results in `taken`.

  What a run of e epochs ends with is what a longer run holds after epoch
  e (same seed, same shuffles, same optimiser state), so one training
  serves every shorter one.
  """

  def __init__(self, epochs: Sequence[int], take: Callable[[], object]):
    super().__init__()
    self._epochs, self._take = set(int(e) for e in epochs), take
    self.taken = {}

  def on_epoch_end(self, epoch, logs=None):
    if epoch + 1 in self._epochs:
      self.taken[epoch + 1] = self._take()


def fit_keras(model, x, y, config: TrainConfig, name: str,
              log_dir: Optional[str] = None, metrics=('accuracy',),
              tags: Callable[[dict], dict] = sgd_tags, callbacks=()):
  """Trains `model` on logits with Adam; returns the Keras history.

  With `log_dir`, `tags(logs)` (by default `sgd/loss` and `sgd/accuracy`)
  goes to TensorBoard at every epoch; `callbacks` are added to Keras' list.
  A model built in a `strategy.scope()` trains data-parallel (see
  `build_in_scope`): `config.batch_size` is the global batch.
  """
  # The model's strategy (the default one unless it was built in a
  # `strategy.scope()`) also holds the optimizer's and metrics' variables.
  with model.distribute_strategy.scope():
    model.compile(
        optimizer=tf_keras.optimizers.Adam(config.learning_rate),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=list(metrics))
  callbacks = [ProgressLogger(name, len(x), config.epochs)] + list(callbacks)
  if log_dir:
    callbacks.append(SummaryCallback(log_dir, tags))
  return model.fit(x, y, batch_size=config.batch_size, epochs=config.epochs,
                   shuffle=True, verbose=0, callbacks=callbacks)


def build_in_scope(build: Callable[[], tf_keras.Model],
                   strategy: Optional[tf.distribute.Strategy],
                   num_examples: int, batch_size: int) -> tf_keras.Model:
  """`build()` inside `strategy.scope()` (or as is when `strategy` is None).

  A model built in the scope trains data-parallel under `model.fit`: every
  global batch of `batch_size` examples (the same examples, in the same
  shuffled order, as on one device) is split over the replicas, each
  computes the gradient of its part, and the gradients are summed before
  one optimizer step, so the weights follow the one-device run within float
  rounding. Keras averages each replica's loss over its own part and
  divides by the number of replicas, which is the global mean only when
  the batch splits evenly: a last partial batch that does not (e.g. 53
  examples on 2 replicas) weights its examples slightly differently from
  one device; this is logged.
  """
  if strategy is None:
    return build()
  if not isinstance(strategy, tf.distribute.Strategy):
    raise TypeError('strategy must be a tf.distribute.Strategy (e.g. '
                    'tf.distribute.MirroredStrategy()), got '
                    f'{type(strategy).__name__}.')
  replicas = strategy.num_replicas_in_sync
  last = num_examples % batch_size
  if batch_size % replicas or last % replicas:
    logging.info('Data-parallel training on %d replicas: a global batch of '
                 '%d (last batch %d) does not split evenly, so those batches '
                 'weight examples per replica, not exactly as on one device.',
                 replicas, batch_size, last or batch_size)
  with strategy.scope():
    return build()


def train_deterministic(architecture: networks.Architecture, x, y,
                        config: TrainConfig,
                        log_dir: Optional[str] = None,
                        strategy: Optional[tf.distribute.Strategy] = None
                        ) -> ensemble_lib.PosteriorEnsemble:
  """Trains one net by maximum likelihood; returns it as an S = 1 ensemble.

  With `strategy` (a `tf.distribute.Strategy`) the training is
  data-parallel over its replicas, with the same global batch
  (`build_in_scope`).
  """
  return train_deterministic_at_epochs(architecture, x, y, config,
                                       [config.epochs], log_dir,
                                       strategy)[config.epochs]


def train_deterministic_at_epochs(architecture: networks.Architecture, x, y,
                                  config: TrainConfig, epochs: Sequence[int],
                                  log_dir: Optional[str] = None,
                                  strategy: Optional[
                                      tf.distribute.Strategy] = None
                                  ) -> Dict[int, ensemble_lib.PosteriorEnsemble]:
  """One training of `max(epochs)` epochs; the net after each epoch asked.

  `strategy`: optional, data-parallel training (see `train_deterministic`).

  Returns:
    dict epoch -> S = 1 ensemble, equal to what `train_deterministic` with
    that many epochs returns (tested).
  """
  config = dataclasses.replace(config, epochs=max(int(e) for e in epochs))
  x, y = check_training_data(architecture, x, y, config)
  tf_keras.utils.set_random_seed(config.seed)
  model = build_in_scope(lambda: deterministic_model(architecture), strategy,
                         len(x), config.batch_size)

  def take():
    params = []
    for layer in weighted_layers(model):
      params += [tf.identity(layer.kernel)[None], tf.identity(layer.bias)[None]]
    return ensemble_lib.ArchitectureEnsemble(architecture, params,
                                             method='sgd')

  snapshots = Snapshots(epochs, take)
  fit_keras(model, x, y, config, name=f'sgd(seed={config.seed})',
            log_dir=log_dir, callbacks=[snapshots])
  return snapshots.taken


def train_deep_ensemble(architecture: networks.Architecture, x, y,
                        config: TrainConfig, num_members: int,
                        log_dir: Optional[str] = None,
                        strategy: Optional[tf.distribute.Strategy] = None
                        ) -> ensemble_lib.PosteriorEnsemble:
  """Trains `num_members` nets from seeds `seed, seed + 1, ...` and stacks them.

  `strategy`: optional, each member trained data-parallel over its replicas.
  """
  num_members = validate.integer('num_members', num_members, 1)
  x, y = check_training_data(architecture, x, y, config)
  members = []
  for member in range(num_members):
    member_config = dataclasses.replace(config, seed=config.seed + member)
    members.append(train_deterministic(
        architecture, x, y, member_config,
        log_dir=f'{log_dir}/member_{member}' if log_dir else None,
        strategy=strategy))
  return ensemble_lib.stack(members, method='ensemble')

