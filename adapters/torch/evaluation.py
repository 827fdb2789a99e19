"""Robustness evaluation in PyTorch: clean and adversarial accuracy, and loss under simulated mismatch.

Predictions and draws happen here; the summaries (conditional accuracy, mean ± std per level) are the core's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hrcore.evaluation import (
    AdversarialAccuracy,
    MismatchCurve,
    adversarial_accuracy_from_predictions,
    summarize_draws,
)
from hrcore.geometry import mismatch_perturb
from hrcore.validation import check_nonnegative

from .attacks import Key, check_steps, make_generator
from .modes import attack_mode

Attack = Callable[[Any, Tensor, Tensor], Tensor]


def _batches(n: int, batch_size: int | None) -> Iterable[slice]:
    size = n if batch_size is None else check_steps(batch_size)
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
    return (slice(start, start + size) for start in range(0, n, size))


def predict(model: Callable[[Tensor], Tensor], x: Tensor, batch_size: int | None = None) -> Tensor:
    """Predicted classes in eval mode, without gradients.

    Computes argmax_k f(x)_k per example (the flags of every submodule are restored afterwards).

    Args:
        model: A classifier returning logits (B, classes).
        x: Inputs with a leading batch axis.
        batch_size: Evaluate in chunks of this size (None: all at once).

    Returns:
        Class indices (B,) on x's device.
    """
    with attack_mode(model), torch.no_grad():
        return torch.cat([model(x[part]).argmax(dim=1) for part in _batches(x.shape[0], batch_size)])


def accuracy(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, batch_size: int | None = None) -> float:
    """Clean accuracy.

    Computes mean_i [argmax f(x_i) = y_i].

    Args:
        model: A classifier returning logits.
        x: Inputs.
        y: Class indices (B,).
        batch_size: Evaluate in chunks of this size.

    Returns:
        The accuracy in [0, 1].
    """
    return float((predict(model, x, batch_size) == y.to(x.device)).double().mean().item())


def adversarial_accuracy(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    attack: Attack,
    batch_size: int | None = None,
) -> AdversarialAccuracy:
    """Clean accuracy, accuracy under attack on correct originals, and unconditional robust accuracy.

    Computes mean[ŷ = y], mean[ŷ(x̃) = y | ŷ(x) = y] and mean[ŷ(x̃) = y] with x̃ = attack(model, x, y).

    Args:
        model: A classifier returning logits.
        x: Inputs.
        y: Class indices (B,).
        attack: (model, x, y) -> adversarial x, e.g. ``functools.partial(fgsm, eps=0.3, bounds=(0, 1))``.
        batch_size: Attack and evaluate in chunks of this size.

    Returns:
        ``AdversarialAccuracy(clean, conditional, robust)``.
    """
    clean, adversarial = [], []
    for part in _batches(x.shape[0], batch_size):
        clean.append(predict(model, x[part]))
        adversarial.append(predict(model, attack(model, x[part], y[part])))
    return adversarial_accuracy_from_predictions(
        y.detach().cpu().numpy(), torch.cat(clean).cpu().numpy(), torch.cat(adversarial).cpu().numpy()
    )


def mismatch_curve(
    loss_of_params: Callable[[dict[str, Tensor]], Any],
    params: Mapping[str, Tensor] | nn.Module,
    levels: Sequence[float],
    draws: int = 200,
    key: Key = None,
) -> MismatchCurve:
    """A metric under simulated parameter mismatch, mean ± std over random draws per level.

    Evaluates m(Θ + |Θ|⊙ζR), R ~ N(0, I), for each ζ in levels; the same R draws serve every level (common
    random numbers make the curve smooth in ζ and comparisons between models fair under one key).

    Args:
        loss_of_params: {name: tensor} -> scalar metric, e.g.
            ``lambda p: mse(functional_call(net, p, (x,)), y)``.
        params: The nominal parameters Θ, or a module (its named parameters).
        levels: The mismatch levels ζ ≥ 0.
        draws: Number of random draws per level (≥ 200 for a standard error of a few percent).
        key: Seed or ``torch.Generator`` (None: torch's global RNG).

    Returns:
        ``MismatchCurve(levels, mean, std)``.
    """
    theta = dict(params.named_parameters()) if isinstance(params, nn.Module) else dict(params)
    if not theta:
        raise ValueError("params is empty: nothing to perturb.")
    grid = [check_nonnegative("mismatch level", level) for level in levels]
    count = check_steps(draws)
    if count < 1:
        raise ValueError(f"draws must be >= 1, got {draws!r}.")
    nominal = {name: p.detach() for name, p in theta.items()}
    generator = make_generator(key, next(iter(nominal.values())).device)
    values = np.empty((len(grid), count))
    with torch.no_grad():
        for draw in range(count):
            noise = {
                name: torch.randn(
                    p.shape,
                    dtype=p.dtype,
                    device=generator.device if generator else p.device,
                    generator=generator,
                ).to(p.device)
                for name, p in nominal.items()
            }
            for row, level in enumerate(grid):
                perturbed = {name: mismatch_perturb(p, level * noise[name]) for name, p in nominal.items()}
                values[row, draw] = float(loss_of_params(perturbed))
    return summarize_draws(grid, values)
