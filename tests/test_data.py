"""Datasets: half moons and offline TFDS MNIST / Fashion-MNIST."""

import os

import numpy as np
import pytest

from tfp_robust import data
from tfp_robust.core import validate


def test_half_moons_shapes_range_and_labels():
  moons = data.half_moons(300, 200, noise=0.1, seed=0)
  assert moons.name == 'half_moons' and moons.num_classes == 2
  assert moons.x_train.shape == (300, 2) and moons.y_train.shape == (300,)
  assert moons.x_test.shape == (200, 2) and moons.y_test.shape == (200,)
  assert moons.input_shape == (2,)
  assert moons.x_train.dtype == np.float32 and moons.y_train.dtype == np.int32
  for x in (moons.x_train, moons.x_test):
    assert x.min() >= 0.0 and x.max() <= 1.0
    # The unit square is used, not a sliver of it.
    assert np.all(x.max(0) - x.min(0) > 0.4)
  assert set(np.unique(moons.y_train)) == {0, 1}
  assert 0.4 < moons.y_train.mean() < 0.6


def test_half_moons_affine_map_is_fixed():
  """Without noise the points lie on the two known half circles."""
  moons = data.half_moons(200, 100, noise=0.0, seed=1)
  x = np.concatenate([moons.x_train, moons.x_test]).astype(np.float64)
  y = np.concatenate([moons.y_train, moons.y_test])
  raw = x * np.array([5.0, 3.5]) + np.array([-2.0, -1.5])
  outer = np.hypot(raw[y == 0, 0], raw[y == 0, 1])
  inner = np.hypot(raw[y == 1, 0] - 1.0, raw[y == 1, 1] - 0.5)
  np.testing.assert_allclose(outer, 1.0, atol=1e-5)
  np.testing.assert_allclose(inner, 1.0, atol=1e-5)


def test_half_moons_is_deterministic_by_seed():
  a = data.half_moons(100, 50, seed=5)
  b = data.half_moons(100, 50, seed=5)
  c = data.half_moons(100, 50, seed=6)
  for name in ('x_train', 'y_train', 'x_test', 'y_test'):
    np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
  assert np.abs(a.x_train - c.x_train).max() > 0.1
  # Train and test points are different draws.
  assert not np.any(np.all(np.isclose(a.x_train[:, None], a.x_test[None]),
                           -1))


def test_half_moons_refuses_bad_sizes():
  with pytest.raises(ValueError, match='must be positive'):
    data.half_moons(0)
  with pytest.raises(ValueError, match='noise must be >= 0'):
    data.half_moons(10, noise=-0.1)


def test_load_dispatches_by_name():
  moons = data.load('half_moons', num_train=20, num_test=10, seed=2)
  np.testing.assert_array_equal(moons.x_train,
                                data.half_moons(20, 10, seed=2).x_train)
  with pytest.raises(ValueError, match="Unknown dataset 'cifar'"):
    data.load('cifar')
  # A TFDS dataset that is not prepared here: said so, never downloaded.
  with pytest.raises(ValueError, match="Dataset 'cifar10' is not prepared"):
    data.load_tfds('cifar10')


def test_mnist_flat_and_images():
  flat = data.load_tfds('mnist', num_train=100, num_test=50)
  assert flat.name == 'mnist' and flat.num_classes == 10
  assert flat.x_train.shape == (100, 784) and flat.x_test.shape == (50, 784)
  assert flat.y_train.shape == (100,) and flat.y_test.shape == (50,)
  assert flat.x_train.dtype == np.float32 and flat.y_train.dtype == np.int32
  assert flat.x_train.min() == 0.0 and flat.x_train.max() == 1.0
  # Pixels are k / 255.
  np.testing.assert_allclose(flat.x_train * 255, np.round(flat.x_train * 255),
                             atol=1e-4)
  assert len(np.unique(flat.y_train)) == 10
  images = data.load('mnist', flat=False, num_train=100, num_test=50)
  assert images.x_train.shape == (100, 28, 28, 1)
  assert images.input_shape == (28, 28, 1)
  np.testing.assert_array_equal(images.x_train.reshape(100, -1), flat.x_train)
  np.testing.assert_array_equal(images.y_test, flat.y_test)


def test_fashion_mnist_loads():
  fashion = data.load_tfds('fashion_mnist', num_train=60, num_test=30)
  assert fashion.x_train.shape == (60, 784) and fashion.x_test.shape == (30, 784)
  assert 0.0 <= fashion.x_train.min() and fashion.x_train.max() <= 1.0
  assert fashion.x_train.max() > 0.9
  mnist = data.load_tfds('mnist', num_train=60, num_test=30)
  assert np.abs(fashion.x_train - mnist.x_train).max() > 0.5


