"""Keras 3 / TensorFlow adapter of hrcore: HR losses, input-adversarial and parameter-mismatch training.

Exposes V = Σ wᵢℓᵢ with the core's HR weights w held constant (``HRLoss``, ``hr_weights``), NSL-style input
adversarial losses, a Keras 3 adversarial-regularisation model, the mismatch loss and the shared attacks.

``HRLoss`` and ``hr_weights`` work on every Keras backend (TensorFlow, JAX, PyTorch) and need only Keras. The
other names differentiate with ``tf.GradientTape`` and need the TensorFlow backend; they are imported on first
use, so a Keras-on-JAX or Keras-on-PyTorch user never pays for (or needs) a TensorFlow import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

try:
    import keras
except ImportError as error:
    raise ImportError(
        "hrcore.adapters.keras needs Keras 3 (and TensorFlow): pip install 'hrcore[keras]'"
    ) from error

if int(keras.__version__.split(".")[0]) < 3:
    raise ImportError(
        f"hrcore.adapters.keras needs Keras 3, found Keras {keras.__version__}: pip install 'hrcore[keras]'"
    )

from .losses import HRLoss, hr_weights

if TYPE_CHECKING:
    from .attacks import fgsm, fgv, pgd
    from .evaluation import adversarial_accuracy, mismatch_curve
    from .input_adversarial import AdvConfig, input_adversarial_loss
    from .mismatch import mismatch_adversarial_loss, pga_attack
    from .regularization import AdversarialRegularization

_TENSORFLOW_NAMES = {
    "AdvConfig": "input_adversarial",
    "AdversarialRegularization": "regularization",
    "adversarial_accuracy": "evaluation",
    "fgsm": "attacks",
    "fgv": "attacks",
    "input_adversarial_loss": "input_adversarial",
    "mismatch_adversarial_loss": "mismatch",
    "mismatch_curve": "evaluation",
    "pga_attack": "mismatch",
    "pgd": "attacks",
}

__all__ = [
    "AdvConfig",
    "AdversarialRegularization",
    "HRLoss",
    "adversarial_accuracy",
    "fgsm",
    "fgv",
    "hr_weights",
    "input_adversarial_loss",
    "mismatch_adversarial_loss",
    "mismatch_curve",
    "pga_attack",
    "pgd",
]


def __getattr__(name: str) -> Any:
    """Import the TensorFlow-based names on first use (PEP 562)."""
    if name not in _TENSORFLOW_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        import tensorflow  # noqa: F401  (checked here so a missing install gets the hint below)
    except ImportError as error:
        raise ImportError(
            f"hrcore.adapters.keras.{name} needs TensorFlow: pip install 'hrcore[keras]'"
        ) from error
    value = getattr(importlib.import_module(f"{__name__}.{_TENSORFLOW_NAMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
