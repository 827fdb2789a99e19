"""NSL-style adversarial regularisation in JAX: the loss on inputs moved along the normalised input gradient.

Only float features are perturbed, jointly: the per-example norm runs over all float feature arrays together.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from hrcore.adversarial import AdvConfig
from hrcore.geometry import canonical_norm, clip_to_bounds, project, steepest_ascent

from .arguments import check_key
from .attacks import random_in_ball

Loss = Callable[[Any, Any], Any]


def input_adversarial_loss(
    features: Any,
    labels: Any,
    model: Callable[..., Any],
    loss_fn: Loss,
    sample_weights: Any = None,
    adv_config: AdvConfig | None = None,
    predictions: Any = None,
    labeled_loss: Any = None,
    gradient_tape: Any = None,
    model_kwargs: dict[str, Any] | None = None,
    *,
    key: jax.Array | None = None,
) -> jax.Array:
    """The loss on adversarially perturbed features (NSL's ``adversarial_loss`` contract).

    Computes L(x_adv), L(x) = mean_b w_b·loss_fn(model(x), labels)_b, x_adv after ``pgd_iterations`` steps
    x ← clip(Π_ε(x + adv_step_size·d(∇ₓL))), d the steepest ascent of the joint per-example norm.

    Args:
        features: One float array (B, ...), or a list/dict (any pytree) of arrays sharing the batch axis; only
            float arrays are perturbed, all of them jointly.
        labels: Passed to ``loss_fn``.
        model: ``model(features, **model_kwargs) -> outputs``; its parameters are closed over, so the result
            is differentiable in them.
        loss_fn: ``loss_fn(outputs, labels)`` -> per-example losses (B,) or a scalar.
        sample_weights: Optional per-example weights (B,) (or (B, 1)); needs per-example losses.
        adv_config: ``AdvConfig``; default ``AdvConfig()``.
        predictions: Accepted for NSL compatibility and unused: JAX differentiates the forward pass itself.
        labeled_loss: Accepted for NSL compatibility and unused, like ``predictions``.
        gradient_tape: Must be None (JAX has no tapes).
        model_kwargs: Extra keyword arguments for ``model``.
        key: JAX PRNG key, required when ``adv_config.random_init``.

    Returns:
        The scalar adversarial loss, differentiable in the model's parameters (not through the attack).

    Raises:
        ValueError: For features without float arrays, mismatched batch sizes or weights, bad bounds, or
            sample weights with a scalar loss.
        TypeError: For a gradient tape, or random_init without a key.
    """
    del predictions, labeled_loss  # the input gradient needs the function, not these values
    if gradient_tape is not None:
        raise TypeError("JAX has no gradient tape: call input_adversarial_loss without gradient_tape.")
    config = AdvConfig() if adv_config is None else adv_config
    norm = canonical_norm(config.adv_grad_norm)
    kwargs = {} if model_kwargs is None else dict(model_kwargs)
    paths_and_leaves, treedef = jax.tree_util.tree_flatten_with_path(features)
    leaves = [jnp.asarray(leaf) for _, leaf in paths_and_leaves]
    chosen = [
        i for i, leaf in enumerate(leaves) if jnp.issubdtype(leaf.dtype, jnp.floating) and leaf.ndim > 0
    ]
    if not chosen:
        raise ValueError("input_adversarial_loss found no float feature array (B, ...) to perturb.")
    batch = leaves[chosen[0]].shape[0]
    if any(leaves[i].shape[0] != batch for i in chosen):
        raise ValueError(
            f"every float feature needs the same batch size, got {[leaves[i].shape for i in chosen]}."
        )
    weights = _sample_weights(sample_weights, batch)
    sizes = [math.prod(leaves[i].shape[1:]) for i in chosen]
    splits = [sum(sizes[: k + 1]) for k in range(len(sizes) - 1)]

    def rebuild(flat: jax.Array) -> Any:
        pieces = jnp.split(flat, splits, axis=1) if splits else [flat]
        rebuilt = list(leaves)
        for i, piece in zip(chosen, pieces, strict=True):
            rebuilt[i] = piece.reshape(leaves[i].shape)
        return jax.tree_util.tree_unflatten(treedef, rebuilt)

    def weighted_loss(flat: jax.Array) -> jax.Array:
        losses = loss_fn(model(rebuild(flat), **kwargs), labels)
        if weights is None:
            return jnp.mean(losses)
        if jnp.ndim(losses) != 1 or jnp.shape(losses)[0] != batch:
            raise ValueError(
                f"sample_weights need per-example losses of shape ({batch},) from loss_fn, got shape "
                f"{jnp.shape(losses)}; return one loss per example."
            )
        return jnp.mean(weights.astype(losses.dtype) * losses)

    origin = jax.lax.stop_gradient(jnp.concatenate([leaves[i].reshape(batch, -1) for i in chosen], axis=1))
    bounds = _flat_bounds(config, paths_and_leaves, chosen, origin, features)
    slope = jax.grad(weighted_loss)

    def ascend(_: Any, flat: jax.Array) -> jax.Array:
        gradient = slope(flat)
        # As NSL: a non-finite gradient entry does not move its coordinate.
        gradient = jnp.where(jnp.isfinite(gradient), gradient, 0.0)
        moved = flat + config.adv_step_size * steepest_ascent(gradient, norm)
        if config.pgd_epsilon is not None:
            moved = project(moved, origin, config.pgd_epsilon, norm)
        return clip_to_bounds(moved, bounds)

    start = origin
    if config.random_init:
        radius = config.pgd_epsilon
        offset = random_in_ball(check_key(key, "AdvConfig(random_init=True)"), origin, radius, norm)
        start = clip_to_bounds(origin + offset, bounds)
    adversarial = jax.lax.fori_loop(0, config.pgd_iterations, ascend, start)
    return weighted_loss(jax.lax.stop_gradient(adversarial))


def _sample_weights(sample_weights: Any, batch: int) -> jax.Array | None:
    if sample_weights is None:
        return None
    weights = jnp.asarray(sample_weights)
    if weights.shape == (batch, 1):
        weights = weights[:, 0]
    if weights.shape != (batch,):
        raise ValueError(f"sample_weights must have shape ({batch},) or ({batch}, 1), got {weights.shape}.")
    return weights


def _flat_bounds(
    config: AdvConfig,
    paths_and_leaves: list[tuple[Any, Any]],
    chosen: list[int],
    origin: jax.Array,
    features: Any,
) -> tuple[jax.Array, jax.Array] | None:
    """The clip bounds as (B, D) arrays aligned with the flattened float features (±inf where unbounded)."""
    if config.clip_value_min is None and config.clip_value_max is None:
        return None
    columns: dict[str, list[jax.Array]] = {"min": [], "max": []}
    for side, given, fill in (
        ("min", config.clip_value_min, -jnp.inf),
        ("max", config.clip_value_max, jnp.inf),
    ):
        for i in chosen:
            path, leaf = paths_and_leaves[i]
            bound = _bound_for(given, path, features, f"clip_value_{side}")
            value = fill if bound is None else bound
            try:
                full = jnp.broadcast_to(jnp.asarray(value, dtype=origin.dtype), jnp.shape(leaf))
            except ValueError as error:
                raise ValueError(
                    f"clip_value_{side} for feature {jax.tree_util.keystr(path) or 'x'} has shape "
                    f"{jnp.shape(value)}, which does not broadcast to the feature's shape {jnp.shape(leaf)}."
                ) from error
            columns[side].append(full.reshape(origin.shape[0], -1))
    return jnp.concatenate(columns["min"], axis=1), jnp.concatenate(columns["max"], axis=1)


def _bound_for(given: Any, path: tuple[Any, ...], features: Any, name: str) -> Any:
    """A bound for one feature: the same for all (number/array), or looked up by its top-level key."""
    if given is None:
        return None
    if isinstance(given, dict):
        if not isinstance(features, dict):
            raise ValueError(f"{name} is a dict but the features are a {type(features).__name__}.")
        unknown = set(given) - set(features)
        if unknown:
            raise ValueError(f"{name} names features that do not exist: {sorted(map(str, unknown))}.")
        return given.get(getattr(path[0], "key", None))
    if isinstance(given, (list, tuple)):
        if not isinstance(features, (list, tuple)) or len(given) != len(features):
            raise ValueError(f"{name} has {len(given)} bounds; the features need exactly one per feature.")
        return given[getattr(path[0], "idx", 0)]
    return given
