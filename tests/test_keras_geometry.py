"""The Keras adapter's TensorFlow restatements of hrcore.geometry agree with the core's numpy results."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import numpy as np
import pytest
from frameworks import require

tf = require("tensorflow")
keras = require("keras")

from hrcore import geometry as core  # noqa: E402
from hrcore.adapters.keras import geometry as ours  # noqa: E402

NORMS = ["linf", "l2", "l1"]


def _batch(seed: int, shape=(5, 3, 4)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    x.reshape(shape[0], -1)[0, :2] = 3.0  # a tie at the largest |g| (the L1 direction splits it)
    x[1] = 0.0  # an all-zero example
    return x


@pytest.mark.parametrize("norm", NORMS)
def test_steepest_ascent(norm):
    g = _batch(0)
    np.testing.assert_allclose(
        ours.steepest_ascent(tf.constant(g), norm).numpy(), core.steepest_ascent(g, norm)
    )


def test_fgv_direction():
    g = _batch(1)
    np.testing.assert_allclose(ours.fgv_direction(tf.constant(g)).numpy(), core.fgv_direction(g))


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("eps", [0.0, 0.3, 2.5, 100.0])
def test_projection(norm, eps):
    # No zero-length δ here: the core's L2 branch warns on ε/‖0‖ overflow for large ε (reported upstream).
    x, center = np.random.default_rng(2).normal(size=(5, 3, 4)) * 2, _batch(3)
    result = ours.project(tf.constant(x), tf.constant(center), eps, norm).numpy()
    np.testing.assert_allclose(result, core.project(x, center, eps, norm), atol=1e-12)
    assert np.all(core.per_example_norm(result - center, norm) <= eps + 1e-9)


def test_l1_projection_is_not_a_rescale():
    # |δ| = (3, 1), ε = 2: the projection soft-thresholds to (2, 0); a rescale would give (1.5, 0.5).
    x = tf.constant([[3.0, 1.0]])
    np.testing.assert_allclose(ours.project(x, tf.zeros_like(x), 2.0, "l1").numpy(), [[2.0, 0.0]])


@pytest.mark.parametrize("norm", NORMS)
def test_attack_step_and_bounds(norm):
    x, x0, grad = _batch(4), _batch(5), _batch(6)
    bounds = (-0.5, 0.7)
    result = ours.attack_step(
        tf.constant(x), tf.constant(x0), tf.constant(grad), 0.4, 0.8, norm, bounds
    ).numpy()
    np.testing.assert_allclose(result, core.attack_step(x, x0, grad, 0.4, 0.8, norm, bounds), atol=1e-12)


@pytest.mark.parametrize("norm", NORMS)
def test_perturbation_from_noise(norm):
    rng = np.random.default_rng(7)
    noise = {
        "linf": rng.uniform(-1, 1, (6, 2, 3)),
        "l2": rng.normal(size=(6, 2, 3)),
        "l1": rng.laplace(size=(6, 2, 3)),
    }[norm]
    radius_u = rng.uniform(size=6)
    expected = core.perturbation_from_noise(noise, radius_u, 0.3, norm)
    np.testing.assert_allclose(
        ours.perturbation_from_noise(tf.constant(noise), tf.constant(radius_u), 0.3, norm).numpy(), expected
    )


@pytest.mark.parametrize("norm", NORMS)
def test_random_ball_point_is_inside_and_fills_the_ball(norm):
    center = np.zeros((4000, 3))
    points = ours.random_ball_point(tf.constant(center), 0.5, norm, key=3).numpy()
    size = core.per_example_norm(points, norm)
    assert np.all(size <= 0.5 + 1e-12)
    # Uniform in a 3-D ball: P(‖δ‖ ≤ ε/2) = 1/8 (L2, L1; for L∞ the sup-norm of a uniform cube point too).
    assert np.mean(size <= 0.25) == pytest.approx(1 / 8, abs=0.03)
    again = ours.random_ball_point(tf.constant(center), 0.5, norm, key=3).numpy()
    np.testing.assert_array_equal(points, again)  # an int key gives the same draw every call


def test_random_keys():
    shape = (3, 2)
    generator = tf.random.Generator.from_seed(1)
    first = ours.standard_noise("normal", shape, tf.float32, generator).numpy()
    assert not np.array_equal(first, ours.standard_noise("normal", shape, tf.float32, generator).numpy())
    seeded = ours.standard_noise("laplace", shape, tf.float32, keras.random.SeedGenerator(0)).numpy()
    assert np.all(np.isfinite(seeded))
    with pytest.raises(TypeError, match="key must be None, an int seed"):
        ours.standard_noise("normal", shape, tf.float32, "seed")


@pytest.mark.parametrize("statistics", [(0.5, 0.25), (np.array([0.1, 0.2, 0.3]), np.array([0.5, 1.0, 2.0]))])
def test_pixel_round_trip_on_keras_channel_axis(statistics):
    x = np.random.default_rng(8).normal(size=(2, 4, 4, 3))  # channels last, Keras's default
    pixels = ours.to_pixels(tf.constant(x), statistics).numpy()
    mean, std = (np.asarray(s) for s in statistics)
    np.testing.assert_allclose(pixels, x * std + mean)  # numpy broadcasts on the last (channel) axis
    np.testing.assert_allclose(ours.from_pixels(tf.constant(pixels), statistics).numpy(), x)
    flat = np.random.default_rng(9).normal(size=(5, 3))  # (B, d): the same axis as the core's axis 1
    np.testing.assert_allclose(
        ours.to_pixels(tf.constant(flat), statistics).numpy(), core.to_pixels(flat, statistics)
    )
    with pytest.raises(ValueError, match="channels"):
        ours.to_pixels(tf.constant(np.zeros((2, 4, 4, 2))), (np.zeros(3), np.ones(3)))


def test_mismatch_box():
    rng = np.random.default_rng(10)
    theta, u, grad = rng.normal(size=(4, 3)), rng.uniform(-0.05, 0.05, (4, 3)), rng.normal(size=(4, 3))
    np.testing.assert_allclose(
        ours.mismatch_perturb(tf.constant(theta), tf.constant(u)).numpy(), core.mismatch_perturb(theta, u)
    )
    np.testing.assert_allclose(ours.clip_mismatch(tf.constant(u), 0.02).numpy(), core.clip_mismatch(u, 0.02))
    np.testing.assert_allclose(
        ours.mismatch_step(tf.constant(u), tf.constant(grad), 0.025, 10).numpy(),
        core.mismatch_step(u, grad, 0.025, 10),
    )


def test_unknown_batch_size():
    spec = tf.TensorSpec([None, 3], tf.float64)
    run = tf.function(lambda x: ours.project(x, tf.zeros_like(x), 1.0, "l1"), input_signature=[spec])
    x = _batch(11, (7, 3))
    np.testing.assert_allclose(run(x).numpy(), core.project(x, np.zeros_like(x), 1.0, "l1"), atol=1e-12)
