"""Input attacks on Keras models: FGSM, FGV and PGD in L∞/L2/L1 balls, with optional input normalisation.

Computes x_adv = clip_bounds(x + ε·d(∇ₓℓ)) (one step, d = sign or ∇/max|∇|) or projected steepest ascent
x ← clip_bounds(Π_ε(x + η·d(∇ₓℓ))) from a uniform random start, with ε and bounds in pixel space when a
normalisation (mean, std) is given. The model runs with ``training=False`` (BatchNorm statistics and dropout
untouched) and the returned inputs carry no gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from hrcore.geometry import canonical_norm
from hrcore.validation import check_nonnegative

from .geometry import (
    Bounds,
    Normalization,
    RandomKey,
    as_scalar,
    attack_step,
    check_pair,
    check_steps,
    clip_to_bounds,
    fgv_direction,
    from_pixels,
    project,
    random_ball_point,
    to_pixels,
)
from .host import require_tensorflow_backend

LossFn = Callable[..., Any]


def default_attack_loss() -> keras.losses.Loss:
    """The attacks' default loss: sparse categorical cross-entropy on logits, averaged over the batch."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def call_model(model: Any, inputs: Any, **kwargs: Any) -> Any:
    """Call a Keras model (or any callable) on inputs, passing ``training`` only to Keras layers."""
    if not isinstance(model, keras.Layer):
        kwargs.pop("training", None)
    return model(inputs, **kwargs)


def as_float_tensor(x: Any) -> tf.Tensor:
    """Inputs as a float tensor (integers, e.g. raw pixels, become ``keras.config.floatx()``)."""
    x = tf.convert_to_tensor(x)
    return x if x.dtype.is_floating else tf.cast(x, keras.config.floatx())


def input_gradient(
    model: Any, pixels: tf.Tensor, y: Any, loss_fn: LossFn | None, normalization: Normalization
) -> tf.Tensor:
    """Gradient of the attacked loss with respect to the inputs in pixel space.

    Computes ∇_p ℓ(y, f((p − mean)/std)) with the model in inference mode.

    Args:
        model: The Keras model (or callable).
        pixels: Inputs in pixel space (B, ...).
        y: Targets.
        loss_fn: ``loss_fn(y_true, y_pred)``; None for sparse cross-entropy on logits.
        normalization: None or (mean, std).

    Returns:
        The gradient, shaped like the inputs (zeros where the loss does not depend on them).
    """
    loss_fn = default_attack_loss() if loss_fn is None else loss_fn
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(pixels)
        loss = loss_fn(y, call_model(model, from_pixels(pixels, normalization), training=False))
    grad = tape.gradient(loss, pixels)
    return tf.zeros_like(pixels) if grad is None else grad


def _check_radius(name: str, value: Any) -> Any:
    # Tensors (e.g. a traced schedule) pass through; Python numbers are checked here.
    return value if tf.is_tensor(value) else check_nonnegative(name, value)


def _one_step(
    model: Any,
    x: Any,
    y: Any,
    eps: Any,
    direction: Callable[[tf.Tensor], tf.Tensor],
    loss_fn: LossFn | None,
    bounds: Bounds,
    normalization: Normalization,
) -> tf.Tensor:
    eps = _check_radius("eps", eps)
    bounds, normalization = check_pair("bounds", bounds), check_pair("normalization", normalization)
    pixels = to_pixels(as_float_tensor(x), normalization)
    grad = input_gradient(model, pixels, y, loss_fn, normalization)
    adversarial = clip_to_bounds(pixels + as_scalar(eps, pixels.dtype) * direction(grad), bounds)
    return tf.stop_gradient(from_pixels(adversarial, normalization))


def fgsm(
    model: Any,
    x: Any,
    y: Any,
    eps: Any,
    loss_fn: LossFn | None = None,
    bounds: Bounds = None,
    normalization: Normalization = None,
) -> tf.Tensor:
    """Fast gradient sign attack (the "FGS" of x + ε·sign(∇ₓℓ)).

    Computes clip_bounds(x + ε·sign(∇ₓ ℓ(y, f(x)))), in pixel space when ``normalization`` is given.

    Args:
        model: A Keras model (called with ``training=False``) or any callable.
        x: Inputs (B, ...).
        y: Targets.
        eps: Step size ε ≥ 0 (the L∞ radius).
        loss_fn: ``loss_fn(y_true, y_pred)``; None for sparse categorical cross-entropy on logits.
        bounds: None or (lo, hi) valid input range (in pixel space).
        normalization: None or (mean, std) the model's inputs were normalised with; scalars or per-channel
            vectors on Keras's channel axis.

    Returns:
        The adversarial inputs (no gradient).

    Raises:
        ValueError: For a negative or non-finite ε.
        TypeError: For malformed bounds or normalization.
        RuntimeError: On a Keras backend other than TensorFlow.
    """
    require_tensorflow_backend("fgsm")
    return _one_step(model, x, y, eps, tf.sign, loss_fn, bounds, normalization)


