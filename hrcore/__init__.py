"""hrcore: Holistic Robust training, framework-agnostic core.

``solve``/``hr_weights`` compute exact HR/HD importance weights for a batch of per-sample losses;
``hrcore.geometry`` holds the ε-balls and the parameter-mismatch box, ``hrcore.certificate`` the finite-sample
bound, ``hrcore.reference`` the cvxpy formulation of the same programs. Framework adapters live in
``hrcore.adapters`` (torch, keras, jax); importing ``hrcore`` loads no framework.
"""

from hrcore.solution import HRSolution
from hrcore.weights import HRSettings, hr_weights, solve

__all__ = ["HRSettings", "HRSolution", "hr_weights", "solve"]
__version__ = "0.1.0"
