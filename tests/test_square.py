"""The Square attack: gradient-free strength, constraints, seeds, geometry."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_robust.attacks import gradient as attacks
from tfp_robust.attacks import square


def test_image_geometry():
  assert square.image_shape((784,)) == (28, 28, 1)
  assert square.image_shape((2,)) == (1, 2, 1)
  assert square.image_shape((8, 8, 3)) == (8, 8, 3)
  with pytest.raises(ValueError, match='Square attack needs'):
    square.image_shape((2, 3))


def test_window_schedule_shrinks_with_queries():
  values = [float(square._p_selection(tf.constant(i), 10000))  # pylint: disable=protected-access
            for i in (0, 11, 51, 201, 8001)]
  assert values == pytest.approx([0.8, 0.4, 0.2, 0.1, 0.8 / 512])


def test_square_is_close_to_pgd_without_gradients(trained_net, moons):
  x, y = moons.x_test, moons.y_test
  eps = 0.1
  pgd = float(np.mean(trained_net.predict(attacks.pgd(
      trained_net, x, y, eps, num_steps=15, seed=0)).numpy() == y))
  x_adv, margin, queries = square.square_run(trained_net, x, y, eps,
                                             num_queries=300, seed=0)
  x_adv = x_adv.numpy()
  assert np.abs(x_adv - x).max() <= eps + 1e-6
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
  accuracy = float(np.mean(trained_net.predict(x_adv).numpy() == y))
  assert accuracy < trained_net.accuracy(x, y) - 0.3
  assert accuracy <= pgd + 0.1
  # A fooled image stops querying; the margin says which were fooled.
  fooled = margin.numpy() <= 0
  np.testing.assert_array_equal(fooled, trained_net.predict(x_adv).numpy()
                                != y)
  assert queries.numpy()[fooled].mean() < queries.numpy()[~fooled].mean()
  # The budget counts every evaluation, the stripes start included.
  assert queries.numpy().max() <= 300


def test_a_budget_of_one_query_is_the_stripes_start(trained_net, moons):
  x, y = moons.x_test[:20], moons.y_test[:20]
  _, margin, queries = square.square_run(trained_net, x, y, 0.1,
                                         num_queries=1, seed=0)
  np.testing.assert_array_equal(queries.numpy(), 1.0)
  assert np.any(margin.numpy() > 0)  # Images left standing used no more.
  _, _, queries = square.square_run(trained_net, x, y, 0.1, num_queries=2,
                                    seed=0)
  assert queries.numpy().max() == 2.0


def test_square_same_seed_same_bits(trained_net, moons):
  x, y = moons.x_test[:50], moons.y_test[:50]
  first = square.square(trained_net, x, y, 0.1, num_queries=50, seed=1)
  again = square.square(trained_net, x, y, 0.1, num_queries=50, seed=1)
  np.testing.assert_array_equal(first.numpy(), again.numpy())
  # Compiled with XLA (the suite's one Square run compiled; the others run
  # without it): the same random search, so the same images but where float
  # rounding flipped an accept decision.
  from tfp_robust import ensemble  # pylint: disable=g-import-not-at-top
  compiled = ensemble.ArchitectureEnsemble(
      trained_net.architecture, trained_net.params, jit_compile=True)
  xla = square.square(compiled, x, y, 0.1, num_queries=50, seed=1).numpy()
  assert not trained_net.jit_compile and compiled.jit_compile
  assert np.abs(xla - x).max() <= 0.1 + 1e-6
  assert xla.min() >= 0.0 and xla.max() <= 1.0
  same = np.all(np.abs(xla - first.numpy()) < 1e-5, axis=1).mean()
  assert same >= 0.8, same
  with pytest.raises(ValueError, match='num_queries=0 is invalid: it must be an integer >= 1'):
    square.square_run(trained_net, x, y, 0.1, num_queries=0)


def test_rounds_and_compaction_do_not_change_the_result(trained_net, moons):
  x, y = moons.x_test[:120], moons.y_test[:120]
  whole = square.square_run(trained_net, x, y, 0.08, num_queries=60, seed=2,
                            round_queries=60)
  rounds = square.square_run(trained_net, x, y, 0.08, num_queries=60, seed=2,
                             round_queries=7)
  for a, b in zip(whole, rounds):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
  # Some images fell early, so compaction had something to drop.
  assert 0 < np.mean(whole[1].numpy() <= 0) < 1
  with pytest.raises(ValueError, match='round_queries=0 is invalid: it must be an integer >= 1'):
    square.square_run(trained_net, x, y, 0.1, round_queries=0)
