"""Argument checks for traced and untraced values.

A concrete hyper-parameter is checked with the core's messages; a traced one (a schedule under ``jit``) can
only be checked for its dtype at trace time.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hrcore.validation import check_count, check_nonnegative


def is_concrete(value: Any) -> bool:
    """Whether a value is known at trace time (not a tracer).

    Tests ``not isinstance(value, jax.core.Tracer)``.

    Args:
        value: Any argument.

    Returns:
        True when the value can be inspected in Python.
    """
    return not isinstance(value, jax.core.Tracer)


def is_static_zero(value: Any) -> bool:
    """Whether a hyper-parameter is known to be 0 at trace time, so its branch can be left out of the program.

    Tests value == 0 for untraced values.

    Args:
        value: A number, a concrete scalar array, or a tracer.

    Returns:
        True for an untraced zero.
    """
    return is_concrete(value) and float(value) == 0.0


def check_sizes(**values: Any) -> None:
    """Require non-negative finite sizes (radii, step sizes, noise levels); traced values must be real.

    Checks value ≥ 0 and finite for every untraced value.

    Args:
        **values: Name -> value.

    Raises:
        ValueError: For a negative, NaN or infinite untraced value.
        TypeError: For a non-real value.
    """
    for name, value in values.items():
        if not is_concrete(value):
            if not jnp.issubdtype(value.dtype, jnp.floating) and not jnp.issubdtype(value.dtype, jnp.integer):
                raise TypeError(f"{name} must be a real number, got a traced {value.dtype} value.")
            continue
        if isinstance(value, (jax.Array, np.ndarray)) and value.ndim > 0:
            # A per-example size (B,): the same rule for every entry.
            array = np.asarray(value)
            if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
                raise TypeError(f"{name} must be real, got dtype {array.dtype}.")
            if not (np.all(np.isfinite(array)) and np.all(array >= 0)):
                raise ValueError(f"{name} must be finite and >= 0 everywhere, got {array!r}.")
            continue
        check_nonnegative(name, float(value) if isinstance(value, jax.Array) else value)


def check_steps(name: str, value: Any) -> None:
    """Require a step count: an integer ≥ 0 (a traced integer is accepted).

    Checks an integer value ≥ 0 with the core's ``check_count``; a traced value needs an integer dtype.

    Args:
        name: The argument's name, for the message.
        value: The count.

    Raises:
        TypeError: For a non-integer (bools and floats included).
        ValueError: For a negative count.
    """
    if not is_concrete(value):
        if not jnp.issubdtype(value.dtype, jnp.integer):
            raise TypeError(f"{name} must be an integer, got a traced {value.dtype} value.")
        return
    if isinstance(value, jax.Array) and not jnp.issubdtype(value.dtype, jnp.integer):
        raise TypeError(f"{name} must be an integer, got {value!r}.")  # a bool array would index as 0/1
    check_count(name, value)


def check_key(key: Any, what: str) -> jax.Array:
    """Require a JAX PRNG key.

    Accepts a typed key (``jax.random.key``) or a raw uint32 key (``jax.random.PRNGKey``).

    Args:
        key: The key.
        what: What needs it, for the message.

    Returns:
        The key.

    Raises:
        TypeError: For None or a non-key array.
    """
    if key is None:
        raise TypeError(
            f"{what} draws random numbers: pass a JAX PRNG key (e.g. jax.random.key(0)), got None."
        )
    dtype = getattr(key, "dtype", None)
    if dtype is None or not (jnp.issubdtype(dtype, jax.dtypes.prng_key) or dtype == jnp.uint32):
        raise TypeError(f"{what} needs a JAX PRNG key (e.g. jax.random.key(0)), got {type(key).__name__}.")
    return key
