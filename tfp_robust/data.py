"""Datasets: half moons from scikit-learn, MNIST and Fashion-MNIST from TFDS.

Every input this package handles lives in [0, 1], the range that attacks clip
to. Half moons are mapped into the unit square by a fixed affine map (the same
for every seed and size), so that eps means the same thing in every run.
"""

import dataclasses
import glob
import os
from typing import Optional

import numpy as np

from tfp_robust import validate

TFDS_DATASETS = ('mnist', 'fashion_mnist')
DATASETS = ('half_moons',) + TFDS_DATASETS

# make_moons draws points in about [-1.1, 2.1] x [-0.6, 1.1] before noise; this
# box leaves room for several noise standard deviations at noise 0.1.
_MOONS_LOW = np.array([-2.0, -1.5], np.float32)
_MOONS_HIGH = np.array([3.0, 2.0], np.float32)


@dataclasses.dataclass
class Dataset:
  """Train and test arrays; inputs float32 in [0, 1], labels int32."""
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int

  @property
  def input_shape(self):
    return tuple(self.x_train.shape[1:])


def half_moons(num_train: int, num_test: int = 1000, noise: float = 0.1,
               seed: int = 0) -> Dataset:
  """Two interleaving half circles (scikit-learn's `make_moons`).

  Args:
    num_train: number of training points.
    num_test: number of test points, drawn independently of the training set.
    noise: standard deviation of the Gaussian noise added to the points.
    seed: seed of the draw; the test points come from their own stream, so
      they are the same for every num_train.

  Returns:
    A `Dataset` with inputs `[N, 2]` mapped into [0, 1]^2.
  """
  from sklearn import datasets as sk_datasets  # Heavy import, needed only here.
  if num_train < 1 or num_test < 1:
    raise ValueError(f'num_train and num_test must be positive, got '
                     f'{num_train} and {num_test}.')
  if noise < 0:
    raise ValueError(f'noise must be >= 0, got {noise}.')
  def draw(count, stream):
    # Separate streams: the test points do not depend on num_train.
    x, y = sk_datasets.make_moons(count, noise=noise,
                                  random_state=np.random.RandomState(
                                      [seed, stream]))
    x = (x.astype(np.float32) - _MOONS_LOW) / (_MOONS_HIGH - _MOONS_LOW)
    return np.clip(x, 0.0, 1.0), y.astype(np.int32)

  return Dataset('half_moons', *draw(num_train, 0), *draw(num_test, 1),
                 num_classes=2)


def default_data_dir() -> Optional[str]:
  return os.environ.get('TFDS_DATA_DIR')


def load_tfds(name: str, data_dir: Optional[str] = None, flat: bool = True,
              num_train: Optional[int] = None,
              num_test: Optional[int] = None) -> Dataset:
  """MNIST or Fashion-MNIST from prepared TFDS files, offline.

  Args:
    name: 'mnist' or 'fashion_mnist'.
    data_dir: the TFDS data directory; defaults to `$TFDS_DATA_DIR`.
    flat: inputs `[N, 784]` if True, else images `[N, 28, 28, 1]`.
    num_train: keep the first `num_train` training images (all if None).
    num_test: keep the first `num_test` test images (all if None).

  Returns:
    A `Dataset` with pixels scaled to [0, 1].

  Raises:
    ValueError: for an unknown name, or when the prepared files are missing.
  """
  if name not in TFDS_DATASETS:
    raise ValueError(f'Unknown dataset {name!r}; choose one of {DATASETS}.')
  data_dir = data_dir or default_data_dir()
  if not data_dir:
    raise ValueError(f'No TFDS data directory for {name!r}: pass data_dir or '
                     'set TFDS_DATA_DIR to a directory holding the prepared '
                     f'{name} dataset (e.g. ../shared/tensorflow_datasets).')
  for key, limit in (('num_train', num_train), ('num_test', num_test)):
    if limit is not None:
      # A negative count would slice from the end (-59700 keeps 300 images).
      validate.integer(key, limit, 1, fix='Pass None (or 0 in a config) for '
                       'the whole split, or a positive number of images.')
  prepared = os.path.join(data_dir, name)
  if not os.path.isdir(prepared) or not glob.glob(
      os.path.join(prepared, '*', 'dataset_info.json')):
    raise ValueError(f'Dataset {name!r} is not prepared under {data_dir!r} '
                     f'(no {prepared}/<version>/dataset_info.json) and cannot '
                     'be downloaded offline; set TFDS_DATA_DIR (or data_dir) '
                     'to the directory that holds the prepared dataset, e.g. '
                     '../shared/tensorflow_datasets.')
  import tensorflow_datasets as tfds  # Heavy import, needed only here.
  splits = {}
  for split, limit in (('train', num_train), ('test', num_test)):
    spec = split if limit is None else f'{split}[:{int(limit)}]'
    arrays = tfds.as_numpy(tfds.load(name, split=spec, data_dir=data_dir,
                                     download=False, batch_size=-1))
    images = arrays['image'].astype(np.float32) / 255.0
    if flat:
      images = images.reshape(images.shape[0], -1)
    splits[split] = (images, arrays['label'].astype(np.int32))
  return Dataset(name, *splits['train'], *splits['test'], num_classes=10)


def load(name: str, **kwargs) -> Dataset:
  """Loads any dataset of `DATASETS` by name."""
  if name == 'half_moons':
    return half_moons(**kwargs)
  if name in TFDS_DATASETS:
    return load_tfds(name, **kwargs)
  raise ValueError(f'Unknown dataset {name!r}; choose one of {DATASETS}.')
