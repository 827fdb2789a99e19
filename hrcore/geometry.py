"""Perturbation geometry: ε-balls around inputs and the relative parameter-mismatch box.

Every function is written against the array API (through ``array_api_compat``), so the adapters call the same
code on numpy, torch and jax.numpy arrays, on any device, and autodiff flows through where the math is
differentiable. The batch axis is axis 0; norms are taken per example over all other axes.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as array_device

from hrcore.validation import check_nonnegative

Array = Any
Norm = Literal["linf", "l2", "l1"]
Bounds = tuple[Any, Any] | None
Normalization = tuple[Any, Any] | None

_NORM_ALIASES: dict[str, Norm] = {
    "linf": "linf",
    "l-inf": "linf",
    "l_inf": "linf",
    "inf": "linf",
    "infinity": "linf",
    "l2": "l2",
    "l-2": "l2",
    "l_2": "l2",
    "2": "l2",
    "l1": "l1",
    "l-1": "l1",
    "l_1": "l1",
    "1": "l1",
}


def canonical_norm(norm: str | float) -> Norm:
    """Map the many spellings of a norm to "linf", "l2" or "l1".

    Accepts e.g. "l-2", "L2", 2, "l-inf", "inf", float("inf"), np.inf, "l1", 1.

    Args:
        norm: A norm's name or order.

    Returns:
        The canonical name.

    Raises:
        ValueError: For any other norm.
    """
    if isinstance(norm, (int, float, np.integer, np.floating)) and not isinstance(norm, bool):
        key = "inf" if math.isinf(float(norm)) else str(int(norm)) if float(norm).is_integer() else str(norm)
    elif isinstance(norm, str):
        key = norm.strip().lower()
    else:
        key = ""
    if key not in _NORM_ALIASES:
        raise ValueError(
            f"norm must be one of 'linf', 'l2', 'l1' (or 'l-inf', 'l-2', inf, 2, 1), got {norm!r}."
        )
    return _NORM_ALIASES[key]


def _flat(xp: Any, x: Array) -> Array:
    return xp.reshape(x, (x.shape[0], -1))


def _per_example(xp: Any, values: Array, like: Array) -> Array:
    """Reshape a (B,) vector so it broadcasts against ``like`` (B, ...)."""
    return xp.reshape(values, (like.shape[0],) + (1,) * (like.ndim - 1))


def _floor(xp: Any, dtype: Any) -> float:
    # The smallest normal number of the dtype: dividing by it never overflows a norm-sized quantity and an
    # all-zero gradient maps to a zero direction instead of NaN.
    return float(xp.finfo(dtype).tiny)


def per_example_norm(x: Array, norm: str | float) -> Array:
    """Norm of each example.

    Computes ‖x_b‖_p over all non-batch axes, for p ∈ {∞, 2, 1}.

    Args:
        x: Array (B, ...).
        norm: The norm.

    Returns:
        Array (B,).
    """
    xp = array_namespace(x)
    flat = _flat(xp, x)
    kind = canonical_norm(norm)
    if kind == "linf":
        return xp.max(xp.abs(flat), axis=1)
    if kind == "l2":
        return xp.linalg.vector_norm(flat, axis=1)
    return xp.sum(xp.abs(flat), axis=1)


def steepest_ascent(g: Array, norm: str | float) -> Array:
    """Unit-norm direction of steepest ascent for a gradient, per example.

    Solves max ⟨g, d⟩ s.t. ‖d‖ ≤ 1: L∞ sign(g); L2 g/‖g‖₂; L1 sign(g) on the largest |g| coordinate(s),
    split equally among ties. An all-zero gradient gives a zero direction.

    Args:
        g: Gradient (B, ...).
        norm: The norm of the ball the step lives in.

    Returns:
        The direction, shaped like g.
    """
    xp = array_namespace(g)
    kind = canonical_norm(norm)
    if kind == "linf":
        return xp.sign(g)
    flat = _flat(xp, g)
    if kind == "l2":
        length = xp.linalg.vector_norm(flat, axis=1, keepdims=True)
        return xp.reshape(flat / xp.clip(length, min=_floor(xp, g.dtype)), g.shape)
    magnitude = xp.abs(flat)
    largest = xp.max(magnitude, axis=1, keepdims=True)
    on_top = xp.astype((magnitude == largest) & (magnitude > 0), g.dtype)
    count = xp.clip(xp.sum(on_top, axis=1, keepdims=True), min=1.0)
    return xp.reshape(xp.sign(flat) * on_top / count, g.shape)


def fgv_direction(g: Array) -> Array:
    """The fast-gradient-value direction, per example.

    Computes g / max|g| (the largest coordinate becomes ±1); an all-zero gradient gives zero.

    Args:
        g: Gradient (B, ...).

    Returns:
        The direction, shaped like g.
    """
    xp = array_namespace(g)
    flat = _flat(xp, g)
    largest = xp.max(xp.abs(flat), axis=1, keepdims=True)
    return xp.reshape(flat / xp.clip(largest, min=_floor(xp, g.dtype)), g.shape)


def _radius(xp: Any, eps: Any, like: Array) -> Any:
    """ε as a scalar, or a (B,) array reshaped to broadcast per example."""
    if isinstance(eps, (int, float, np.integer, np.floating)):
        return check_nonnegative("eps", eps)
    if getattr(eps, "ndim", 0) == 1:
        return _per_example(xp, eps, like)
    return eps


def project(x: Array, center: Array, eps: Any, norm: str | float) -> Array:
    """Exact Euclidean projection onto the ε-ball around ``center``, per example.

    Solves argmin_z ‖z − x‖₂ s.t. ‖z − center‖_p ≤ ε: L∞ clips, L2 rescales radially, and L1 soft-thresholds
    |x − center| at the level θ of the simplex projection (not a rescale, which is not the projection).

    Args:
        x: Points (B, ...).
        center: Ball centres, shaped like x.
        eps: The radius: a number ≥ 0, a 0-d array, or one radius per example (B,).
        norm: The ball's norm.

    Returns:
        The projected points, shaped like x.
    """
    xp = array_namespace(x, center)
    kind = canonical_norm(norm)
    radius = _radius(xp, eps, x)
    delta = x - center
    if kind == "linf":
        return center + xp.minimum(xp.maximum(delta, -radius), radius)
    flat = _flat(xp, delta)
    if not isinstance(radius, float):
        radius = xp.reshape(radius, (-1, 1)) if getattr(radius, "ndim", 0) > 0 else radius
    if kind == "l2":
        length = xp.linalg.vector_norm(flat, axis=1, keepdims=True)
        # min(1, ε/‖δ‖) written as ε/max(‖δ‖, ε): no overflow when δ = 0 and ε is large.
        reach = xp.clip(xp.maximum(length, _like(xp, radius, length)), min=_floor(xp, x.dtype))
        return center + xp.reshape(flat * (radius / reach), x.shape)
    # L1: the threshold of the simplex projection of |δ| is θ = max(0, max_j (Σ_{i≤j} u_i − ε)/j) with u the
    # magnitudes sorted descending; the running mean of the prefix sums peaks exactly at the support size,
    # so no gather is needed and the same expression is differentiable in every framework.
    magnitude = xp.abs(flat)
    ordered = xp.sort(magnitude, axis=1, descending=True)
    prefix = xp.cumulative_sum(ordered, axis=1)
    ranks = xp.arange(1, flat.shape[1] + 1, dtype=x.dtype, device=array_device(x))
    level = xp.max((prefix - radius) / ranks, axis=1, keepdims=True)
    level = xp.clip(level, min=0.0)
    shrunk = xp.sign(flat) * xp.clip(magnitude - level, min=0.0)
    return center + xp.reshape(shrunk, x.shape)


def clip_to_bounds(x: Array, bounds: Bounds) -> Array:
    """Clip inputs to their valid range.

    Computes min(max(x, lo), hi) elementwise; either bound may be None.

    Args:
        x: Inputs (B, ...).
        bounds: None (no clipping) or (lo, hi), each a number or an array broadcastable to x.

    Returns:
        The clipped inputs.
    """
    if bounds is None:
        return x
    xp = array_namespace(x)
    low, high = bounds
    if low is not None:
        x = xp.maximum(x, _like(xp, low, x))
    if high is not None:
        x = xp.minimum(x, _like(xp, high, x))
    return x


def _like(xp: Any, value: Any, x: Array) -> Array:
    return xp.asarray(value, dtype=x.dtype, device=array_device(x))


def attack_step(
    x: Array,
    x0: Array,
    grad: Array,
    step_size: Any,
    eps: Any,
    norm: str | float,
    bounds: Bounds = None,
) -> Array:
    """One projected steepest-ascent step of an ε-bounded input attack.

    Computes clip_bounds(Π_{‖·−x0‖≤ε}(x + step·d(grad))), with d the steepest-ascent direction of the norm:
    feasible for both the ball and the bounds.

    Args:
        x: Current iterate (B, ...).
        x0: The clean inputs (ball centres).
        grad: ∇ₓ of the attacked loss at x.
        step_size: The step's length in the ball's norm.
        eps: The ball's radius.
        norm: The ball's norm.
        bounds: Optional (lo, hi) input range.

    Returns:
        The next iterate.
    """
    moved = x + step_size * steepest_ascent(grad, norm)
    return clip_to_bounds(project(moved, x0, eps, norm), bounds)


def ball_noise_kind(norm: str | float) -> Literal["uniform", "normal", "laplace"]:
    """Which standard noise ``perturbation_from_noise`` expects for a norm.

    L∞: uniform on [−1, 1]; L2: N(0, 1); L1: Laplace(0, 1) — the generalised Gaussians whose normalised
    draws are uniform on the sphere of that norm.

    Args:
        norm: The ball's norm.

    Returns:
        "uniform", "normal" or "laplace".
    """
    return {"linf": "uniform", "l2": "normal", "l1": "laplace"}[canonical_norm(norm)]  # type: ignore[return-value]


def perturbation_from_noise(noise: Array, radius_u: Array, eps: Any, norm: str | float) -> Array:
    """A perturbation uniform in the ε-ball, built from standard noise drawn by the caller's framework.

    L∞: ε·noise with noise ~ U[−1, 1]. L2/L1: ε·U^{1/d}·z/‖z‖ with z ~ N(0, I) (L2) or Laplace (L1) and
    U ~ U(0, 1) per example, d the number of coordinates per example.

    Args:
        noise: Standard noise of the input's shape, of the kind ``ball_noise_kind(norm)`` names.
        radius_u: Uniform draws on (0, 1), one per example (B,); unused for L∞.
        eps: The ball's radius.
        norm: The ball's norm.

    Returns:
        δ shaped like noise, with ‖δ_b‖ ≤ ε.
    """
    xp = array_namespace(noise)
    kind = canonical_norm(norm)
    radius = _radius(xp, eps, noise)
    if kind == "linf":
        return radius * noise
    dimension = math.prod(noise.shape[1:])
    length = per_example_norm(noise, kind)
    scale = xp.asarray(radius_u, dtype=noise.dtype) ** (1.0 / dimension) / xp.clip(
        length, min=_floor(xp, noise.dtype)
    )
    return radius * noise * _per_example(xp, scale, noise)


def random_start(center: np.ndarray, eps: float, norm: str | float, rng: np.random.Generator) -> np.ndarray:
    """A random point uniform in the ε-ball around each centre (numpy).

    Returns center + δ with δ from ``perturbation_from_noise``.

    Args:
        center: Inputs (B, ...).
        eps: The ball's radius.
        norm: The ball's norm.
        rng: The random generator.

    Returns:
        Points shaped like center.
    """
    center = np.asarray(center)
    if not np.issubdtype(center.dtype, np.floating):
        center = center.astype(np.float64)
    kind = ball_noise_kind(norm)
    if kind == "uniform":
        noise = rng.uniform(-1.0, 1.0, size=center.shape)
    elif kind == "normal":
        noise = rng.standard_normal(size=center.shape)
    else:
        noise = rng.laplace(size=center.shape)
    radius_u = rng.uniform(size=center.shape[0])
    return center + perturbation_from_noise(noise.astype(center.dtype), radius_u, eps, norm)


def _channel_stats(xp: Any, statistic: Any, x: Array) -> Array:
    """Broadcast a scalar or per-channel (axis 1) statistic against x."""
    value = xp.asarray(statistic, dtype=x.dtype, device=array_device(x))
    if value.ndim == 1 and x.ndim >= 2:
        if value.shape[0] != x.shape[1]:
            raise ValueError(
                f"normalization statistics have {value.shape[0]} entries but the inputs have {x.shape[1]} "
                "channels on axis 1."
            )
        value = xp.reshape(value, (1, value.shape[0]) + (1,) * (x.ndim - 2))
    return value


def to_pixels(x: Array, normalization: Normalization) -> Array:
    """Undo an input normalisation, so ε and bounds apply in pixel space.

    Computes x·std + mean (per channel on axis 1 when the statistics are vectors).

    Args:
        x: Normalised model inputs (B, C, ...) or (B, d).
        normalization: None, or (mean, std).

    Returns:
        The inputs in pixel space.
    """
    if normalization is None:
        return x
    xp = array_namespace(x)
    mean, std = normalization
    return x * _channel_stats(xp, std, x) + _channel_stats(xp, mean, x)


def from_pixels(x: Array, normalization: Normalization) -> Array:
    """Apply an input normalisation: the inverse of ``to_pixels``.

    Computes (x − mean)/std.

    Args:
        x: Inputs in pixel space.
        normalization: None, or (mean, std).

    Returns:
        The normalised model inputs.
    """
    if normalization is None:
        return x
    xp = array_namespace(x)
    mean, std = normalization
    return (x - _channel_stats(xp, mean, x)) / _channel_stats(xp, std, x)


def mismatch_perturb(theta: Array, u: Array) -> Array:
    """Weights under relative mismatch.

    Computes Θ* = Θ + |Θ| ⊙ u.

    Args:
        theta: Nominal weights.
        u: Relative perturbation, shaped like theta (inside [−ζ, ζ] for the mismatch box).

    Returns:
        The perturbed weights.
    """
    xp = array_namespace(theta, u)
    return theta + xp.abs(theta) * u


def clip_mismatch(u: Array, mismatch_level: Any) -> Array:
    """Project a relative perturbation onto the mismatch box.

    Computes clip(u, −ζ, ζ), so that Θ + |Θ|⊙u lies in Θ ± ζ|Θ|.

    Args:
        u: Relative perturbation.
        mismatch_level: ζ ≥ 0 (a number or a traced scalar).

    Returns:
        The clipped perturbation.
    """
    xp = array_namespace(u)
    if isinstance(mismatch_level, (int, float, np.integer, np.floating)):
        level = check_nonnegative("mismatch_level", mismatch_level)
        return xp.clip(u, min=-level, max=level)
    return xp.minimum(xp.maximum(u, -mismatch_level), mismatch_level)


def mismatch_step(u: Array, grad_u: Array, mismatch_level: Any, attack_steps: Any) -> Array:
    """One sign-gradient ascent step of the parameter-mismatch attack.

    Computes u ← clip(u + (ζ/steps)·sign(∇_u), −ζ, ζ).

    Args:
        u: Current relative perturbation.
        grad_u: Gradient of the mismatch loss w.r.t. u.
        mismatch_level: ζ.
        attack_steps: Number of steps the attack takes (sets the step length ζ/steps).

    Returns:
        The next perturbation.
    """
    xp = array_namespace(u, grad_u)
    return clip_mismatch(u + (mismatch_level / attack_steps) * xp.sign(grad_u), mismatch_level)