def fgv(
    model: Any,
    x: Any,
    y: Any,
    eps: Any,
    loss_fn: LossFn | None = None,
    bounds: Bounds = None,
    normalization: Normalization = None,
) -> tf.Tensor:
    """Fast gradient value attack.

    Computes clip_bounds(x + ε·∇ₓℓ / max|∇ₓℓ|) per example, in pixel space when ``normalization`` is given.

    Args:
        model: A Keras model (called with ``training=False``) or any callable.
        x: Inputs (B, ...).
        y: Targets.
        eps: Step size ε ≥ 0 (the largest coordinate moves by ε).
        loss_fn: ``loss_fn(y_true, y_pred)``; None for sparse categorical cross-entropy on logits.
        bounds: None or (lo, hi) valid input range (in pixel space).
        normalization: None or (mean, std).

    Returns:
        The adversarial inputs (no gradient).

    Raises:
        ValueError: For a negative or non-finite ε.
        TypeError: For malformed bounds or normalization.
        RuntimeError: On a Keras backend other than TensorFlow.
    """
    require_tensorflow_backend("fgv")
    return _one_step(model, x, y, eps, fgv_direction, loss_fn, bounds, normalization)


def pgd(
    model: Any,
    x: Any,
    y: Any,
    eps: Any,
    step_size: Any,
    steps: int = 10,
    norm: str | float = "linf",
    random_start: bool = True,
    loss_fn: LossFn | None = None,
    bounds: Bounds = None,
    normalization: Normalization = None,
    key: RandomKey = None,
) -> tf.Tensor:
    """Projected gradient descent (ascent on the loss) in an L∞, L2 or L1 ball.

    Iterates x ← clip_bounds(Π_{‖·−x0‖≤ε}(x + η·d(∇ₓℓ))) with d the steepest-ascent direction of the norm
    and Π the exact projection (L1 by the simplex method), from x0 or a point uniform in the ball.

    Args:
        model: A Keras model (called with ``training=False``) or any callable.
        x: Clean inputs (B, ...).
        y: Targets.
        eps: The ball's radius ε ≥ 0 (pixel space when ``normalization`` is given).
        step_size: η ≥ 0, the step's length in the ball's norm.
        steps: Number of steps ≥ 0.
        norm: "linf", "l2" or "l1" (also "l-inf", "l-2", inf, 2, 1, ...).
        random_start: Start uniformly in the ball (then clipped to bounds) instead of at x0.
        loss_fn: ``loss_fn(y_true, y_pred)``; None for sparse categorical cross-entropy on logits.
        bounds: None or (lo, hi) valid input range.
        normalization: None or (mean, std).
        key: Random start: None (fresh draws), an int seed (the same start on every call), a
            ``tf.random.Generator`` or a ``keras.random.SeedGenerator``.

    Returns:
        The adversarial inputs (no gradient).

    Raises:
        ValueError: For a bad radius, step size, step count or norm.
        TypeError: For a non-integer step count, malformed bounds/normalization or key.
        RuntimeError: On a Keras backend other than TensorFlow.
    """
    require_tensorflow_backend("pgd")
    eps, step_size = _check_radius("eps", eps), _check_radius("step_size", step_size)
    steps = check_steps("steps", steps, 0)
    norm = canonical_norm(norm)
    bounds, normalization = check_pair("bounds", bounds), check_pair("normalization", normalization)
    clean = to_pixels(as_float_tensor(x), normalization)
    current = clean
    if random_start:
        current = clip_to_bounds(project(random_ball_point(clean, eps, norm, key), clean, eps, norm), bounds)
    for _ in range(steps):
        grad = input_gradient(model, current, y, loss_fn, normalization)
        current = attack_step(current, clean, grad, step_size, eps, norm, bounds)
    return tf.stop_gradient(from_pixels(current, normalization))
