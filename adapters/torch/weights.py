"""HR weights of a batch of PyTorch losses: one host round trip to ``hrcore.solve`` and back.

The per-sample losses (and an inclusion mask) move to the host once as float64, the weights come back once;
the loss is Σ w_i ℓ_i with w detached, which by Danskin's theorem has the HR gradient (no custom backward).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from hrcore import HRSettings, HRSolution
from hrcore.validation import check_loss_shape

from .distributed import gather_rows


def check_base_loss(base_loss: object) -> None:
    """Reject a base loss that cannot give one loss per example.

    Requires a callable whose ``reduction`` attribute, if any, is "none".

    Args:
        base_loss: The per-sample loss, e.g. ``nn.CrossEntropyLoss(reduction="none")``.

    Raises:
        TypeError: If it is not callable.
        ValueError: If it averages or sums (``reduction="mean"``/``"sum"``).
    """
    if not callable(base_loss):
        raise TypeError(
            "base_loss must be a callable returning per-sample losses, e.g. "
            f'nn.CrossEntropyLoss(reduction="none"), got {type(base_loss).__name__}.'
        )
    reduction = getattr(base_loss, "reduction", None)
    if isinstance(reduction, str) and reduction != "none":
        raise ValueError(
            f"base_loss reduces the batch to one number (reduction={reduction!r}); HR needs one loss per "
            'example, so construct it with reduction="none", '
            f'e.g. nn.{type(base_loss).__name__}(reduction="none").'
        )


def check_losses(losses: object) -> Tensor:
    """Require per-sample losses: a floating-point tensor of shape (N,), N ≥ 1.

    Checks ``losses.ndim == 1``, ``N ≥ 1`` and a float dtype, with the core's messages for shapes.

    Args:
        losses: The candidate losses.

    Returns:
        The losses.

    Raises:
        TypeError: For a non-tensor or an integer tensor.
        ValueError: For a scalar (a reducing base loss), more axes, or an empty batch.
    """
    if not isinstance(losses, Tensor):
        raise TypeError(f"per-sample losses must be a torch.Tensor, got {type(losses).__name__}.")
    check_loss_shape(tuple(losses.shape))
    if not losses.is_floating_point():
        raise TypeError(f"per-sample losses must be a floating-point tensor, got dtype {losses.dtype}.")
    return losses


def host_rows(losses: Tensor, mask: Tensor | None, with_mask: bool = False) -> Tensor:
    """Stack the losses (and the mask as 0/1) in float64 on the losses' device: one transfer moves both.

    Returns [ℓ | m] of shape (N, 1) or (N, 2). ``with_mask`` forces the mask column (all ones when there is
    no mask) so that every rank of a distributed run gathers rows of the same width.
    """
    values = losses.detach().to(torch.float64)
    if mask is None and not with_mask:
        return values.unsqueeze(1)
    if mask is None:
        return torch.stack([values, torch.ones_like(values)], dim=1)
    return torch.stack([values, mask.to(device=losses.device, dtype=torch.float64)], dim=1)


def as_mask(mask: object, n: int, device: torch.device) -> Tensor | None:
    """An optional inclusion mask as a boolean tensor of shape (n,).

    Accepts booleans or 0/1 integers: m_i = True includes example i.

    Args:
        mask: None, a tensor, an array or a list.
        n: The number of losses.
        device: Where the mask should live.

    Returns:
        The mask, or None.

    Raises:
        ValueError: For a wrong shape.
        TypeError: For values other than booleans or 0/1.
    """
    if mask is None:
        return None
    tensor = torch.as_tensor(mask, device=device)
    if tensor.shape != (n,):
        raise ValueError(f"mask must have the losses' shape ({n},), got {tuple(tensor.shape)}.")
    if tensor.dtype != torch.bool:
        if (
            tensor.is_floating_point()
            or tensor.is_complex()
            or not bool(((tensor == 0) | (tensor == 1)).all())
        ):
            raise TypeError(f"mask must be boolean (True = include), got dtype {tensor.dtype}.")
        tensor = tensor.to(torch.bool)
    return tensor


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision sums of a few hundred products lose digits; float32 costs nothing at these sizes.
    return torch.float64 if dtype == torch.float64 else torch.float32


class HRParameters(HRSettings):
    """The core's validated ``HRSettings`` plus the host solve, shared by ``HRLoss`` and the original API.

    Computes the weights of Σ w_i ℓ_i on the host (all-gathered across ranks when distributed). Each
    attribute is checked when assigned, so a schedule that sets ``alpha = 1.2`` fails at that line.
    """

    distributed: bool

    def _configure(
        self, alpha: float, r: float, ambiguity: str, upper_bound: float | None, distributed: bool
    ) -> None:
        HRSettings.__init__(self, alpha, r, ambiguity, upper_bound)
        self.distributed = bool(distributed)

    def _solve(self, losses: Tensor, mask: Tensor | None) -> tuple[HRSolution, np.ndarray, float]:
        """Solve on the host; return the solution, this process's weights and the constant term.

        Single process: weights w (N,) and constant worst_weight·B. Distributed over W ranks: each rank gets
        W·w on its slice of the global batch, so that DDP's average of the ranks' gradients is
        Σ_global w_i ∇ℓ_i.
        """
        rows = host_rows(losses, mask, with_mask=self.distributed)
        offset, world = 0, 1
        if self.distributed:
            rows, offset, world = gather_rows(rows)
        host = rows.cpu().numpy()
        solution = self.solve(
            host[:, 0], mask=None if host.shape[1] == 1 or host[:, 1].all() else host[:, 1] > 0.5
        )
        weights = solution.weights[offset : offset + losses.shape[0]]
        constant = solution.worst_weight * solution.upper_bound if solution.upper_bound is not None else 0.0
        if world > 1:
            weights = weights * world
        return solution, weights, constant


class _Hyperparameters(HRParameters):
    def __init__(self, alpha: float, r: float, ambiguity: str, upper_bound: float | None) -> None:
        self._configure(alpha, r, ambiguity, upper_bound, distributed=False)


def weighted_sum(losses: Tensor, weights: np.ndarray, constant: float) -> Tensor:
    """The weighted loss with constant weights, accumulated in float32 or float64.

    Computes Σ w_i ℓ_i (+ the worst atom's constant w_{N+1}·B); its gradient w.r.t. ℓ is w.

    Args:
        losses: Per-sample losses (N,).
        weights: Host weights (N,).
        constant: w_{N+1}·B, or 0.

    Returns:
        A scalar with the losses' dtype.
    """
    dtype = _accumulation_dtype(losses.dtype)
    w = torch.from_numpy(np.ascontiguousarray(weights)).to(device=losses.device, dtype=dtype)
    value = torch.dot(w, losses.to(dtype))
    if constant:
        value = value + constant
    return value.to(losses.dtype)


def hr_weights(
    losses: Tensor,
    alpha: float = 0.05,
    r: float = 0.1,
    ambiguity: str = "HD",
    upper_bound: float | None = None,
    mask: Tensor | np.ndarray | None = None,
) -> Tensor:
    """The folded HR weights of a batch of per-sample losses, as a constant tensor.

    Computes w = ∂V/∂ℓ of the HR/HD value V(ℓ) (Σ w = 1 without an upper bound; 0 where mask is False).

    Args:
        losses: Per-sample losses (N,), any float dtype and device.
        alpha: Poisoning fraction α ∈ [0, 1).
        r: KL radius r ≥ 0.
        ambiguity: "HD" (default) or "HR".
        upper_bound: Known bound B ≥ max ℓ for the worst atom, or None for the batch maximum.
        mask: Optional boolean (N,): False excludes an entry (weight 0, no α consumed).

    Returns:
        The weights (N,), detached, with the losses' dtype and device.
    """
    losses = check_losses(losses)
    _, weights, _ = _Hyperparameters(alpha, r, ambiguity, upper_bound)._solve(
        losses, as_mask(mask, losses.shape[0], losses.device)
    )
    return torch.from_numpy(np.ascontiguousarray(weights)).to(device=losses.device, dtype=losses.dtype)


def hr_loss(
    losses: Tensor,
    alpha: float = 0.05,
    r: float = 0.1,
    ambiguity: str = "HD",
    upper_bound: float | None = None,
    mask: Tensor | np.ndarray | None = None,
) -> Tensor:
    """The HR loss of a batch of per-sample losses, differentiable with the HR gradient.

    Computes V = Σ_i w_i ℓ_i (+ w_{N+1}·B with an upper bound) with w = ``hr_weights(losses)`` held constant.

    Args:
        losses: Per-sample losses (N,) that require grad.
        alpha: Poisoning fraction α ∈ [0, 1).
        r: KL radius r ≥ 0.
        ambiguity: "HD" (default) or "HR".
        upper_bound: Known bound B ≥ max ℓ, or None.
        mask: Optional boolean (N,) of included entries.

    Returns:
        A scalar tensor with the losses' dtype.
    """
    losses = check_losses(losses)
    _, weights, constant = _Hyperparameters(alpha, r, ambiguity, upper_bound)._solve(
        losses, as_mask(mask, losses.shape[0], losses.device)
    )
    return weighted_sum(losses, weights, constant)


def ignored_rows(base_loss: object, targets: Any, losses: Any) -> Tensor | None:
    """The rows a base loss ignores: class targets equal to its ``ignore_index`` (cross-entropy, NLL).

    Returns the inclusion mask [y_i ≠ ignore_index], or None when nothing is ignored.

    Args:
        base_loss: The per-sample loss.
        targets: The targets passed to it.
        losses: The per-sample losses it returned.

    Returns:
        A boolean (N,) tensor, or None.
    """
    ignore_index = getattr(base_loss, "ignore_index", None)
    if (
        ignore_index is None
        or not isinstance(targets, Tensor)
        or targets.is_floating_point()
        or not isinstance(losses, Tensor)
        or targets.shape != losses.shape
    ):
        return None
    keep = targets != ignore_index
    return None if bool(keep.all()) else keep


def and_masks(mask: Any, ignored: Tensor | None) -> Any:
    """Combine a user mask with the rows a base loss ignores.

    Returns m ∧ k (either may be absent).

    Args:
        mask: The user's mask, or None.
        ignored: The inclusion mask from ``ignored_rows``, or None.

    Returns:
        The combined mask, or None.
    """
    if ignored is None:
        return mask
    if mask is None:
        return ignored
    return as_mask(mask, ignored.shape[0], ignored.device) & ignored
