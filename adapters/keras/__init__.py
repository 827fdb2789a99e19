"""Keras 3 / TensorFlow adapter of hrcore: HR losses, input-adversarial and parameter-mismatch training.

Exposes V = Σ wᵢℓᵢ with the core's HR weights w held constant (``HRLoss``, ``hr_weights``), NSL-style input
adversarial losses, a Keras 3 adversarial-regularisation model, the mismatch loss and the shared attacks.

``HRLoss`` and ``hr_weights`` work on every Keras backend (TensorFlow, JAX, PyTorch); the functions that
differentiate with respect to inputs or weights use ``tf.GradientTape`` and need the TensorFlow backend.
"""

try:
    import keras
    import tensorflow  # noqa: F401  (the backend the gradient-based functions run on)
except ImportError as error:
    raise ImportError(
        "hrcore.adapters.keras needs TensorFlow and Keras 3: pip install 'hrcore[keras]'"
    ) from error

if int(keras.__version__.split(".")[0]) < 3:
    raise ImportError(
        f"hrcore.adapters.keras needs Keras 3, found Keras {keras.__version__}: pip install 'hrcore[keras]'"
    )

from .attacks import fgsm, fgv, pgd
from .evaluation import adversarial_accuracy, mismatch_curve
from .input_adversarial import AdvConfig, input_adversarial_loss
from .losses import HRLoss, hr_weights
from .mismatch import mismatch_adversarial_loss, pga_attack
from .regularization import AdversarialRegularization

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
