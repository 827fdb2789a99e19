"""The original HR_Neural_Networks API, on hrcore's exact solver and attacks.

A training loop written for the original package runs with the import line changed. Differences, on purpose:
α = 0 and r = 0 are solved exactly (the original replaced them by 1e-6 and 1e-3); nothing is printed and no
warning filter is installed; any batch size works without a rebuild; the device comes from the inputs; the
adversarial inputs are clipped only when ``bounds`` is given (the original's attack library always clipped to
[0, 1] and rejected other inputs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hrcore import HRSolution
from hrcore.geometry import canonical_norm
from hrcore.validation import check_nonnegative

from .attacks import Key, check_steps
from .losses import HRCriterion
from .weights import HRParameters, check_base_loss, check_losses, ignored_rows, weighted_sum

OUTPUTS = ("pytorch_loss_function", "weights")
DEFENSES = ("PGD", "FFGSM")


class HR_Neural_Networks(HRParameters):
    """The original package's entry point: HR (with ε) as a loss or as importance weights.

    Computes V = Σ_i w_i ℓ(f(x̃_i), y_i), x̃ the PGD (or FFGSM) attack in the ε-ball of ``noise_set``.

    Args:
        NN_model: The network.
        train_batch_size: The nominal batch size (accepted for compatibility; any batch size works).
        loss_fn: Per-sample loss (``reduction="none"``); None: cross-entropy.
        normalisation_used: None, or (mean, std) of the inputs' normalisation: ε and bounds then apply in
            pixel space x·std + mean.
        α_choice: Poisoning fraction α ∈ [0, 1).
        r_choice: KL radius r ≥ 0.
        ϵ_choice: Attack radius ε ≥ 0 (0: no attack).
        learning_approach: "HD" (default) or "HR".
        adversarial_steps: PGD steps.
        adversarial_step_size: Step length in the ball's norm.
        noise_set: "l-2" (default) or "l-inf" (also "l-1").
        defense_method: "PGD" (default) or "FFGSM".
        output_return: "pytorch_loss_function" (default) or "weights" (the N+1 unfolded weights).
        bounds: hrcore extension: optional (lo, hi) input range, e.g. (0, 1) for images.
        generator: hrcore extension: seed or ``torch.Generator`` of the attack's random start.
    """

    def __init__(
        self,
        NN_model: nn.Module,
        train_batch_size: int,
        loss_fn: Any,
        normalisation_used: tuple[Any, Any] | None,
        α_choice: float,
        r_choice: float,
        ϵ_choice: float,
        learning_approach: str = "HD",
        adversarial_steps: int = 10,
        adversarial_step_size: float = 0.2,
        noise_set: str = "l-2",
        defense_method: str = "PGD",
        output_return: str = "pytorch_loss_function",
        *,
        bounds: tuple[Any, Any] | None = None,
        generator: Key = None,
    ) -> None:
        if isinstance(train_batch_size, bool) or check_steps(train_batch_size) < 1:
            raise ValueError(f"train_batch_size must be a positive integer, got {train_batch_size!r}.")
        self.NN_model = NN_model
        self.train_batch_size = int(train_batch_size)
        self.loss_fn = nn.CrossEntropyLoss(reduction="none") if loss_fn is None else loss_fn
        check_base_loss(self.loss_fn)
        if normalisation_used is not None and len(normalisation_used) != 2:
            raise ValueError("normalisation_used must be None or a pair (mean, std).")
        self.normalisation_used = normalisation_used
        self._configure(α_choice, r_choice, learning_approach, None, distributed=False)
        self.ϵ_choice = check_nonnegative("ϵ_choice", ϵ_choice)
        self.adversarial_steps = check_steps(adversarial_steps)
        self.adversarial_step_size = check_nonnegative("adversarial_step_size", adversarial_step_size)
        self.noise_set = noise_set
        norm = canonical_norm(noise_set)
        if not isinstance(defense_method, str) or defense_method.upper() not in DEFENSES:
            raise ValueError(f"defense_method must be one of {DEFENSES}, got {defense_method!r}.")
        self.defense_method = defense_method.upper()
        if output_return not in OUTPUTS:
            raise ValueError(
                f"output_return must be one of {OUTPUTS} ('weights' for frameworks other than PyTorch), "
                f"got {output_return!r}."
            )
        self.output_return = output_return
        self.last_solution: HRSolution | None = None
        self._criterion = HRCriterion(
            NN_model,
            self.loss_fn,
            self.alpha,
            self.r,
            self.ϵ_choice,
            norm=norm,
            attack_steps=self.adversarial_steps,
            step_size=self.adversarial_step_size,
            attack=self.defense_method.lower(),
            bounds=bounds,
            normalization=normalisation_used,
            generator=generator,
        )

    # The original exposed its hyper-parameters under these names; they read the validated attributes.
    @property
    def α_choice(self) -> float:
        """The poisoning fraction α (``alpha``)."""
        return self.alpha

    @property
    def r_choice(self) -> float:
        """The KL radius r (``r``)."""
        return self.r

    @property
    def learning_approach(self) -> str:
        """The ambiguity set, "HD" or "HR" (``ambiguity``)."""
        return self.ambiguity

    def HR_criterion(
        self,
        inputs: Tensor | None = None,
        targets: Tensor | None = None,
        inf_loss: Any = None,
        device: str | torch.device | None = None,
    ) -> Tensor:
        """The HR loss of a batch, or its N+1 weights.

        Computes V = Σ_i p_i ℓ_i + p_{N+1}·max ℓ (= Σ w_i ℓ_i), ℓ at the adversarial inputs when ε > 0.

        Args:
            inputs: The batch's inputs (needed when ε > 0 or ``inf_loss`` is None).
            targets: The batch's targets.
            inf_loss: Precomputed per-sample losses (used when ε = 0; any array with
                ``output_return="weights"``).
            device: Where the returned weights live (default: the inputs' or losses' device).

        Returns:
            A scalar loss tensor, or the weights (N+1,) with ``output_return="weights"``.
        """
        if self.ϵ_choice > 0.0 or inf_loss is None:
            if inputs is None or targets is None:
                raise ValueError(
                    "HR_criterion needs inputs and targets (or, with ϵ_choice = 0, precomputed inf_loss)."
                )
            outputs = self.NN_model(self._criterion.perturb(inputs, targets))
            inf_loss = self.loss_fn(outputs, targets)
        if self.output_return == "weights":
            return self._weights(inf_loss, device)
        losses = check_losses(inf_loss)
        mask = ignored_rows(self.loss_fn, targets, losses)
        solution, weights, constant = self._solve(losses, mask)
        self.last_solution = solution
        return weighted_sum(losses, weights, constant)

    def _weights(self, inf_loss: Any, device: str | torch.device | None) -> Tensor:
        if isinstance(inf_loss, Tensor):
            losses = check_losses(inf_loss)
        else:
            losses = torch.as_tensor(np.asarray(inf_loss, dtype=np.float64))
            check_losses(losses)
        solution, _, _ = self._solve(losses, None)
        self.last_solution = solution
        dtype = torch.float64 if losses.dtype == torch.float64 else torch.float32
        return torch.from_numpy(solution.full_weights).to(device=device or losses.device, dtype=dtype)
