"""HR/HD importance weights in JAX: the core's exact solver behind ``jax.pure_callback``.

The weights are data-dependent constants of the robust loss (Danskin's theorem), so the callback runs on
stop-gradient'ed losses and autodiff only ever sees the product Σ sg(w)·ℓ.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import hrcore
from hrcore.validation import check_alpha, check_ambiguity, check_loss_shape, check_radius

ArrayLike = Any


def hr_weights(
    losses: ArrayLike,
    alpha: float = 0.05,
    r: float = 0.1,
    ambiguity: str = "HD",
    upper_bound: float | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    """Folded HR/HD weights of a batch of per-sample losses, as a constant (stop-gradient) array.

    Computes w = ∂V/∂ℓ for V = max{E_p[ℓ] : p in the HD/HR ambiguity set around the batch}, so Σ w_i ℓ_i = V.

    Pure and safe under ``jit``, ``grad`` and ``vmap`` (a batched call solves one program per row).

    Args:
        losses: Per-sample losses (N,), float32 or float64 (a traced array is fine).
        alpha: Poisoning fraction α ∈ [0, 1) (a Python number: it shapes the program, not the data).
        r: KL radius r ≥ 0 (a Python number).
        ambiguity: "HD" (default) or "HR".
        upper_bound: Optional known bound B ≥ max ℓ; the worst atom then sits at B and is not folded in.
        mask: Optional boolean (N,) array; False entries are excluded and get weight 0.

    Returns:
        The weights (N,), in the losses' dtype, with no gradient.

    Raises:
        ValueError: For a scalar/2-D/empty loss array or an out-of-range hyper-parameter (at trace time); for
            NaN/inf losses or B < max ℓ when the losses are concrete (under ``jit`` the core's message arrives
            wrapped in a ``JaxRuntimeError``).
        TypeError: For non-real losses, a non-boolean mask, or a traced α, r or B.
    """
    weights, _ = _solve(losses, alpha, r, ambiguity, upper_bound, mask)
    return weights


def hr_loss(
    losses: ArrayLike,
    alpha: float = 0.05,
    r: float = 0.1,
    ambiguity: str = "HD",
    upper_bound: float | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    """The HR/HD robust loss of a batch: a drop-in replacement for ``losses.mean()``.

    Computes V = Σ sg(w_i)·ℓ_i (+ sg(p_{N+1})·B with an upper bound), whose gradient Σ w_i ∇ℓ_i is ∇V.

    Args:
        losses: Per-sample losses (N,), e.g. ``optax.softmax_cross_entropy_with_integer_labels(logits, y)``.
        alpha: Poisoning fraction α ∈ [0, 1).
        r: KL radius r ≥ 0.
        ambiguity: "HD" (default) or "HR".
        upper_bound: Optional known bound B ≥ max ℓ.
        mask: Optional boolean (N,) array of the entries to include.

    Returns:
        The scalar robust loss, in the losses' dtype.

    Raises:
        ValueError: As ``hr_weights``.
        TypeError: As ``hr_weights``.
    """
    losses = _as_losses(losses)
    weights, worst = _solve(losses, alpha, r, ambiguity, upper_bound, mask)
    value = jnp.sum(weights * losses, axis=-1)
    if upper_bound is not None:
        value = value + worst * jnp.asarray(upper_bound, dtype=losses.dtype)
    return value


def _solve(
    losses: ArrayLike,
    alpha: float,
    r: float,
    ambiguity: str,
    upper_bound: float | None,
    mask: ArrayLike | None,
) -> tuple[jax.Array, jax.Array]:
    """Checks at trace time, then the core's solve on the host: (folded weights, worst-atom mass)."""
    losses = _as_losses(losses)
    check_loss_shape(losses.shape)
    options = {
        "alpha": check_alpha(_static_number("alpha", alpha)),
        "r": check_radius(_static_number("r", r)),
        "ambiguity": check_ambiguity(ambiguity),
        "upper_bound": None if upper_bound is None else _static_number("upper_bound", upper_bound),
    }
    args = [jax.lax.stop_gradient(losses)]
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != losses.shape:
            raise ValueError(f"mask must have the losses' shape {losses.shape}, got {mask.shape}.")
        if mask.dtype != jnp.bool_:
            raise TypeError(f"mask must be boolean (True = include), got dtype {mask.dtype}.")
        args.append(mask)
    if not any(isinstance(arg, jax.core.Tracer) for arg in args):
        # Concrete input: solve directly, so a bad batch raises the core's ValueError itself.
        weights, worst = _solve_rows(*(np.asarray(arg) for arg in args), **options)
        return jnp.asarray(weights, dtype=losses.dtype), jnp.asarray(worst, dtype=losses.dtype)
    result = (jax.ShapeDtypeStruct(losses.shape, losses.dtype), jax.ShapeDtypeStruct((), losses.dtype))
    # expand_dims: a vmapped call reaches the host once with all rows, instead of once per row.
    return jax.pure_callback(
        functools.partial(_host_solve, **options), result, *args, vmap_method="expand_dims"
    )


def _host_solve(losses: np.ndarray, mask: np.ndarray | None = None, **options: Any) -> tuple[Any, Any]:
    weights, worst = _solve_rows(np.asarray(losses), None if mask is None else np.asarray(mask), **options)
    return weights.astype(losses.dtype), worst.astype(losses.dtype)


def _solve_rows(
    losses: np.ndarray, mask: np.ndarray | None = None, **options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """One core solve per row of (..., N) losses; vmap's leading axes may broadcast against the mask's."""
    if mask is not None:
        losses, mask = np.broadcast_arrays(losses, mask)
    batch_shape, n = losses.shape[:-1], losses.shape[-1]
    rows = losses.reshape(-1, n)
    masks = [None] * rows.shape[0] if mask is None else mask.reshape(-1, n)
    weights = np.empty(rows.shape, dtype=np.float64)
    worst = np.empty(rows.shape[0], dtype=np.float64)
    for index, (row, row_mask) in enumerate(zip(rows, masks, strict=True)):
        solution = hrcore.solve(row, mask=row_mask, **options)
        weights[index] = solution.weights
        worst[index] = solution.worst_weight
    return weights.reshape(losses.shape), worst.reshape(batch_shape)


def _as_losses(losses: ArrayLike) -> jax.Array:
    losses = jnp.asarray(losses)
    if jnp.issubdtype(losses.dtype, jnp.integer):
        losses = losses.astype(jnp.result_type(float))
    if not jnp.issubdtype(losses.dtype, jnp.floating):
        raise TypeError(f"losses must be real numbers (a float or integer array), got dtype {losses.dtype}.")
    return losses


def _static_number(name: str, value: Any) -> Any:
    """A hyper-parameter that shapes the program must be known at trace time."""
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{name} must be a Python number, got a traced value: it selects the program the host solves, so "
            "pass it as a constant (close over it, or mark it static: jax.jit(..., static_argnames=...))."
        )
    if isinstance(value, jax.Array):
        return float(value) if value.shape == () else value
    return value
