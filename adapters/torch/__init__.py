"""PyTorch adapter of hrcore: HR losses, input and parameter-mismatch attacks, evaluation helpers.

Everything here is tensor<->numpy transfer, autodiff and ``nn.Module`` plumbing around the numpy core: the HR
weights come from ``hrcore.solve`` and every ε-ball and mismatch-box formula from ``hrcore.geometry``.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401  (imported first so a missing framework fails here, with the install hint)
except ImportError as error:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "hrcore.adapters.torch needs PyTorch, which is not installed: pip install 'hrcore[torch]'"
    ) from error

from hrcore.evaluation import AdversarialAccuracy, MismatchCurve

from .attacks import ffgsm, fgsm, fgv, pgd
from .evaluation import accuracy, adversarial_accuracy, mismatch_curve, predict
from .legacy import HR_Neural_Networks
from .losses import HRCriterion, HRLoss
from .mismatch import mismatch_adversarial_loss, pga_attack
from .modes import attack_mode
from .regularization import AdvConfig, input_adversarial_loss
from .weights import hr_loss, hr_weights

__all__ = [
    "AdvConfig",
    "AdversarialAccuracy",
    "HRCriterion",
    "HRLoss",
    "HR_Neural_Networks",
    "MismatchCurve",
    "accuracy",
    "adversarial_accuracy",
    "attack_mode",
    "ffgsm",
    "fgsm",
    "fgv",
    "hr_loss",
    "hr_weights",
    "input_adversarial_loss",
    "mismatch_adversarial_loss",
    "mismatch_curve",
    "pga_attack",
    "pgd",
    "predict",
]
