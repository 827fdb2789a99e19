"""The HR loss as a Keras loss, and the HR weights as a constant tensor for ``sample_weight``.

Computes V = Σᵢ wᵢℓᵢ (+ p_worst·B with an upper bound B), w the core's folded HR weights held constant: by
Danskin's theorem its gradient is Σᵢ wᵢ∇ℓᵢ, so no custom gradient is needed on any backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from hrcore import HRSettings
from hrcore.validation import check_loss_shape

from .host import host_call

BaseLoss = Callable[..., Any]

REDUCTION_MESSAGE = (
    "HRLoss needs one loss per example, but base_loss {name} reduces them (reduction={reduction!r}); "
    "construct it with reduction=None, e.g. "
    "keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)."
)


class _Settings(HRSettings):
    """The core's validated HR hyper-parameters, read by the host call when it runs.

    Reading them at run time (not at trace time) is what lets α and r change between epochs without
    retracing a compiled train step.
    """

    def host_values(self, losses: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The folded weights and the worst atom's constant contribution, as one host array.

        Returns (w₁, ..., w_N, p_worst·B), the last entry 0 without an upper bound (the worst atom is folded).
        """
        if mask is not None:
            mask = _mask_from_sample_weight(mask, losses.shape[0])
        solution = self.solve(losses, mask)
        constant = 0.0 if self.upper_bound is None else solution.worst_weight * solution.worst_value
        return np.append(np.asarray(solution.weights, dtype=np.float64), constant)


