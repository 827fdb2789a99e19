"""Train/eval bookkeeping around attacks: the model must leave an attack exactly as it entered it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def attack_mode(model: nn.Module | Callable[..., torch.Tensor], train: bool = False) -> Iterator[None]:
    """Run a block with ``model`` in eval (or train) mode, then restore every submodule's own flag.

    Sets m.training = train for every submodule m, and afterwards m.training = (its flag before), one by one.

    ``model.train(flag)`` would overwrite the flags of submodules a user froze on purpose (a backbone left in
    eval mode under a training head), so the flags are recorded and restored per submodule. With
    ``train=True`` the forward passes would update BatchNorm running statistics; the buffers are snapshotted
    and written back so an attack never moves them.

    Args:
        model: The model; plain callables (no ``nn.Module``) are left alone.
        train: Run the block in train mode (dropout active) instead of eval mode.

    Yields:
        Nothing; the mode holds inside the ``with`` block.
    """
    if not isinstance(model, nn.Module):
        yield
        return
    flags = [(module, module.training) for module in model.modules()]
    saved = [(buffer, buffer.detach().clone()) for buffer in model.buffers()] if train else []
    model.train(train)
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
