"""HR losses for PyTorch: the one-line swap ``HRLoss`` and the ε-robust ``HRCriterion``.

The weights come from the numpy core (``weights.py``); the loss is Σ w_i ℓ_i with w detached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from hrcore import HRSolution
from hrcore.geometry import canonical_norm
from hrcore.validation import check_nonnegative

from . import attacks
from .weights import (
    HRParameters,
    and_masks,
    as_mask,
    check_base_loss,
    check_losses,
    ignored_rows,
    weighted_sum,
)

LossFn = Callable[..., Tensor]
ATTACKS = ("pgd", "ffgsm", "fgsm", "fgv")


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
        return self.reduce(losses, mask=and_masks(mask, ignored_rows(self.base_loss, targets, losses)))

    def reduce(self, losses: Tensor, mask: Any = None) -> Tensor:
        """The HR loss of precomputed per-sample losses.

        Computes Σ_i w_i ℓ_i with w = ∂V/∂ℓ held constant.

        Args:
            losses: Per-sample losses (N,).
            mask: Optional boolean (N,) of included entries.

        Returns:
            A scalar tensor with the losses' dtype.
        """
        losses = check_losses(losses)
        solution, weights, constant = self._solve(losses, as_mask(mask, losses.shape[0], losses.device))
        self.last_solution = solution
        return weighted_sum(losses, weights, constant)

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, r={self.r}, ambiguity={self.ambiguity!r}, upper_bound={self.upper_bound}, "
            f"distributed={self.distributed}"
        )


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
