"""Networks as pure functions ``net(params, inputs) -> outputs``, including Rockpool-style stateful modules.

A Rockpool-style module carries its parameters and state: ``set_attributes(params)`` and ``reset_state()``
return updated copies, and calling it returns ``(output, state, record)``. Wrapping it as a pure function lets
the published tutorial's calls run unchanged against this adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.tree_util import Partial

Forward = Callable[[Any, Any], Any]


def is_stateful_module(net: object) -> bool:
    """Whether ``net`` follows the Rockpool module protocol.

    Tests for callable ``set_attributes`` and ``reset_state`` methods.

    Args:
        net: Anything passed as a network.

    Returns:
        True for a Rockpool-style module.
    """
    return callable(getattr(net, "set_attributes", None)) and callable(getattr(net, "reset_state", None))


def pure_forward(net: Any) -> Forward:
    """The network as a pure function of (parameters, inputs).

    Computes f(Θ, X): a plain callable is returned as is; a Rockpool-style module becomes
    ``lambda Θ, X: net.reset_state().set_attributes(Θ)(X)[0]`` (fresh state on every evaluation, as the
    published loss does).

    Args:
        net: ``net(params, inputs)`` (a function, flax ``Module.apply``, an equinox model combined with its
            partition) or a Rockpool-style module.

    Returns:
        A callable ``forward(params, inputs) -> outputs``.

    Raises:
        TypeError: If ``net`` is neither callable nor a Rockpool-style module.
    """
    if is_stateful_module(net):
        return _StatefulForward(net)
    if not callable(net):
        raise TypeError(
            f"net must be a callable net(params, inputs) or a Rockpool-style module (with set_attributes and "
            f"reset_state), got {type(net).__name__}."
        )
    return net


def as_jit_callable(function: Callable[..., Any]) -> Partial:
    """A callable as an argument of ``jax.jit``: a ``jax.tree_util.Partial`` pytree.

    Wraps f so that jit traces its arrays and compares the function itself by equality: repeated calls with
    the same function (or the same module) reuse the compiled program.

    Args:
        function: A plain callable, a ``Partial``, or the wrapper ``pure_forward`` makes of a module.

    Returns:
        The callable as a ``Partial``; a pytree module's arrays become its traced arguments.
    """
    if isinstance(function, Partial):
        return function
    if isinstance(function, _StatefulForward) and _is_array_pytree(function.module):
        return Partial(_call_module, function.module)
    return Partial(function)


def _call_module(module: Any, params: Any, inputs: Any) -> Any:
    returned = module.reset_state().set_attributes(params)(inputs)
    if isinstance(returned, tuple):
        if len(returned) != 3:
            raise TypeError(
                "a Rockpool-style module must return (output, state, record), got a tuple of "
                f"{len(returned)} values."
            )
        return returned[0]
    return returned


def _is_array_pytree(tree: Any) -> bool:
    """Whether a module is a registered pytree of arrays/numbers (as Rockpool's JAX modules are)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if len(leaves) == 1 and leaves[0] is tree:
        return False
    return all(isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, complex)) for leaf in leaves)


class _StatefulForward:
    """A Rockpool-style module as a pure function; evaluations never share state."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def __call__(self, params: Any, inputs: Any) -> Any:
        return _call_module(self.module, params, inputs)

    # Equal for the same module object: a jit cache keyed on the wrapper hits on every call with that module.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, _StatefulForward) and other.module is self.module

    def __hash__(self) -> int:
        return hash(id(self.module))
