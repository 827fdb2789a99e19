"""JAX adapter of hrcore (``hrcore.adapters.jax``): pure functions, safe under ``jit``, ``grad`` and ``vmap``.

- ``hr_loss`` / ``hr_weights``: the HR/HD robust loss and its weights, from the core's exact solver.
- ``mismatch_adversarial_loss`` / ``pga_attack``: training against relative parameter mismatch, with the
  published positional order (a Rockpool-style module is accepted as ``net``).
- ``fgsm``, ``fgv``, ``pgd``, ``input_adversarial_loss`` (+ ``AdvConfig``): input attacks and NSL-style
  adversarial regularisation on a forward function ``model(x)``.
- ``adversarial_accuracy``, ``mismatch_curve``: evaluation.
"""

try:
    import jax  # noqa: F401  (fail here, with the install hint, before any submodule needs it)
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("hrcore.adapters.jax needs JAX: pip install 'hrcore[jax]'") from error

from .attacks import fgsm, fgv, pgd, softmax_cross_entropy
from .evaluation import adversarial_accuracy, mismatch_curve
from .mismatch import mismatch_adversarial_loss, pga_attack
from .modules import is_stateful_module, pure_forward
from .regularization import AdvConfig, input_adversarial_loss
from .weights import hr_loss, hr_weights

__all__ = [
    "AdvConfig",
    "adversarial_accuracy",
    "fgsm",
    "fgv",
    "hr_loss",
    "hr_weights",
    "input_adversarial_loss",
    "is_stateful_module",
    "mismatch_adversarial_loss",
    "mismatch_curve",
    "pga_attack",
    "pgd",
    "pure_forward",
    "softmax_cross_entropy",
]
