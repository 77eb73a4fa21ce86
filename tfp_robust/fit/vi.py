"""Variational inference with Flipout layers (`tfp.layers`).

The model is the `Architecture` built with `DenseFlipout` and
`Convolution2DFlipout`, mean-field Gaussian posteriors and standard normal
priors, trained on the negative ELBO per example: the cross-entropy plus the
KL divergence divided by the training-set size. Its posterior ensemble holds S
weight draws from the variational posterior, drawn once with a stateless seed;
Flipout's per-example sign flips only reduce the variance of training
gradients and are not part of the predictive that is attacked.
"""

import dataclasses
import json
import os
from typing import List, Optional

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from tfp_robust import ensemble as ensemble_lib
from tfp_robust.core import files
from tfp_robust.fit import models
from tfp_robust import networks
from tfp_robust.core import seeds


@dataclasses.dataclass
class VIResult:
  """The fitted Keras model and the ELBO per training example, per epoch."""
  model: object
  elbo_per_example: List[float]
  num_train: int


def _posterior_fn(seed: int, layer: int, part: int, is_singular: bool):
  """tfp's mean-field posterior with every initialiser seeded.

  tfp.layers' default initialisers are unseeded, so every run and every
  layer starts from the same variational means (the first values of two
  layers coincide). Here each (run seed, layer, kernel or bias) gets its
  own stream, with tfp's default scales: means N(0, 0.1), untransformed
  scales N(-3, 0.1).
  """
  base = seed * 1000 + 4 * layer + 2 * part
  return tfp.layers.default_mean_field_normal_fn(
      is_singular=is_singular,
      loc_initializer=tf.random_normal_initializer(stddev=0.1, seed=base),
      untransformed_scale_initializer=tf.random_normal_initializer(
          mean=-3.0, stddev=0.1, seed=base + 1))


def flipout_model(architecture: networks.Architecture, num_train: int,
                  seed: int = 0):
  """The Flipout Keras model of `architecture`, KL scaled by 1 / num_train."""
  def scaled_kl(q, p, _):
    return tfp.distributions.kl_divergence(q, p) / float(num_train)

  counter = iter(range(10**6))

  def seeded(layer):
    return dict(kernel_posterior_fn=_posterior_fn(seed, layer, 0, False),
                bias_posterior_fn=_posterior_fn(seed, layer, 1, True),
                kernel_divergence_fn=scaled_kl, seed=seed * 1000 + layer)

  return models.build_keras_model(
      architecture,
      dense=lambda units, act: tfp.layers.DenseFlipout(
          units, activation=act, **seeded(next(counter))),
      conv2d=lambda filters, k, act: tfp.layers.Convolution2DFlipout(
          filters, k, padding='same', activation=act,
          **seeded(next(counter))))


def vi_tags(logs: dict) -> dict:
  """ELBO, expected negative log-likelihood and KL, per training example."""
  return {'vi/elbo': -logs['loss'], 'vi/nll': logs['nll'],
          'vi/kl': logs['loss'] - logs['nll'], 'vi/accuracy': logs['accuracy']}


def train(architecture: networks.Architecture, x, y,
          config: models.TrainConfig,
          log_dir: Optional[str] = None, callbacks=(),
          strategy: Optional[tf.distribute.Strategy] = None) -> VIResult:
  """Fits the variational posterior by maximising the ELBO with Adam.

  Args:
    architecture: the network description.
    x: training inputs `[N, *input_shape]` in [0, 1].
    y: training labels `[N]`.
    config: epochs, batch size, learning rate and seed.
    log_dir: optional TensorBoard directory.
    strategy: optional `tf.distribute.Strategy`: data-parallel training,
      the model built in its scope, `config.batch_size` the global batch
      (`models.build_in_scope`). Each replica's Flipout layers draw their
      own perturbations with tfp's stateful seeded ops, so the noise (and
      hence the ELBO trajectory) is not the one-device run's, only as
      good; the KL term is counted once (Keras divides each replica's
      regularisation loss by the number of replicas).

  Returns:
    A `VIResult`; Keras' loss is the negative ELBO per example (the KL
    regularisation losses of the Flipout layers are included in it).
  """
  x, y = models.check_training_data(architecture, x, y, config)
  tf_keras.utils.set_random_seed(config.seed)
  model = models.build_in_scope(
      lambda: flipout_model(architecture, len(x), config.seed), strategy,
      len(x), config.batch_size)
  # Keras' loss is the mean over batches of (cross-entropy + KL / N), each
  # batch weighted by its size, as is the `nll` metric: their difference is
  # the epoch's mean KL term.
  with model.distribute_strategy.scope():  # Metrics live with the model.
    nll = tf_keras.metrics.SparseCategoricalCrossentropy(name='nll',
                                                         from_logits=True)
  history = models.fit_keras(
      model, x, y, config, name=f'vi(seed={config.seed})', log_dir=log_dir,
      metrics=['accuracy', nll], tags=vi_tags, callbacks=callbacks)
  elbo = [-float(v) for v in history.history['loss']]
  return VIResult(model, elbo, len(x))


