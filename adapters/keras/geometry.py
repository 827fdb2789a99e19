"""TensorFlow restatements of ``hrcore.geometry``: ε-balls, input bounds, normalisation, the mismatch box.

Computes the same maps as the core (steepest ascent, exact projections, uniform ball noise, Θ + |Θ|⊙u) on
``tf.Tensor``s. TensorFlow tensors are not array-API arrays, so the core's generic code cannot run on them;
each function here restates one core one-liner and is tested against the core's numpy result. Shapes are
dynamic (``tf.shape``), so every function works with an unknown batch size inside ``tf.function``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from hrcore.geometry import ball_noise_kind, canonical_norm
from hrcore.validation import check_count

Bounds = tuple[Any, Any] | None
Normalization = tuple[Any, Any] | None
RandomKey = int | tf.random.Generator | keras.random.SeedGenerator | None


def _flat(x: tf.Tensor) -> tf.Tensor:
    return tf.reshape(x, tf.stack([tf.shape(x)[0], -1]))


def as_scalar(value: Any, dtype: tf.DType) -> tf.Tensor:
    """A number, array or tensor in ``dtype`` (Python floats converted directly, not through float32)."""
    return tf.cast(value, dtype) if tf.is_tensor(value) else tf.constant(value, dtype)


def _floor(dtype: tf.DType) -> float:
    # As in the core: the smallest normal number, so an all-zero gradient maps to a zero direction.
    return float(np.finfo(dtype.as_numpy_dtype).tiny)


def steepest_ascent(g: tf.Tensor, norm: str | float) -> tf.Tensor:
    """Unit-norm steepest-ascent direction per example (``hrcore.geometry.steepest_ascent``).

    Solves max ⟨g, d⟩ s.t. ‖d‖ ≤ 1: L∞ sign(g); L2 g/‖g‖₂; L1 sign(g) on the largest |g| entries (ties split).

    Args:
        g: Gradient (B, ...).
        norm: The ball's norm.

    Returns:
        The direction, shaped like g.
    """
    kind = canonical_norm(norm)
    if kind == "linf":
        return tf.sign(g)
    flat = _flat(g)
    if kind == "l2":
        length = tf.norm(flat, axis=1, keepdims=True)
        return tf.reshape(flat / tf.maximum(length, _floor(g.dtype)), tf.shape(g))
    magnitude = tf.abs(flat)
    largest = tf.reduce_max(magnitude, axis=1, keepdims=True)
    on_top = tf.cast((magnitude == largest) & (magnitude > 0), g.dtype)
    count = tf.maximum(tf.reduce_sum(on_top, axis=1, keepdims=True), 1.0)
    return tf.reshape(tf.sign(flat) * on_top / count, tf.shape(g))


def fgv_direction(g: tf.Tensor) -> tf.Tensor:
    """The fast-gradient-value direction per example (``hrcore.geometry.fgv_direction``).

    Computes g / max|g|.

    Args:
        g: Gradient (B, ...).

    Returns:
        The direction, shaped like g.
    """
    flat = _flat(g)
    largest = tf.reduce_max(tf.abs(flat), axis=1, keepdims=True)
    return tf.reshape(flat / tf.maximum(largest, _floor(g.dtype)), tf.shape(g))


def project(x: tf.Tensor, center: tf.Tensor, eps: Any, norm: str | float) -> tf.Tensor:
    """Exact Euclidean projection onto the ε-ball around ``center`` per example (``hrcore.geometry.project``).

    Solves argmin_z ‖z − x‖₂ s.t. ‖z − center‖_p ≤ ε: L∞ clips, L2 rescales, L1 soft-thresholds at the
    simplex-projection level θ = max(0, max_j (Σ_{i≤j} u_(i) − ε)/j), u_(i) the sorted magnitudes.

    Args:
        x: Points (B, ...).
        center: Ball centres, shaped like x.
        eps: The radius (a number or a scalar tensor).
        norm: The ball's norm.

    Returns:
        The projected points.
    """
    kind = canonical_norm(norm)
    radius = as_scalar(eps, x.dtype)
    delta = x - center
    if kind == "linf":
        return center + tf.clip_by_value(delta, -radius, radius)
    flat = _flat(delta)
    if kind == "l2":
        length = tf.norm(flat, axis=1, keepdims=True)
        scale = tf.minimum(radius / tf.maximum(length, _floor(x.dtype)), 1.0)
        return center + tf.reshape(flat * scale, tf.shape(x))
    magnitude = tf.abs(flat)
    ordered = tf.sort(magnitude, axis=1, direction="DESCENDING")
    prefix = tf.cumsum(ordered, axis=1)
    ranks = tf.cast(tf.range(1, tf.shape(flat)[1] + 1), x.dtype)
    level = tf.maximum(tf.reduce_max((prefix - radius) / ranks, axis=1, keepdims=True), 0.0)
    shrunk = tf.sign(flat) * tf.maximum(magnitude - level, 0.0)
    return center + tf.reshape(shrunk, tf.shape(x))


def clip_to_bounds(x: tf.Tensor, bounds: Bounds) -> tf.Tensor:
    """Clip to the valid input range (``hrcore.geometry.clip_to_bounds``).

    Computes min(max(x, lo), hi); either bound may be None.

    Args:
        x: Inputs.
        bounds: None or (lo, hi), each a number or broadcastable to x.

    Returns:
        The clipped inputs.
    """
    if bounds is None:
        return x
    low, high = bounds
    if low is not None:
        x = tf.maximum(x, as_scalar(low, x.dtype))
    if high is not None:
        x = tf.minimum(x, as_scalar(high, x.dtype))
    return x


def attack_step(
    x: tf.Tensor,
    x0: tf.Tensor,
    grad: tf.Tensor,
    step_size: Any,
    eps: Any,
    norm: str | float,
    bounds: Bounds = None,
) -> tf.Tensor:
    """One projected steepest-ascent step (``hrcore.geometry.attack_step``).

    Computes clip_bounds(Π_{‖·−x0‖≤ε}(x + step·d(grad))); ε None skips the projection.

    Args:
        x: Current iterate (B, ...).
        x0: The clean inputs.
        grad: ∇ₓ of the attacked loss at x.
        step_size: The step's length in the ball's norm.
        eps: The ball's radius, or None for an unbounded step.
        norm: The ball's norm.
        bounds: Optional (lo, hi) input range.

    Returns:
        The next iterate.
    """
    moved = x + as_scalar(step_size, x.dtype) * steepest_ascent(grad, norm)
    if eps is not None:
        moved = project(moved, x0, eps, norm)
    return clip_to_bounds(moved, bounds)


def standard_noise(kind: str, shape: Any, dtype: tf.DType, key: RandomKey, index: int = 0) -> tf.Tensor:
    """Standard noise of one kind: "uniform" on [−1, 1], "normal" N(0, 1) or "laplace" Laplace(0, 1).

    Laplace draws are built as the difference of two Exp(1) draws, −log U₁ + log U₂.

    Args:
        kind: The distribution.
        shape: The shape (static or a shape tensor).
        dtype: A float dtype.
        key: None (fresh, global-seed driven draws), an int (the same draw on every call, indexed by
            ``index``, like a JAX key), a ``tf.random.Generator`` or a ``keras.random.SeedGenerator``.
        index: Distinguishes the draws made with one int seed.

    Returns:
        The noise tensor.
    """
    if kind == "laplace":
        first = standard_noise("unit", shape, dtype, key, 2 * index)
        second = standard_noise("unit", shape, dtype, key, 2 * index + 1)
        return tf.math.log(second) - tf.math.log(first)
    if kind not in ("uniform", "normal", "unit"):
        raise ValueError(f"unknown noise kind {kind!r}")
    # "unit" draws on (0, 1) away from 0 so that their logarithm is finite.
    low, high = (-1.0, 1.0) if kind == "uniform" else (float(np.finfo(dtype.as_numpy_dtype).tiny), 1.0)
    if isinstance(key, tf.random.Generator):
        if kind == "normal":
            return key.normal(shape, dtype=dtype)
        return key.uniform(shape, low, high, dtype=dtype)
    if isinstance(key, keras.random.SeedGenerator):
        if kind == "normal":
            return keras.random.normal(shape, dtype=dtype.name, seed=key)
        return keras.random.uniform(shape, low, high, dtype=dtype.name, seed=key)
    if key is None:
        if kind == "normal":
            return tf.random.normal(shape, dtype=dtype)
        return tf.random.uniform(shape, low, high, dtype=dtype)
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        seed = tf.constant([int(key), index], dtype=tf.int64)
        if kind == "normal":
            return tf.random.stateless_normal(shape, seed, dtype=dtype)
        return tf.random.stateless_uniform(shape, seed, low, high, dtype=dtype)
    raise TypeError(
        "key must be None, an int seed, a tf.random.Generator or a keras.random.SeedGenerator, "
        f"got {type(key).__name__}."
    )


def perturbation_from_noise(noise: tf.Tensor, radius_u: tf.Tensor, eps: Any, norm: str | float) -> tf.Tensor:
    """A perturbation uniform in the ε-ball (``hrcore.geometry.perturbation_from_noise``).

    L∞: ε·noise; L2/L1: ε·U^{1/d}·z/‖z‖ with U ~ U(0, 1) per example and d the coordinates per example.

    Args:
        noise: Standard noise shaped like the inputs, of the kind ``ball_noise_kind(norm)`` names.
        radius_u: Uniform draws on (0, 1), one per example (B,); unused for L∞.
        eps: The ball's radius.
        norm: The ball's norm.

    Returns:
        δ shaped like noise with ‖δ_b‖ ≤ ε.
    """
    kind = canonical_norm(norm)
    radius = as_scalar(eps, noise.dtype)
    if kind == "linf":
        return radius * noise
    flat = _flat(noise)
    dimension = tf.cast(tf.shape(flat)[1], noise.dtype)
    length = tf.norm(flat, axis=1) if kind == "l2" else tf.reduce_sum(tf.abs(flat), axis=1)
    scale = as_scalar(radius_u, noise.dtype) ** (1.0 / dimension) / tf.maximum(length, _floor(noise.dtype))
    return tf.reshape(radius * flat * scale[:, None], tf.shape(noise))


def random_ball_point(center: tf.Tensor, eps: Any, norm: str | float, key: RandomKey) -> tf.Tensor:
    """A point uniform in the ε-ball around each centre (``hrcore.geometry.random_start``).

    Returns center + δ, δ from ``perturbation_from_noise`` with noise drawn by TensorFlow.

    Args:
        center: Inputs (B, ...).
        eps: The ball's radius.
        norm: The ball's norm.
        key: See ``standard_noise``.

    Returns:
        Points shaped like center.
    """
    noise = standard_noise(ball_noise_kind(norm), tf.shape(center), center.dtype, key, 0)
    radius_u = standard_noise("unit", tf.shape(center)[:1], center.dtype, key, 3)
    return center + perturbation_from_noise(noise, radius_u, eps, norm)


def _channel_stats(statistic: Any, x: tf.Tensor) -> tf.Tensor:
    """Broadcast a scalar or per-channel statistic against x, on Keras's channel axis."""
    value = as_scalar(statistic, x.dtype)
    if value.shape.rank == 1 and x.shape.rank is not None and x.shape.rank >= 2:
        # Keras images are channels-last by default; the core (PyTorch convention) uses axis 1. For flat
        # (B, d) inputs both are the same axis.
        last = keras.config.image_data_format() == "channels_last"
        axis = x.shape.rank - 1 if last else 1
        if x.shape[axis] is not None and value.shape[0] != x.shape[axis]:
            raise ValueError(
                f"normalization statistics have {value.shape[0]} entries but the inputs have {x.shape[axis]} "
                f"channels on axis {axis} (image_data_format={keras.config.image_data_format()!r})."
            )
        shape = [1] * x.shape.rank
        shape[axis] = -1
        value = tf.reshape(value, shape)
    return value


