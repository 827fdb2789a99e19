"""The configuration of input adversarial regularisation, shared by every adapter.

Names and defaults follow Neural Structured Learning's ``make_adv_reg_config``, so its users change only the
constructor: ``AdvConfig(multiplier=0.2, adv_step_size=0.05)`` for ``nsl.configs.make_adv_reg_config(...)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from hrcore.geometry import canonical_norm
from hrcore.validation import check_count, check_nonnegative


@dataclasses.dataclass(frozen=True)
class AdvConfig:
    """Hyper-parameters of the input adversarial loss L(x_adv) and its weight in the training objective.

    The perturbation is x ← clip(Π_{‖x − x₀‖ ≤ pgd_epsilon}(x + adv_step_size·d(∇ₓL))), ``pgd_iterations``
    times, with d the steepest-ascent direction of unit ``adv_grad_norm`` (joint over an example's features).

    Attributes:
        multiplier: Weight of the adversarial loss in a combined objective (applied by the wrappers; the
            functional ``input_adversarial_loss`` returns the unweighted loss, as NSL's does).
        adv_step_size: Length of each step in the ``adv_grad_norm`` norm.
        adv_grad_norm: "l2" (default), "linf"/"infinity" or "l1" (also NSL's ``NormType``); stored canonical.
        clip_value_min: Lower input bound after each step: None, a number for every float feature, or a
            per-feature structure (a dict keyed like the features, or a list/array) that the adapter matches.
        clip_value_max: Upper input bound, like ``clip_value_min``.
        pgd_iterations: Number of steps (1 = a single fast-gradient step).
        pgd_epsilon: Radius of the ball the perturbation is projected onto (exactly, also for L1); None for
            no projection.
        random_init: Start uniformly in the ``pgd_epsilon`` ball (which it therefore needs).

    Raises:
        ValueError: For negative sizes, an unknown norm, pgd_iterations < 1, random_init without
            pgd_epsilon, or scalar bounds with min > max.
        TypeError: For non-integer pgd_iterations, a non-bool random_init, or bounds of another type.
    """

    multiplier: float = 0.2
    adv_step_size: float = 0.001
    adv_grad_norm: str = "l2"
    clip_value_min: Any = None
    clip_value_max: Any = None
    pgd_iterations: int = 1
    pgd_epsilon: float | None = None
    random_init: bool = False

    def __post_init__(self) -> None:
        check_nonnegative("multiplier", self.multiplier)
        check_nonnegative("adv_step_size", self.adv_step_size)
        # NSL passes an enum whose .value is the norm's name.
        norm = canonical_norm(getattr(self.adv_grad_norm, "value", self.adv_grad_norm))
        object.__setattr__(self, "adv_grad_norm", norm)
        check_count("pgd_iterations", self.pgd_iterations, minimum=1)
        if self.pgd_epsilon is not None:
            check_nonnegative("pgd_epsilon", self.pgd_epsilon)
        if not isinstance(self.random_init, (bool, np.bool_)):
            raise TypeError(f"random_init must be a bool, got {type(self.random_init).__name__}.")
        if self.random_init and self.pgd_epsilon is None:
            raise ValueError(
                "random_init=True starts uniformly in the pgd_epsilon ball, so it needs pgd_epsilon."
            )
        for name in ("clip_value_min", "clip_value_max"):
            value = getattr(self, name)
            if not (value is None or isinstance(value, (Mapping, list, tuple)) or _is_numeric(value)):
                raise TypeError(
                    f"{name} must be None, a number, or per-feature bounds (dict/list/array), got {value!r}."
                )
        low, high = self.clip_value_min, self.clip_value_max
        if _is_scalar(low) and _is_scalar(high) and float(low) > float(high):
            raise ValueError(f"clip_value_min={low!r} exceeds clip_value_max={high!r}.")

    def get_config(self) -> dict[str, Any]:
        """The fields as a plain dict (for serialisation, e.g. Keras ``get_config``)."""
        return dataclasses.asdict(self)


def _is_numeric(value: object) -> bool:
    return hasattr(value, "shape") or isinstance(value, (int, float, np.integer, np.floating))


def _is_scalar(value: object) -> bool:
    return value is not None and _is_numeric(value) and np.ndim(value) == 0
