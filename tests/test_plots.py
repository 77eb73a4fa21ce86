"""Figures say what they plot."""

import numpy as np

from tfp_robust.reports import plots


def test_expected_gradients_names_loss_eps_and_coordinate():
  rng = np.random.RandomState(0)
  components = {'sgd': rng.normal(size=(30, 2)),
                'hmc': 0.1 * rng.normal(size=(30, 2))}
  figure = plots.gradient_components_by_model(
      components, 'Expected loss gradient per input coordinate',
      loss='expected cross-entropy (Eq. 2)',
      where='30 clean test points (eps = 0)', coordinate_names=['x1', 'x2'])
  axis = figure.axes[0]
  assert 'loss: expected cross-entropy (Eq. 2)' in axis.get_title()
  assert 'eps = 0' in axis.get_title()
  assert 'input coordinate' in axis.get_ylabel()
  legend = axis.get_legend()
  assert legend.get_title().get_text() == 'input coordinate'
  assert [t.get_text() for t in legend.get_texts()] == ['x1', 'x2']
  assert [t.get_text() for t in axis.get_xticklabels()] == ['sgd', 'hmc']
  # One column per model and coordinate: each holds that coordinate's
  # values of that model, none pooled with the other coordinate.
  columns = [c.get_offsets() for c in axis.collections]
  assert len(columns) == 4
  np.testing.assert_allclose(columns[1][:, 1], components['sgd'][:, 1])
  np.testing.assert_allclose(columns[2][:, 1], components['hmc'][:, 0])
  assert columns[0][:, 0].max() < columns[1][:, 0].min()  # x1 left of x2.


def test_expected_gradients_pools_many_coordinates():
  figure = plots.gradient_components_by_model(
      {'vi': np.ones((3, 784))}, 'MNIST')
  axis = figure.axes[0]
  assert [t.get_text() for t in axis.get_legend().get_texts()] == [
      'all coordinates']
  assert len(axis.collections[0].get_offsets()) == 3 * 784
