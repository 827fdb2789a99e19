"""Robustness evaluation of Keras models: accuracy under an input attack, metrics under weight mismatch.

Computes the core's summaries (``hrcore.evaluation``) from Keras predictions: clean, conditional and robust
accuracy under an attack, and the mean ± std of a metric over draws Θ + |Θ|⊙ζR, R ~ N(0, I), per level ζ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from hrcore.evaluation import (
    AdversarialAccuracy,
    MismatchCurve,
    adversarial_accuracy_from_predictions,
    summarize_draws,
)
from hrcore.geometry import mismatch_perturb
from hrcore.validation import check_nonnegative

from .attacks import as_float_tensor, call_model
from .host import require_tensorflow_backend


def adversarial_accuracy(
    model: Any, x: Any, y: Any, attack: Callable[[Any, Any, Any], Any]
) -> AdversarialAccuracy:
    """Clean accuracy, accuracy on attacked inputs whose originals were correct, and robust accuracy.

    Computes mean[ŷ = y], mean[ŷ_adv = y | ŷ = y] and mean[ŷ_adv = y], ŷ the arg-max class of the model's
    output (inference mode) and ŷ_adv that on ``attack(model, x, y)``.

    Args:
        model: A Keras classifier (or callable) returning class scores (B, C).
        x: Inputs (B, ...).
        y: Integer class labels (B,).
        attack: ``attack(model, x, y) -> x_adv``, e.g. ``functools.partial(fgsm, eps=0.1)``.

    Returns:
        ``hrcore.evaluation.AdversarialAccuracy(clean, conditional, robust)``.

    Raises:
        RuntimeError: On a Keras backend other than TensorFlow.
    """
    require_tensorflow_backend("adversarial_accuracy")
    x = as_float_tensor(x)
    clean = np.argmax(np.asarray(call_model(model, x, training=False)), axis=-1)
    adversarial = attack(model, x, y)
    attacked = np.argmax(np.asarray(call_model(model, adversarial, training=False)), axis=-1)
    return adversarial_accuracy_from_predictions(np.asarray(y).reshape(-1), clean, attacked)


def mismatch_curve(
    loss_of_params: Callable[[list[np.ndarray]], Any],
    params: Sequence[Any],
    levels: Sequence[float],
    draws: int = 200,
    key: int | np.random.Generator | None = None,
) -> MismatchCurve:
    """A metric under random relative weight mismatch, mean ± std over draws at each level.

    Evaluates loss_of_params(Θ + |Θ|⊙ζR) for R ~ N(0, I) drawn ``draws`` times per level ζ.

    Args:
        loss_of_params: Maps a list of parameter arrays to a scalar (e.g. a test MSE through
            ``model.stateless_call``).
        params: The nominal parameters Θ (tensors or arrays), e.g. ``[v.numpy() for v in
            model.trainable_variables]``.
        levels: The levels ζ ≥ 0.
        draws: Draws per level (≥ 200 recommended: with 20 a single level has ~20 % standard error).
        key: None, an int seed or a ``numpy.random.Generator``.

    Returns:
        ``hrcore.evaluation.MismatchCurve(levels, mean, std)``.

    Raises:
        ValueError: For a negative level or fewer than one draw.
    """
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}.")
    grid = [check_nonnegative("level", level) for level in levels]
    rng = key if isinstance(key, np.random.Generator) else np.random.default_rng(key)
    theta = [np.asarray(tf.convert_to_tensor(p)) for p in params]
    values = np.empty((len(grid), draws))
    for row, level in enumerate(grid):
        for column in range(draws):
            perturbed = [
                mismatch_perturb(t, level * rng.standard_normal(t.shape).astype(t.dtype)) for t in theta
            ]
            values[row, column] = float(np.asarray(loss_of_params(perturbed)))
    return summarize_draws(grid, values)
