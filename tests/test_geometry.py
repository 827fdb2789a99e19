"""ε-ball geometry and the mismatch box: feasibility, projection optimality, exact L1, steepest ascent."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hrcore import geometry

NORMS = ["linf", "l2", "l1"]


@st.composite
def point_batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(x, y, center, eps): two batches of points and the ball around center, any trailing shape."""
    batch = draw(st.integers(1, 4))
    shape = draw(st.sampled_from([(1,), (5,), (3, 4), (2, 2, 3)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0]))
    center = rng.normal(size=(batch, *shape))
    x = center + scale * rng.normal(size=center.shape)
    y = center + scale * rng.normal(size=center.shape)
    eps = draw(st.sampled_from([0.0, 1e-3, 0.3, 2.0, 50.0]))
    return x, y, center, eps


@pytest.mark.parametrize("norm", NORMS)
@settings(max_examples=60)
@given(data=point_batches())
def test_projection_is_feasible_idempotent_nonexpansive_and_optimal(
    norm: str, data: tuple[np.ndarray, np.ndarray, np.ndarray, float]
) -> None:
    x, y, center, eps = data
    px = geometry.project(x, center, eps, norm)
    slack = 1e-9 * (1.0 + eps)
    assert np.all(geometry.per_example_norm(px - center, norm) <= eps + slack)
    np.testing.assert_allclose(geometry.project(px, center, eps, norm), px, atol=1e-9 * (1 + eps))
    py = geometry.project(y, center, eps, norm)
    flat = lambda a: a.reshape(a.shape[0], -1)  # noqa: E731
    assert np.all(
        np.linalg.norm(flat(px - py), axis=1) <= np.linalg.norm(flat(x - y), axis=1) + 1e-9 * (1 + eps)
    )
    # Optimality of the Euclidean projection onto a convex set: ⟨x − Px, z − Px⟩ ≤ 0 for every feasible z.
    z = geometry.project(y * 3.0, center, eps, norm)
    inner = np.sum(flat(x - px) * flat(z - px), axis=1)
    assert np.all(inner <= 1e-8 * (1 + np.abs(x).max()) ** 2)


def test_l1_projection_matches_cvxpy() -> None:
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(0)
    for d, eps in [(1, 0.5), (7, 0.3), (30, 1.0), (30, 10.0), (100, 0.01)]:
        x = rng.normal(size=(1, d)) * 2
        z = cp.Variable(d)
        cp.Problem(cp.Minimize(cp.sum_squares(z - x[0])), [cp.norm1(z) <= eps]).solve(solver=cp.CLARABEL)
        ours = geometry.project(x, np.zeros_like(x), eps, "l1")[0]
        np.testing.assert_allclose(ours, z.value, atol=1e-6)
    # A radial rescale is not the projection: it keeps every coordinate non-zero.
    x = np.array([[3.0, 1.0, 0.2]])
    projected = geometry.project(x, np.zeros_like(x), 1.0, "l1")
    np.testing.assert_allclose(projected, [[1.0, 0.0, 0.0]])


@pytest.mark.parametrize("norm", NORMS)
def test_steepest_ascent_attains_the_dual_norm(norm: str) -> None:
    rng = np.random.default_rng(1)
    g = rng.normal(size=(5, 3, 4))
    direction = geometry.steepest_ascent(g, norm)
    np.testing.assert_allclose(geometry.per_example_norm(direction, norm), 1.0)
    dual = {"linf": "l1", "l2": "l2", "l1": "linf"}[norm]
    value = np.sum((direction * g).reshape(5, -1), axis=1)
    np.testing.assert_allclose(value, geometry.per_example_norm(g, dual))
    # No other unit vector does better.
    for _ in range(20):
        other = geometry.project(rng.normal(size=g.shape) * 3, np.zeros_like(g), 1.0, norm)
        assert np.all(np.sum((other * g).reshape(5, -1), axis=1) <= value + 1e-12)


def test_steepest_ascent_of_a_zero_gradient_is_zero_and_l1_splits_ties() -> None:
    for norm in NORMS:
        assert np.all(geometry.steepest_ascent(np.zeros((2, 3)), norm) == 0.0)
    tied = geometry.steepest_ascent(np.array([[2.0, -2.0, 1.0]]), "l1")
    np.testing.assert_allclose(tied, [[0.5, -0.5, 0.0]])


