"""Which parameter leaves a perturbation touches, and the Gaussian draws for them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

ParameterFilter = (
    Any  # None, a pytree of booleans (the parameters' structure or a prefix), or predicate(path, leaf)
)


def selected_leaves(params: Any, parameter_filter: ParameterFilter = None) -> list[bool]:
    """One flag per leaf of ``params`` (``jax.tree_util.tree_leaves`` order): whether perturbations touch it.

    Selects float leaves that the filter keeps: flag_i = inexact(leaf_i) ∧ filter(leaf_i).

    Args:
        params: Any pytree of arrays.
        parameter_filter: None (every float leaf), a pytree of Python booleans with the parameters' structure
            or a prefix of it (``{"encoder": False, "head": True}``), or a predicate ``(path, leaf) -> bool``
            as in ``jax.tree_util.tree_map_with_path``.

    Returns:
        The flags.

    Raises:
        ValueError: If a filter pytree does not match the parameters' structure.
        TypeError: If the filter does not give one Python bool per leaf.
    """
    leaves = jax.tree_util.tree_leaves(params)
    floating = [bool(jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)) for leaf in leaves]
    if parameter_filter is None:
        return floating
    try:
        if callable(parameter_filter):
            flags = jax.tree_util.tree_map_with_path(parameter_filter, params)
        else:
            flags = jax.tree_util.tree_map(
                lambda flag, subtree: jax.tree_util.tree_map(lambda _: flag, subtree),
                parameter_filter,
                params,
            )
    except (ValueError, TypeError) as error:
        raise ValueError(
            "parameter_filter must be a pytree of booleans with the parameters' structure (or a prefix of "
            f"it), or a predicate (path, leaf) -> bool; it does not match the parameters: {error}"
        ) from error
    flat = jax.tree_util.tree_leaves(flags)
    if len(flat) != len(leaves) or not all(isinstance(flag, (bool, np.bool_)) for flag in flat):
        raise TypeError(
            f"parameter_filter must give one Python bool per parameter leaf ({len(leaves)} leaves), got "
            f"{len(flat)} values of types {sorted({type(flag).__name__ for flag in flat})}."
        )
    return [bool(flag) and keep for flag, keep in zip(flat, floating, strict=True)]


def standard_normals(
    key: jax.Array, leaves: Sequence[Any], selected: Sequence[bool], sets: int = 1
) -> list[list[jax.Array]]:
    """``sets`` independent draws R_s ~ N(0, I), each shaped like the selected leaves.

    Draws ``jax.random.normal(key, (sets, n))`` once, n being the selected leaves' total size, and cuts row s
    into the leaves in leaf order. One call, because on a CPU a draw costs mostly per call, not per number.

    Args:
        key: A JAX PRNG key.
        leaves: The parameter leaves.
        selected: One flag per leaf.
        sets: How many independent draws.

    Returns:
        ``sets`` lists of one array per selected leaf, in the leaf's dtype (drawn in the selected leaves'
        common dtype).
    """
    chosen = pick_selected(leaves, selected)
    if not chosen:
        return [[] for _ in range(sets)]
    sizes = [int(np.prod(jnp.shape(leaf), dtype=np.int64)) for leaf in chosen]
    flat = jax.random.normal(key, (sets, sum(sizes)), jnp.result_type(*chosen))
    ends = np.cumsum(sizes)
    return [
        [
            flat[s, end - size : end].reshape(jnp.shape(leaf)).astype(jnp.result_type(leaf))
            for leaf, size, end in zip(chosen, sizes, ends, strict=True)
        ]
        for s in range(sets)
    ]


def pick_selected(leaves: Sequence[Any], selected: Sequence[bool]) -> list[Any]:
    """The selected leaves, in order (the inverse of ``replace_selected``).

    Computes [leaf_i for i if selected_i].

    Args:
        leaves: All leaves.
        selected: One flag per leaf.

    Returns:
        The selected leaves.
    """
    return [leaf for leaf, keep in zip(leaves, selected, strict=True) if keep]


def replace_selected(leaves: Sequence[Any], selected: Sequence[bool], new: Sequence[Any]) -> list[Any]:
    """The leaves with the selected ones replaced, in order.

    Computes [new_k if selected_i else leaf_i].

    Args:
        leaves: All leaves.
        selected: One flag per leaf.
        new: One replacement per selected leaf.

    Returns:
        The merged leaves.
    """
    replacements = iter(new)
    return [next(replacements) if keep else leaf for leaf, keep in zip(leaves, selected, strict=True)]
