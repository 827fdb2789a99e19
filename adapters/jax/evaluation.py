"""Robustness evaluation in JAX: accuracy under an input attack, and loss curves under simulated mismatch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hrcore.evaluation import (
    AdversarialAccuracy,
    MismatchCurve,
    adversarial_accuracy_from_predictions,
    summarize_draws,
)
from hrcore.geometry import mismatch_perturb

from .arguments import check_key, check_sizes, check_steps
from .parameters import ParameterFilter, pick_selected, replace_selected, selected_leaves, standard_normals


def adversarial_accuracy(
    model: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    y: Any,
    attack: Callable[[Callable[[jax.Array], jax.Array], jax.Array, Any], jax.Array],
) -> AdversarialAccuracy:
    """Clean accuracy, accuracy under attack on the originals classified correctly, and robust accuracy.

    Computes mean[ŷ = y], mean[ŷ_adv = y | ŷ = y] and mean[ŷ_adv = y], ŷ = argmax model(·).

    Args:
        model: ``model(x) -> logits`` (B, K).
        x: Inputs (B, ...).
        y: Integer classes (B,), or one-hot targets (B, K).
        attack: ``attack(model, x, y) -> x_adv``, e.g. ``functools.partial(fgsm, eps=0.1)``.

    Returns:
        ``AdversarialAccuracy(clean, conditional, robust)``.

    Raises:
        ValueError: For mismatched or empty inputs.
    """
    labels = np.asarray(y)
    if labels.ndim == 2:
        labels = labels.argmax(axis=-1)
    clean = np.asarray(jnp.argmax(model(x), axis=-1))
    adversarial = np.asarray(jnp.argmax(model(attack(model, x, y)), axis=-1))
    return adversarial_accuracy_from_predictions(labels, clean, adversarial)


def mismatch_curve(
    loss_of_params: Callable[[Any], jax.Array],
    params: Any,
    levels: Sequence[float],
    draws: int = 200,
    key: jax.Array | None = None,
    *,
    parameter_filter: ParameterFilter = None,
    batch_size: int | None = None,
) -> MismatchCurve:
    """Mean and standard deviation of a loss under simulated relative mismatch, per level.

    Computes loss(Θ + |Θ|⊙ζR), R ~ N(0, I), over ``draws`` draws for each level ζ.

    Args:
        loss_of_params: ``loss_of_params(params) -> scalar`` (e.g. the test-set MSE); it is jit-compiled once.
        params: Θ, any pytree of arrays.
        levels: The mismatch levels ζ ≥ 0.
        draws: Draws per level (≥ 1; use ≥ 200 for a stable mean).
        key: JAX PRNG key; default ``jax.random.key(0)``. Level k uses ``jax.random.fold_in(key, k)``, so two
            models with the same parameter shapes are compared on the same draws.
        parameter_filter: Which leaves the mismatch touches (see ``mismatch_adversarial_loss``).
        batch_size: Draws evaluated at once (``jax.lax.map``); default all of them.

    Returns:
        ``MismatchCurve(levels, mean, std)``.

    Raises:
        ValueError: For a negative level or fewer than one draw.
        TypeError: For a non-integer draw count or a bad key.
    """
    check_steps("draws", draws)
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}.")
    grid = np.asarray(levels, dtype=np.float64).reshape(-1)
    for level in grid:
        check_sizes(levels=float(level))
    key = jax.random.key(0) if key is None else check_key(key, "mismatch_curve")
    leaves, treedef = jax.tree_util.tree_flatten(params)
    selected = selected_leaves(params, parameter_filter)
    chosen = pick_selected(leaves, selected)

    def one_draw(level: jax.Array, draw_key: jax.Array) -> jax.Array:
        noise = standard_normals(draw_key, leaves, selected)[0]
        moved = [mismatch_perturb(leaf, level * r) for leaf, r in zip(chosen, noise, strict=True)]
        return loss_of_params(
            jax.tree_util.tree_unflatten(treedef, replace_selected(leaves, selected, moved))
        )

    @jax.jit
    def losses_at(level: jax.Array, level_key: jax.Array) -> jax.Array:
        keys = jax.random.split(level_key, draws)
        return jax.lax.map(lambda k: one_draw(level, k), keys, batch_size=batch_size or draws)

    table = [
        np.asarray(losses_at(jnp.float32(level), jax.random.fold_in(key, k))) for k, level in enumerate(grid)
    ]
    return summarize_draws(grid, np.stack(table))