def test_fgv_direction_scales_the_largest_coordinate_to_one() -> None:
    g = np.array([[0.5, -2.0, 1.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(geometry.fgv_direction(g), [[0.25, -1.0, 0.5], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize("norm", NORMS)
def test_random_start_is_uniform_in_the_ball(norm: str) -> None:
    rng = np.random.default_rng(2)
    center = np.zeros((4000, 3))
    points = geometry.random_start(center, 0.5, norm, rng)
    radius = geometry.per_example_norm(points, norm)
    assert np.all(radius <= 0.5 + 1e-12)
    # Volume grows as ρ^d: the fraction within half the radius is 2^−d.
    inside = np.mean(radius <= 0.25)
    assert inside == pytest.approx(0.5**3, abs=0.03)
    if norm != "linf":
        # Directions are uniform: every orthant is equally likely.
        signs = (points > 0).astype(int) @ np.array([1, 2, 4])
        np.testing.assert_allclose(np.bincount(signs, minlength=8) / 4000, 1 / 8, atol=0.03)


def test_attack_step_stays_in_ball_and_bounds() -> None:
    rng = np.random.default_rng(3)
    x0 = rng.uniform(size=(6, 10))
    x = x0.copy()
    for norm in NORMS:
        for _ in range(5):
            x = geometry.attack_step(x, x0, rng.normal(size=x.shape), 0.3, 0.5, norm, bounds=(0.0, 1.0))
            assert np.all(geometry.per_example_norm(x - x0, norm) <= 0.5 + 1e-12)
            assert x.min() >= 0.0 and x.max() <= 1.0


def test_per_example_radius_and_clip_bounds() -> None:
    x = np.ones((3, 2)) * 10
    projected = geometry.project(x, np.zeros_like(x), np.array([0.0, 1.0, 2.0]), "l2")
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), [0.0, 1.0, 2.0])
    clipped = geometry.clip_to_bounds(np.array([[-1.0, 0.5, 2.0]]), (0.0, None))
    np.testing.assert_allclose(clipped, [[0.0, 0.5, 2.0]])
    assert geometry.clip_to_bounds(x, None) is x


def test_normalization_round_trip_per_channel() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 4, 4))
    stats = ([0.1, 0.2, 0.3], [0.5, 1.0, 2.0])
    pixels = geometry.to_pixels(x, stats)
    np.testing.assert_allclose(pixels[:, 2], x[:, 2] * 2.0 + 0.3)
    np.testing.assert_allclose(geometry.from_pixels(pixels, stats), x)
    with pytest.raises(ValueError, match="channels"):
        geometry.to_pixels(x, ([0.1, 0.2], [1.0, 1.0]))


def test_mismatch_box() -> None:
    theta = np.array([-2.0, 0.0, 0.5])
    u = geometry.clip_mismatch(np.array([0.5, 0.3, -0.9]), 0.1)
    np.testing.assert_allclose(u, [0.1, 0.1, -0.1])
    np.testing.assert_allclose(geometry.mismatch_perturb(theta, u), [-1.8, 0.0, 0.45])
    step = geometry.mismatch_step(np.zeros(3), np.array([1.0, -3.0, 0.0]), 0.1, 10)
    np.testing.assert_allclose(step, [0.01, -0.01, 0.0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: geometry.canonical_norm("l3"), "norm must be"),
        (lambda: geometry.project(np.ones((1, 2)), np.zeros((1, 2)), -1.0, "l2"), "eps"),
        (lambda: geometry.clip_mismatch(np.ones(2), -0.1), "mismatch_level"),
        (lambda: geometry.project(np.ones((1, 2)), np.zeros((1, 2)), math.nan, "l2"), "eps"),
    ],
)
def test_bad_geometry_arguments(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("alias", ["l-2", "L2", 2, 2.0])
def test_norm_aliases(alias: object) -> None:
    assert geometry.canonical_norm(alias) == "l2"  # type: ignore[arg-type]
    assert geometry.canonical_norm(float("inf")) == "linf" == geometry.canonical_norm("l-inf")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l2_projection_of_the_centre_with_a_huge_radius_is_exact_and_silent(dtype: type) -> None:
    x = np.zeros((2, 3), dtype=dtype)
    with np.errstate(all="raise"):
        projected = geometry.project(x, x, 1e30, "l2")
    assert np.all(projected == 0.0) and projected.dtype == dtype
