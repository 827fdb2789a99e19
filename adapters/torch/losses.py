"""HR losses for PyTorch: the one-line swap ``HRLoss`` and the ε-robust ``HRCriterion``.

The weights come from the numpy core (one host round trip per batch); the loss is Σ w_i ℓ_i with w detached,
which by Danskin's theorem has the HR gradient, so no custom backward is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hrcore import HRSolution, solve
from hrcore.geometry import canonical_norm
from hrcore.validation import (
    check_alpha,
    check_ambiguity,
    check_loss_shape,
    check_nonnegative,
    check_radius,
)

from . import attacks
from .distributed import gather_rows

LossFn = Callable[..., Tensor]
ATTACKS = ("pgd", "ffgsm", "fgsm", "fgv")


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


def _check_losses(losses: object) -> Tensor:
    if not isinstance(losses, Tensor):
        raise TypeError(f"per-sample losses must be a torch.Tensor, got {type(losses).__name__}.")
    check_loss_shape(tuple(losses.shape))
    if not losses.is_floating_point():
        raise TypeError(f"per-sample losses must be a floating-point tensor, got dtype {losses.dtype}.")
    return losses


def _host_rows(losses: Tensor, mask: Tensor | None, with_mask: bool = False) -> Tensor:
    """Stack the losses (and the mask as 0/1) in float64 on the losses' device: one transfer moves both.

    ``with_mask`` forces the mask column (all ones when there is no mask) so that every rank of a distributed
    run gathers rows of the same width.
    """
    values = losses.detach().to(torch.float64)
    if mask is None and not with_mask:
        return values.unsqueeze(1)
    if mask is None:
        return torch.stack([values, torch.ones_like(values)], dim=1)
    return torch.stack([values, mask.to(device=losses.device, dtype=torch.float64)], dim=1)


def _as_mask(mask: object, n: int, device: torch.device) -> Tensor | None:
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


class HRParameters:
    """Validated HR hyper-parameters and the host solve, shared by ``HRLoss`` and the original-API class.

    Each attribute is checked when assigned, so a schedule that sets ``alpha = 1.2`` fails at that line.
    """

    _alpha: float
    _r: float
    _ambiguity: str
    _upper_bound: float | None
    distributed: bool

    def _configure(
        self, alpha: float, r: float, ambiguity: str, upper_bound: float | None, distributed: bool
    ) -> None:
        self.alpha = alpha
        self.r = r
        self.ambiguity = ambiguity
        self.upper_bound = upper_bound
        self.distributed = bool(distributed)

    @property
    def alpha(self) -> float:
        """Poisoning fraction α ∈ [0, 1)."""
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = check_alpha(value)

    @property
    def r(self) -> float:
        """KL radius r ≥ 0."""
        return self._r

    @r.setter
    def r(self, value: float) -> None:
        self._r = check_radius(value)

    @property
    def ambiguity(self) -> str:
        """The ambiguity set: "HD" or "HR"."""
        return self._ambiguity

    @ambiguity.setter
    def ambiguity(self, value: str) -> None:
        self._ambiguity = check_ambiguity(value)

    @property
    def upper_bound(self) -> float | None:
        """Known bound B of the loss (the worst atom), or None for the batch maximum; checked by the core."""
        return self._upper_bound

    @upper_bound.setter
    def upper_bound(self, value: float | None) -> None:
        self._upper_bound = value

    def _solve(self, losses: Tensor, mask: Tensor | None) -> tuple[HRSolution, np.ndarray, float]:
        """Solve on the host; return the solution, this process's weights and the constant term.

        Single process: weights w (N,) and constant worst_weight·B. Distributed over W ranks: each rank gets
        W·w on its slice of the global batch, so that DDP's average of the ranks' gradients is
        Σ_global w_i ∇ℓ_i.
        """
        rows = _host_rows(losses, mask, with_mask=self.distributed)
        offset, world = 0, 1
        if self.distributed:
            rows, offset, world = gather_rows(rows)
        host = rows.cpu().numpy()
        solution = solve(
            host[:, 0],
            alpha=self.alpha,
            r=self.r,
            ambiguity=self.ambiguity,
            upper_bound=self.upper_bound,
            mask=None if host.shape[1] == 1 or host[:, 1].all() else host[:, 1] > 0.5,
        )
        weights = solution.weights[offset : offset + losses.shape[0]]
        constant = solution.worst_weight * solution.upper_bound if solution.upper_bound is not None else 0.0
        if world > 1:
            weights = weights * world
        return solution, weights, constant


class _Hyperparameters(HRParameters):
    def __init__(self, alpha: float, r: float, ambiguity: str, upper_bound: float | None) -> None:
        self._configure(alpha, r, ambiguity, upper_bound, distributed=False)


def _weighted_sum(losses: Tensor, weights: np.ndarray, constant: float) -> Tensor:
    """Σ w_i ℓ_i (+ the worst atom's constant w_{N+1}·B), with w a constant: the gradient w.r.t. ℓ is w."""
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
    losses = _check_losses(losses)
    _, weights, _ = _Hyperparameters(alpha, r, ambiguity, upper_bound)._solve(
        losses, _as_mask(mask, losses.shape[0], losses.device)
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
    losses = _check_losses(losses)
    _, weights, constant = _Hyperparameters(alpha, r, ambiguity, upper_bound)._solve(
        losses, _as_mask(mask, losses.shape[0], losses.device)
    )
    return _weighted_sum(losses, weights, constant)


class HRLoss(nn.Module, HRParameters):
    """The HR loss around a per-sample loss: the one-line swap for ``nn.CrossEntropyLoss(reduction="none")``.

    Computes V = Σ_i w_i ℓ_i with ℓ = base_loss(outputs, targets) and w the HR weights held constant.

    ``alpha``, ``r``, ``ambiguity`` and ``upper_bound`` are validated attributes: assign them between steps
    for schedules. ``last_solution`` holds the latest ``hrcore.HRSolution`` (value, effective sample size,
    worst weight) for logging.

    Args:
        base_loss: Callable (outputs, targets, ...) -> per-sample losses (N,), e.g.
            ``nn.CrossEntropyLoss(reduction="none")``. Rows it ignores (``ignore_index``) get weight 0.
        alpha: Poisoning fraction α ∈ [0, 1).
        r: KL radius r ≥ 0.
        ambiguity: "HD" (default) or "HR".
        upper_bound: Known bound B ≥ max ℓ for the worst atom (certificates), or None for the batch maximum.
        distributed: Under ``torch.distributed``: solve once on the all-gathered global batch and scale this
            rank's slice so that DDP's gradient average is the global HR gradient. The returned value is then
            this rank's share; the mean over ranks is V.

    Raises:
        ValueError: If ``base_loss`` reduces (``reduction="mean"``) or a hyper-parameter is out of range.
    """

    def __init__(
        self,
        base_loss: LossFn,
        alpha: float = 0.05,
        r: float = 0.1,
        ambiguity: str = "HD",
        upper_bound: float | None = None,
        *,
        distributed: bool = False,
    ) -> None:
        super().__init__()
        check_base_loss(base_loss)
        self.base_loss = base_loss
        self._configure(alpha, r, ambiguity, upper_bound, distributed)
        self.last_solution: HRSolution | None = None

    def forward(self, outputs: Any, targets: Any, *args: Any, mask: Any = None, **kwargs: Any) -> Tensor:
        """The HR loss of a batch.

        Computes Σ_i w_i ℓ_i with ℓ = base_loss(outputs, targets, *args, **kwargs).

        Args:
            outputs: Model outputs.
            targets: Targets.
            *args: Passed on to the base loss.
            mask: Optional boolean (N,): False excludes an example (weight 0, no α consumed).
            **kwargs: Passed on to the base loss.

        Returns:
            A scalar tensor.
        """
        losses = self.base_loss(outputs, targets, *args, **kwargs)
        return self.reduce(losses, mask=_and_masks(mask, ignored_rows(self.base_loss, targets, losses)))

    def reduce(self, losses: Tensor, mask: Any = None) -> Tensor:
        """The HR loss of precomputed per-sample losses.

        Computes Σ_i w_i ℓ_i with w = ∂V/∂ℓ held constant.

        Args:
            losses: Per-sample losses (N,).
            mask: Optional boolean (N,) of included entries.

        Returns:
            A scalar tensor with the losses' dtype.
        """
        losses = _check_losses(losses)
        solution, weights, constant = self._solve(losses, _as_mask(mask, losses.shape[0], losses.device))
        self.last_solution = solution
        return _weighted_sum(losses, weights, constant)

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, r={self.r}, ambiguity={self.ambiguity!r}, upper_bound={self.upper_bound}, "
            f"distributed={self.distributed}"
        )


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


def _and_masks(mask: Any, ignored: Tensor | None) -> Any:
    if ignored is None:
        return mask
    if mask is None:
        return ignored
    return _as_mask(mask, ignored.shape[0], ignored.device) & ignored


class HRCriterion(nn.Module):
    """HR with ε: attack the inputs inside the ε-ball, then the HR loss on the adversarial per-sample losses.

    Computes Σ_i w_i ℓ(f(x̃_i), y_i) with x̃ = attack(x) in {‖x̃ − x‖ ≤ ε} (no attack when ε = 0).

    Args:
        model: The model under training (it is called, never registered as a submodule of the criterion).
        loss_fn: Per-sample loss (outputs, targets) -> (N,); also the loss the attack ascends.
        alpha: Poisoning fraction α ∈ [0, 1).
        r: KL radius r ≥ 0.
        eps: Radius ε ≥ 0 of the input ball (in pixel space when ``normalization`` is given).
        norm: The ball's norm: "l2" (default), "linf" or "l1" (also "l-2", "l-inf", ...).
        attack_steps: PGD steps.
        step_size: Length of each step in the ball's norm.
        attack: "pgd" (default), "ffgsm" (random start + one step), "fgsm" or "fgv" (one step of size ε).
        bounds: Optional (lo, hi) valid input range, applied after each step.
        normalization: Optional (mean, std) the model's inputs were normalised with: ε and bounds then apply
            to x·std + mean.
        ambiguity: "HD" (default) or "HR".
        upper_bound: Known bound B ≥ max ℓ, or None.
        random_start: Start PGD uniformly in the ball.
        generator: Seed or ``torch.Generator`` for the random start.
        distributed: See ``HRLoss``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        alpha: float,
        r: float,
        eps: float,
        norm: str | float = "l2",
        attack_steps: int = 10,
        step_size: float = 0.2,
        attack: str = "pgd",
        bounds: tuple[Any, Any] | None = None,
        normalization: tuple[Any, Any] | None = None,
        ambiguity: str = "HD",
        *,
        upper_bound: float | None = None,
        random_start: bool = True,
        generator: int | torch.Generator | None = None,
        distributed: bool = False,
    ) -> None:
        super().__init__()
        if not callable(model):
            raise TypeError(f"model must be an nn.Module or callable, got {type(model).__name__}.")
        # Stored outside nn.Module's registry: registering it would duplicate the model's parameters in the
        # criterion's parameters() and state_dict().
        object.__setattr__(self, "model", model)
        self.hr_loss = HRLoss(loss_fn, alpha, r, ambiguity, upper_bound, distributed=distributed)
        self.eps = check_nonnegative("eps", eps)
        self.norm = canonical_norm(norm)
        self.attack_steps = attacks.check_steps(attack_steps)
        self.step_size = check_nonnegative("step_size", step_size)
        if not isinstance(attack, str) or attack.lower() not in ATTACKS:
            raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}.")
        self.attack = attack.lower()
        self.bounds = bounds
        self.normalization = normalization
        self.random_start = bool(random_start)
        self.generator = generator

    @property
    def last_solution(self) -> HRSolution | None:
        """The latest ``hrcore.HRSolution``."""
        return self.hr_loss.last_solution

    def perturb(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """The adversarial inputs the criterion trains on.

        Computes x̃ = attack(x) inside {‖x̃ − x‖ ≤ ε} ∩ bounds; x itself when ε = 0.

        Args:
            inputs: Inputs with a leading batch axis.
            targets: Targets.

        Returns:
            The adversarial inputs, detached.
        """
        if self.eps == 0.0:
            return inputs
        common = {
            "loss_fn": self.hr_loss.base_loss,
            "bounds": self.bounds,
            "normalization": self.normalization,
        }
        if self.attack == "fgsm":
            return attacks.fgsm(self.model, inputs, targets, self.eps, **common)
        if self.attack == "fgv":
            return attacks.fgv(self.model, inputs, targets, self.eps, **common)
        steps = 1 if self.attack == "ffgsm" else self.attack_steps
        return attacks.pgd(
            self.model,
            inputs,
            targets,
            self.eps,
            self.step_size,
            steps=steps,
            norm=self.norm,
            random_start=self.random_start or self.attack == "ffgsm",
            key=self.generator,
            **common,
        )

    def forward(self, inputs: Tensor, targets: Tensor, mask: Any = None) -> Tensor:
        """The HR loss with ε of a batch.

        Computes Σ_i w_i ℓ(f(x̃_i), y_i).

        Args:
            inputs: Inputs with a leading batch axis.
            targets: Targets.
            mask: Optional boolean (N,) of included examples.

        Returns:
            A scalar tensor.
        """
        return self.hr_loss(self.model(self.perturb(inputs, targets)), targets, mask=mask)

    def extra_repr(self) -> str:
        return (
            f"eps={self.eps}, norm={self.norm!r}, attack={self.attack!r}, attack_steps={self.attack_steps}, "
            f"step_size={self.step_size}, bounds={self.bounds}, normalization={self.normalization}"
        )
