"""Networks as pure functions ``net(params, inputs) -> outputs``, including Rockpool-style stateful modules.

A Rockpool-style module carries its parameters and state: ``set_attributes(params)`` and ``reset_state()``
return updated copies, and calling it returns ``(output, state, record)``. Wrapping it as a pure function lets
the published tutorial's calls run unchanged against this adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


class _StatefulForward:
    """A Rockpool-style module as a pure function; evaluations never share state."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def __call__(self, params: Any, inputs: Any) -> Any:
        module = self.module.reset_state().set_attributes(params)
        returned = module(inputs)
        if isinstance(returned, tuple):
            if len(returned) != 3:
                raise TypeError(
                    "a Rockpool-style module must return (output, state, record), got a tuple of "
                    f"{len(returned)} values."
                )
            return returned[0]
        return returned
