"""Input attacks in JAX: FGSM, FGV and PGD on a forward function ``model(x) -> outputs``.

The geometry (directions, projections, random starts, pixel-space normalisation) is the core's; this module
holds the input gradient and the ``lax`` loop. Every attack returns stop_gradient'ed inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from hrcore.geometry import (
    attack_step,
    ball_noise_kind,
    canonical_norm,
    clip_to_bounds,
    fgv_direction,
    from_pixels,
    perturbation_from_noise,
    steepest_ascent,
    to_pixels,
)

from .arguments import check_key, check_sizes, check_steps

Model = Callable[[jax.Array], Any]
Loss = Callable[[Any, Any], Any]
Bounds = tuple[Any, Any] | None
Normalization = tuple[Any, Any] | None


def fgsm(
    model: Model,
    x: jax.Array,
    y: Any,
    eps: float,
    loss_fn: Loss | None = None,
    bounds: Bounds = None,
    normalization: Normalization = None,
) -> jax.Array:
    """Fast gradient sign attack ("FGS").

    Computes x_adv = clip(x + ε·sign(∇ₓ Σ loss_fn(model(x), y))), in pixel space with ``normalization``.

    Args:
        model: ``model(x) -> outputs``, e.g. ``lambda x: net(params, x)``.
        x: Inputs (B, ...), float.
        y: Targets, passed to ``loss_fn``.
        eps: Step ε ≥ 0 (may be traced).
        loss_fn: ``loss_fn(outputs, y)`` -> per-example losses or a scalar; default softmax cross-entropy
            (integer labels, or one-hot/probability targets shaped like the outputs).
        bounds: Optional (lo, hi) input range, e.g. (0.0, 1.0).
        normalization: Optional (mean, std) the model's inputs were normalised with.

    Returns:
        The adversarial inputs, shaped like x, without gradient.

    Raises:
        ValueError: For a negative ε, or inputs without a batch axis.
        TypeError: For non-float inputs.
    """
    check_sizes(eps=eps)
    return _one_step(model, x, y, eps, loss_fn, bounds, normalization, lambda g: steepest_ascent(g, "linf"))


def fgv(
    model: Model,
    x: jax.Array,
    y: Any,
    eps: float,
    loss_fn: Loss | None = None,
    bounds: Bounds = None,
    normalization: Normalization = None,
) -> jax.Array:
    """Fast gradient value attack.

    Computes x_adv = clip(x + ε·∇ₓL / max|∇ₓL|) per example, L = Σ loss_fn(model(x), y).

    Args:
        model: ``model(x) -> outputs``.
        x: Inputs (B, ...), float.
        y: Targets.
        eps: Step ε ≥ 0 (the largest coordinate moves by ε).
        loss_fn: As in ``fgsm``.
        bounds: Optional (lo, hi) input range.
        normalization: Optional (mean, std).

    Returns:
        The adversarial inputs, without gradient.

    Raises:
        ValueError: As ``fgsm``.
        TypeError: As ``fgsm``.
    """
    check_sizes(eps=eps)
    return _one_step(model, x, y, eps, loss_fn, bounds, normalization, fgv_direction)


def pgd(
    model: Model,
    x: jax.Array,
    y: Any,
    eps: float,
    step_size: float,
    steps: int = 10,
    norm: str | float = "linf",
    random_start: bool = True,
    loss_fn: Loss | None = None,
    bounds: Bounds = None,
    normalization: Normalization = None,
    key: jax.Array | None = None,
) -> jax.Array:
    """Projected gradient ascent in the ε-ball of an L∞, L2 or L1 norm.

    Computes x ← clip(Π_ε(x + step·d(∇ₓL))) ``steps`` times from x0 (or a uniform random point of the ball),
    with d the norm's steepest-ascent direction and Π_ε the exact projection onto ‖x − x0‖ ≤ ε.

    Args:
        model: ``model(x) -> outputs``.
        x: Inputs (B, ...), float.
        y: Targets.
        eps: Radius ε ≥ 0 (may be traced).
        step_size: Step length ≥ 0 in the norm (may be traced).
        steps: Number of steps (an int, may be traced).
        norm: "linf", "l2" or "l1" (or "l-inf", "l-2", inf, 2, 1).
        random_start: Start from a uniform random point of the ball (needs ``key``).
        loss_fn: As in ``fgsm``.
        bounds: Optional (lo, hi) input range.
        normalization: Optional (mean, std); ε, step and bounds then apply in pixel space.
        key: JAX PRNG key for the random start.

    Returns:
        The adversarial inputs, without gradient.

    Raises:
        ValueError: For a bad size, step count or norm, or inputs without a batch axis.
        TypeError: For non-float inputs, a non-integer step count, or a random start without a key.
    """
    kind = canonical_norm(norm)
    check_sizes(eps=eps, step_size=step_size)
    check_steps("steps", steps)
    x = _check_inputs(x)
    origin = to_pixels(jax.lax.stop_gradient(x), normalization)
    slope = jax.grad(_attacked_loss(model, y, loss_fn, normalization))
    start = origin
    if random_start:
        start = clip_to_bounds(
            origin + random_in_ball(check_key(key, "pgd(random_start=True)"), origin, eps, kind), bounds
        )

    def ascend(_: Any, pixels: jax.Array) -> jax.Array:
        return attack_step(pixels, origin, slope(pixels), step_size, eps, kind, bounds)

    adversarial = jax.lax.fori_loop(0, steps, ascend, start)
    return jax.lax.stop_gradient(from_pixels(adversarial, normalization))


def random_in_ball(key: jax.Array, like: jax.Array, eps: Any, norm: str | float) -> jax.Array:
    """A perturbation uniform in the ε-ball, per example, drawn with a JAX key.

    Computes δ = ``perturbation_from_noise`` of standard noise of the norm's kind and U ~ U(0, 1) per example.

    Args:
        key: A JAX PRNG key.
        like: Array (B, ...) giving the shape and dtype.
        eps: The radius.
        norm: The ball's norm.

    Returns:
        δ shaped like ``like``.
    """
    noise_key, radius_key = jax.random.split(key)
    shape, dtype = like.shape, like.dtype
    kind = ball_noise_kind(norm)
    if kind == "uniform":
        noise = jax.random.uniform(noise_key, shape, dtype, minval=-1.0, maxval=1.0)
    elif kind == "normal":
        noise = jax.random.normal(noise_key, shape, dtype)
    else:
        noise = jax.random.laplace(noise_key, shape, dtype)
    radius_u = jax.random.uniform(radius_key, shape[:1], dtype)
    return perturbation_from_noise(noise, radius_u, eps, norm)


def softmax_cross_entropy(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy of logits against integer labels or target distributions.

    Computes −log softmax(z)_y, or −Σ_k t_k log softmax(z)_k when the targets t are shaped like the logits.

    Args:
        outputs: Logits (..., K).
        labels: Integer classes (...) or float targets (..., K).

    Returns:
        Losses (...).

    Raises:
        ValueError: If the labels' shape fits neither form.
    """
    log_probabilities = jax.nn.log_softmax(outputs, axis=-1)
    if jnp.issubdtype(labels.dtype, jnp.integer) and labels.shape == outputs.shape[:-1]:
        return -jnp.take_along_axis(log_probabilities, labels[..., None], axis=-1)[..., 0]
    if jnp.issubdtype(labels.dtype, jnp.floating) and labels.shape == outputs.shape:
        return -jnp.sum(labels * log_probabilities, axis=-1)
    raise ValueError(
        f"the default loss (softmax cross-entropy) needs integer labels of shape {outputs.shape[:-1]} or "
        f"float targets of shape {outputs.shape}, got {labels.dtype} labels of shape {labels.shape}; "
        "pass loss_fn."
    )