def train_at_epochs(architecture: networks.Architecture, x, y,
                    config: models.TrainConfig, epochs, num_samples: int,
                    seed=0, log_dir: Optional[str] = None,
                    strategy: Optional[tf.distribute.Strategy] = None):
  """One VI training of `max(epochs)` epochs; the posterior after each asked.

  `strategy`: optional, data-parallel training (see `train`).

  Returns:
    dict epoch -> `posterior_ensemble(model after that epoch, num_samples,
    seed)`, what a training of that many epochs gives.
  """
  config = dataclasses.replace(config, epochs=max(int(e) for e in epochs))
  holder = {}

  def take():
    return posterior_ensemble(holder['model'], architecture, num_samples,
                              seed=seed)

  class _Bind(models.Snapshots):
    def set_model(self, model):
      super().set_model(model)
      holder['model'] = model

  snapshots = _Bind(epochs, take)
  train(architecture, x, y, config, log_dir=log_dir, callbacks=[snapshots],
        strategy=strategy)
  return snapshots.taken


def posterior_ensemble(result_or_model, architecture: networks.Architecture,
                       num_samples: int, seed=0
                       ) -> ensemble_lib.PosteriorEnsemble:
  """Draws `num_samples` weight sets from the variational posterior.

  Args:
    result_or_model: a `VIResult` or its Keras model.
    architecture: the architecture the model was built from.
    num_samples: S, the number of draws.
    seed: int or stateless seed `[2]`; the same seed gives the same weights.

  Returns:
    A `PosteriorEnsemble` with S samples.
  """
  model = getattr(result_or_model, 'model', result_or_model)
  seed = seeds.stateless_seed(seed)
  params = []
  for index, layer in enumerate(models.weighted_layers(model)):
    layer_seed = tf.random.experimental.stateless_fold_in(seed, index)
    kernel_seed, bias_seed = tf.unstack(
        tf.random.experimental.stateless_split(layer_seed, 2))
    params.append(layer.kernel_posterior.sample(num_samples, seed=kernel_seed))
    params.append(layer.bias_posterior.sample(num_samples, seed=bias_seed))
  return ensemble_lib.ArchitectureEnsemble(architecture, params, method='vi')


VARIATIONAL_FILE = 'variational.json'


def save_variational(result: VIResult, architecture: networks.Architecture,
                     directory: str, seed: int) -> None:
  """Saves the variational parameters, so the model can resample later.

  A `tf.train.Checkpoint` of the Flipout model plus `variational.json`
  (architecture, training-set size, seed and the SHA-256 of every file),
  staged and renamed into `directory` as a whole.
  """
  with files.staged_directory(directory) as staging:
    tf.train.Checkpoint(model=result.model).write(
        os.path.join(staging, 'ckpt'))
    digests = files.file_digests(staging)
    files.write_text_atomically(os.path.join(staging, VARIATIONAL_FILE),
                                json.dumps(dict(
                                    architecture=json.loads(
                                        architecture.to_json()),
                                    num_train=int(result.num_train),
                                    seed=int(seed), sha256=digests), indent=2))


def load_variational(directory: str,
                     architecture: Optional[networks.Architecture] = None
                     ) -> tf_keras.Model:
  """The Flipout model `save_variational` wrote, its files checked first.

  With `architecture`, the description must name that architecture (checked
  before anything is built from the untrusted file).
  """
  path = os.path.join(directory, VARIATIONAL_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f'No variational parameters in {directory!r} (VI models trained '
        'before they were saved hold fixed draws only); retrain VI (delete '
        'its ensemble directory and run the binary again) to evaluate it '
        'resampled.')
  description = files.read_json(path, 'a VI description')
  if not (isinstance(description, dict) and isinstance(
      description.get('sha256'), dict)):
    files.invalid(path, 'it should hold the architecture, num_train, seed '
                  'and sha256 of the checkpoint files')
  files.check_file_digests(directory, description['sha256'], path,
                           'Retrain VI.')
  if not description['sha256']:
    files.invalid(path, 'it lists no checkpoint files', 'Retrain VI.')
  try:
    saved = networks.Architecture.from_json(
        json.dumps(description['architecture']))
    num_train, seed = int(description['num_train']), int(description['seed'])
  except (KeyError, TypeError, ValueError) as error:
    files.invalid(path, f'its architecture, num_train or seed is unreadable '
                  f'({error})', 'Retrain VI.')
  if architecture is not None and saved.to_json() != architecture.to_json():
    files.invalid(path, f'it describes {saved.to_json()}, but the VI '
                  f'ensemble beside it is {architecture.to_json()}',
                  'Retrain VI.')
  model = flipout_model(saved, num_train, seed)
  model(tf.zeros((1,) + tuple(saved.input_shape)))
  try:
    tf.train.Checkpoint(model=model).read(
        os.path.join(directory, 'ckpt')).assert_existing_objects_matched(
            ).expect_partial()
  except (AssertionError, ValueError, tf.errors.OpError) as error:
    files.invalid(directory, 'its checkpoint does not match the described '
                  f'model ({type(error).__name__}: {error})', 'Retrain VI.')
  return model