def to_pixels(x: tf.Tensor, normalization: Normalization) -> tf.Tensor:
    """Undo an input normalisation (``hrcore.geometry.to_pixels``, channels on Keras's channel axis).

    Computes x·std + mean.

    Args:
        x: Normalised inputs.
        normalization: None, or (mean, std), scalars or per-channel vectors.

    Returns:
        The inputs in pixel space.
    """
    if normalization is None:
        return x
    mean, std = normalization
    return x * _channel_stats(std, x) + _channel_stats(mean, x)


def from_pixels(x: tf.Tensor, normalization: Normalization) -> tf.Tensor:
    """Apply an input normalisation (``hrcore.geometry.from_pixels``): the inverse of ``to_pixels``.

    Computes (x − mean)/std.

    Args:
        x: Inputs in pixel space.
        normalization: None, or (mean, std).

    Returns:
        The normalised inputs.
    """
    if normalization is None:
        return x
    mean, std = normalization
    return (x - _channel_stats(mean, x)) / _channel_stats(std, x)


def mismatch_perturb(theta: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """Weights under relative mismatch (``hrcore.geometry.mismatch_perturb``).

    Computes Θ* = Θ + |Θ|⊙u.
    """
    return theta + tf.abs(theta) * u


def clip_mismatch(u: tf.Tensor, mismatch_level: Any) -> tf.Tensor:
    """Project onto the mismatch box (``hrcore.geometry.clip_mismatch``).

    Computes clip(u, −ζ, ζ).
    """
    level = as_scalar(mismatch_level, u.dtype)
    return tf.clip_by_value(u, -level, level)


def mismatch_step(u: tf.Tensor, grad_u: tf.Tensor, mismatch_level: Any, attack_steps: int) -> tf.Tensor:
    """One sign-ascent step of the mismatch attack (``hrcore.geometry.mismatch_step``).

    Computes u ← clip(u + (ζ/steps)·sign(∇_u), −ζ, ζ).
    """
    level = as_scalar(mismatch_level, u.dtype)
    return clip_mismatch(u + (level / attack_steps) * tf.sign(grad_u), level)


def check_steps(name: str, steps: Any, minimum: int) -> int:
    """Validate an iteration count: an integer ≥ ``minimum`` (the core's ``check_count``)."""
    return check_count(name, steps, minimum)


def check_pair(name: str, pair: Any) -> tuple[Any, Any] | None:
    """Validate an optional (low, high) or (mean, std) pair.

    Raises:
        TypeError: For anything but None or a 2-sequence.
    """
    if pair is None:
        return None
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(
            f"{name} must be None or a pair ({'lo, hi' if name == 'bounds' else 'mean, std'}), got {pair!r}."
        )
    return tuple(pair)  # type: ignore[return-value]