def test_missing_data_dir_mentions_tfds_data_dir(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match='TFDS_DATA_DIR'):
    data.load_tfds('mnist', data_dir=str(tmp_path))
  monkeypatch.delenv('TFDS_DATA_DIR', raising=False)
  assert data.default_data_dir() is None
  with pytest.raises(ValueError, match='TFDS_DATA_DIR'):
    data.load_tfds('fashion_mnist')
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'nowhere'))
  with pytest.raises(ValueError, match='TFDS_DATA_DIR'):
    data.load('mnist', num_train=10)


def _tiny_tfds(data_dir, name='tiny_shapes', shape=(8, 8, 3), classes=3):
  """A small TFDS image-classification dataset that is not MNIST, offline."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (30,) + shape, dtype=np.uint8)
  labels = rng.integers(0, classes, 30)
  features = tfds.features.FeaturesDict({
      'image': tfds.features.Image(shape=shape),
      'label': tfds.features.ClassLabel(num_classes=classes)})
  split = lambda n: tf.data.Dataset.from_tensor_slices(
      {'image': images[:n], 'label': labels[:n]})
  tfds.dataset_builders.store_as_tfds_dataset(
      name, '1.0.0', features, {'train': split(30), 'test': split(12)},
      data_dir=str(data_dir), disable_shuffling=True)
  return images, labels


def test_any_tfds_dataset_by_name_with_its_own_shape_and_classes(tmp_path):
  images, labels = _tiny_tfds(tmp_path)
  spec = data.spec('tiny_shapes', str(tmp_path))
  assert spec.input_shape == (8, 8, 3) and spec.num_classes == 3
  assert spec.splits == {'train': 30, 'test': 12}
  loaded = data.load_tfds('tiny_shapes', str(tmp_path), flat=False,
                          num_test=5)
  assert loaded.num_classes == 3 and loaded.x_test.shape == (5, 8, 8, 3)
  np.testing.assert_allclose(loaded.x_test, images[:5] / 255.0, atol=1e-6)
  np.testing.assert_array_equal(loaded.y_test, labels[:5])
  assert data.load('tiny_shapes', data_dir=str(tmp_path)).x_test.shape == (
      12, 192)
  # Unknown: the refused name is not among the choices offered.
  with pytest.raises(ValueError) as error:
    data.spec('tiny_shape', str(tmp_path))
  message = str(error.value)
  assert "Unknown dataset 'tiny_shape'" in message
  assert 'tiny_shapes' in message.split('prepared under')[1]
  assert "'tiny_shape'" not in message.split('prepared under')[1]


def test_npz_in_any_range_is_checked_and_mapped(tmp_path):
  rng = np.random.default_rng(1)
  x = rng.integers(0, 256, (6, 4, 4, 3)).astype(np.uint8)
  y = np.array([0, 3, 1, 2, 3, 0])
  path = str(tmp_path / 'mine.npz')
  np.savez(path, x_test=x, y_test=y)
  spec = data.npz_spec(path)
  assert spec.input_shape == (4, 4, 3) and spec.num_classes is None
  assert spec.name == 'mine' and spec.splits == {'test': 6}
  loaded = data.load_npz(path, input_range=(0, 255))
  np.testing.assert_allclose(loaded.x_test, x / 255.0, atol=1e-6)
  assert loaded.num_classes == 4 and loaded.x_train.shape == (0, 4, 4, 3)
  with pytest.raises(validate.InvalidArgument,
                     match=r'values in \[\d+, 255\].*input_range=\(0, 255\)'):
    data.load_npz(path)
  with pytest.raises(validate.InvalidArgument, match=r'labels must lie in '
                     r'\[0, 2\] for 3 classes'):
    data.load_npz(path, input_range=(0, 255), num_classes=3)
  np.savez(str(tmp_path / 'bad.npz'), x=x, y=y)
  with pytest.raises(validate.InvalidArgument,
                     match=r"no x_test or y_test \(it holds \['x', 'y'\]\)"):
    data.npz_spec(str(tmp_path / 'bad.npz'))
  with pytest.raises(validate.InvalidArgument, match='no such file'):
    data.npz_spec(str(tmp_path / 'missing.npz'))


def test_arrays_and_tf_datasets_come_in_checked():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x = np.linspace(0, 1, 24, dtype=np.float32).reshape(6, 4)
  y = np.array([0, 1, 0, 1, 1, 0])
  for dataset in (tf.data.Dataset.from_tensor_slices((x, y)),
                  tf.data.Dataset.from_tensor_slices((x, y)).batch(4),
                  tf.data.Dataset.from_tensor_slices({'image': x,
                                                      'label': y})):
    got_x, got_y = data.from_tf_dataset(dataset, num_examples=5)
    np.testing.assert_array_equal(got_x, x[:5])
    np.testing.assert_array_equal(got_y, y[:5])
  with pytest.raises(validate.InvalidArgument, match="y='array of 5 labels' is invalid: x has 6"):
    data.from_arrays(x, y[:5])
  with pytest.raises(validate.InvalidArgument, match='leading example axis'):
    data.from_arrays(x[0], y[:1])
  with pytest.raises(validate.InvalidArgument, match='input_range'):
    data.check_range((1, 1))