def _mask_from_sample_weight(values: np.ndarray, n: int) -> np.ndarray:
    """Read Keras sample weights as the core's inclusion mask (0 = padding, excluded; 1 = included)."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:  # Keras's (N, 1) sample-weight layout
        array = array[:, 0]
    if array.dtype != np.bool_ and not np.isin(array, (0, 1)).all():
        raise ValueError(
            "HRLoss reads sample_weight (and hr_weights reads mask) as a 0/1 mask: 0 marks padding that is "
            "excluded from the HR problem. Got other values; HR computes the importance weights itself, "
            "so class_weight or graded sample weights cannot be combined with it."
        )
    if array.shape != (n,):
        raise ValueError(
            f"sample_weight/mask must have shape ({n},) like the per-sample losses, got {array.shape}."
        )
    return array.astype(bool)


def _hr_host_values(losses: Any, settings: _Settings, mask: Any, what: str) -> Any:
    """Shape-check the losses at trace time, then solve on the host: (w₁..w_N, p_worst·B)."""
    losses = keras.ops.convert_to_tensor(losses)
    check_loss_shape(tuple(losses.shape))
    dtype = keras.backend.standardize_dtype(losses.dtype)
    if not dtype.startswith(("float", "bfloat")):
        dtype = keras.config.floatx()
        losses = keras.ops.cast(losses, dtype)
    length = None if losses.shape[0] is None else losses.shape[0] + 1
    inputs = [losses]
    if mask is not None:
        mask = keras.ops.convert_to_tensor(mask)
        inputs.append(keras.ops.cast(mask, "float32") if mask.dtype == "bool" else mask)
    return host_call(settings.host_values, inputs, length, dtype, what), losses


def hr_weights(
    losses: Any,
    alpha: float = 0.05,
    r: float = 0.1,
    ambiguity: str = "HD",
    upper_bound: float | None = None,
    mask: Any = None,
) -> Any:
    """The folded HR weights of a batch as a constant tensor, for ``sample_weight`` or a custom loop.

    Returns w = ∂V/∂ℓ of the HR/HD program (Σw = 1 without an upper bound), with stop-gradient semantics.

    Args:
        losses: Per-sample losses (N,) of the active Keras backend (or anything it converts).
        alpha: Poisoning fraction α ∈ [0, 1).
        r: KL radius r ≥ 0.
        ambiguity: "HD" (default) or "HR".
        upper_bound: A known bound B ≥ max ℓ for the worst atom; None puts it at the batch maximum.
        mask: Optional 0/1 or boolean (N,): entries with 0 are excluded and get weight 0.

    Returns:
        The weights (N,), in the losses' float dtype.

    Raises:
        ValueError: For scalar or multi-axis losses, bad hyper-parameters, an XLA-compiled TensorFlow
            graph (which cannot host the solve), and (when the solve runs) the core's input errors.
    """
    settings = _Settings(alpha, r, ambiguity, upper_bound)
    values, _ = _hr_host_values(losses, settings, mask, "hr_weights")
    return values[:-1]


@keras.saving.register_keras_serializable(package="hrcore")
class HRLoss(keras.losses.Loss):
    """Holistic-robust loss over a base loss's per-sample values, for ``model.compile`` and custom loops.

    Computes V = Σᵢ wᵢℓᵢ(y, ŷ) (+ p_worst·B with an upper bound), w the HR weights of the batch held constant.

    ``sample_weight`` is read as a 0/1 mask (0 = padding, excluded from the problem). ``alpha``, ``r``,
    ``ambiguity`` and ``upper_bound`` may be reassigned at any time (e.g. from a callback between epochs):
    the solve reads them when it runs, so compiled train steps need no retracing.

    Args:
        base_loss: A Keras loss constructed with ``reduction=None``, a loss function returning one value
            per example, or a Keras loss identifier string naming such a function.
        alpha: Poisoning fraction α ∈ [0, 1).
        r: KL radius r ≥ 0.
        ambiguity: "HD" (default) or "HR".
        upper_bound: A known bound B ≥ max ℓ for the worst atom; None puts it at the batch maximum.
        name: The loss's name.
        dtype: Passed to ``keras.losses.Loss``.

    Raises:
        ValueError: For a base loss that reduces, or bad hyper-parameters.
        TypeError: For a base loss that is not callable.
    """

    def __init__(
        self,
        base_loss: BaseLoss | str,
        alpha: float = 0.05,
        r: float = 0.1,
        ambiguity: str = "HD",
        upper_bound: float | None = None,
        name: str = "hr_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction="sum", dtype=dtype)
        self.base_loss = _resolve_base_loss(base_loss)
        self._settings = _Settings(alpha, r, ambiguity, upper_bound)

    @property
    def alpha(self) -> float:
        """The poisoning fraction α."""
        return self._settings.alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._settings.alpha = value

    @property
    def r(self) -> float:
        """The KL radius r."""
        return self._settings.r

    @r.setter
    def r(self, value: float) -> None:
        self._settings.r = value

    @property
    def ambiguity(self) -> str:
        """The ambiguity set, "HD" or "HR"."""
        return self._settings.ambiguity

    @ambiguity.setter
    def ambiguity(self, value: str) -> None:
        self._settings.ambiguity = value

    @property
    def upper_bound(self) -> float | None:
        """The worst atom's fixed value B, or None for the batch maximum."""
        return self._settings.upper_bound

    @upper_bound.setter
    def upper_bound(self, value: float | None) -> None:
        self._settings.upper_bound = value

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """The HR loss of a batch.

        Computes Σᵢ wᵢℓᵢ + p_worst·B with ℓ = base_loss(y_true, y_pred) and w constant.

        Args:
            y_true: Targets.
            y_pred: Predictions.
            sample_weight: Optional 0/1 mask (N,) or (N, 1); entries with 0 are excluded.

        Returns:
            The scalar loss.
        """
        with keras.name_scope(self.name):
            return self.call(y_true, y_pred, sample_weight)

    def call(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """See ``__call__``."""
        losses = self.base_loss(y_true, y_pred)
        values, losses = _hr_host_values(losses, self._settings, sample_weight, "HRLoss")
        return keras.ops.sum(values[:-1] * losses) + values[-1]

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, with the base loss serialised."""
        return {
            "base_loss": keras.saving.serialize_keras_object(self.base_loss),
            "alpha": self.alpha,
            "r": self.r,
            "ambiguity": self.ambiguity,
            "upper_bound": self.upper_bound,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HRLoss:
        """Rebuild from ``get_config``'s output."""
        config = dict(config)
        config["base_loss"] = keras.saving.deserialize_keras_object(config["base_loss"])
        config.pop("reduction", None)
        return cls(**config)


def _resolve_base_loss(base_loss: BaseLoss | str) -> BaseLoss:
    if isinstance(base_loss, str):
        base_loss = keras.losses.get(base_loss)
    if not callable(base_loss):
        raise TypeError(
            f"base_loss must be a Keras loss or a callable(y_true, y_pred), got {type(base_loss).__name__}."
        )
    reduction = getattr(base_loss, "reduction", None)
    if isinstance(base_loss, keras.losses.Loss) and reduction not in (None, "none"):
        raise ValueError(REDUCTION_MESSAGE.format(name=type(base_loss).__name__, reduction=reduction))
    return base_loss