def _one_step(
    model: Model,
    x: jax.Array,
    y: Any,
    eps: Any,
    loss_fn: Loss | None,
    bounds: Bounds,
    normalization: Normalization,
    direction: Callable[[jax.Array], jax.Array],
) -> jax.Array:
    x = _check_inputs(x)
    pixels = to_pixels(jax.lax.stop_gradient(x), normalization)
    slope = jax.grad(_attacked_loss(model, y, loss_fn, normalization))(pixels)
    adversarial = clip_to_bounds(pixels + eps * direction(slope), bounds)
    return jax.lax.stop_gradient(from_pixels(adversarial, normalization))


def _attacked_loss(
    model: Model, y: Any, loss_fn: Loss | None, normalization: Normalization
) -> Callable[[jax.Array], jax.Array]:
    """L(pixels) = Σ loss_fn(model(from_pixels(pixels)), y): each example's gradient is its own loss's."""
    loss = softmax_cross_entropy if loss_fn is None else loss_fn
    labels = jnp.asarray(y) if loss_fn is None else y

    def attacked(pixels: jax.Array) -> jax.Array:
        return jnp.sum(loss(model(from_pixels(pixels, normalization)), labels))

    return attacked


def _check_inputs(x: Any) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"attacked inputs must be a float array, got dtype {x.dtype}.")
    if x.ndim == 0:
        raise ValueError("attacked inputs need a leading batch axis, got a scalar.")
    return x
