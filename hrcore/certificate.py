"""An explicit finite-sample certificate for the HD robust loss of a fixed model.

For a loss bounded by a known B, n i.i.d. held-out points of which at most ⌊αn⌋ were replaced arbitrarily,
and V_B the HD value with the worst atom at B: P(E_test[ℓ] > V_B) ≤ 2√n·e^{−nr}. The route: the dual of the
KL ball turns a failure into a constant-rebalanced betting martingale; mixing the bet over a Beta(½, ½) prior
(a universal portfolio) and Markov's inequality give the constant 2√n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hrcore.validation import as_loss_array, check_alpha, check_radius
from hrcore.weights import solve

ASSUMPTIONS = (
    "the model was fixed before these losses were computed (certify on held-out data, never on the data the "
    "model was trained or selected on)",
    "the clean points are i.i.d. draws from the test distribution; at most a fraction alpha of them were "
    "replaced arbitrarily",
    "the loss is bounded above by upper_bound on every possible point (e.g. the 0-1 loss with B = 1, or a "
    "loss clipped at B); cross-entropy is unbounded and cannot be certified directly",
    "the HD ambiguity set with the worst atom at upper_bound (not the batch maximum, which voids the bound)",
)


def failure_probability(n: int, r: float) -> float:
    """Probability that the certified bound fails.

    Computes δ = min(1, 2√n·e^{−nr}).

    Args:
        n: Number of held-out points.
        r: KL radius r ≥ 0.

    Returns:
        δ.
    """
    _check_count(n)
    r = check_radius(r)
    return min(1.0, math.exp(math.log(2.0) + 0.5 * math.log(n) - n * r))


def radius_for(n: int, delta: float) -> float:
    """The KL radius that certifies with confidence 1 − δ.

    Computes r(n, δ) = (ln(1/δ) + ln 2 + ½ ln n)/n, the r solving 2√n·e^{−nr} = δ.

    Args:
        n: Number of held-out points.
        delta: Allowed failure probability δ ∈ (0, 1).

    Returns:
        r > 0.

    Raises:
        ValueError: If δ ∉ (0, 1) or n < 1.
    """
    _check_count(n)
    if not (isinstance(delta, (int, float)) and 0.0 < delta < 1.0):
        raise ValueError(f"delta (the failure probability) must lie in (0, 1), got {delta!r}.")
    return (math.log(1.0 / delta) + math.log(2.0) + 0.5 * math.log(n)) / n


@dataclass(frozen=True)
class Certificate:
    """A high-probability upper bound on the expected test loss of a fixed model.

    Attributes:
        bound: V_B, the HD robust loss with the worst atom at B: E_test[ℓ] ≤ bound with probability at least
            ``confidence``.
        empirical_mean: The plain mean of the held-out losses, for comparison.
        n: Number of held-out points.
        alpha: Poisoning fraction α the bound allows for.
        r: KL radius r.
        delta: Failure probability 2√n·e^{−nr}.
        upper_bound: The loss bound B.
        assumptions: The conditions under which the bound holds.
    """

    bound: float
    empirical_mean: float
    n: int
    alpha: float
    r: float
    delta: float
    upper_bound: float
    assumptions: tuple[str, ...] = ASSUMPTIONS

    @property
    def confidence(self) -> float:
        """1 − δ."""
        return 1.0 - self.delta

    def __str__(self) -> str:
        lines = [
            f"E_test[loss] <= {self.bound:.6g} with probability >= {self.confidence:.6g} "
            f"(n={self.n}, alpha={self.alpha:g}, r={self.r:.6g}, B={self.upper_bound:g}; "
            f"held-out mean {self.empirical_mean:.6g})",
            "assuming:",
        ]
        lines += [f"  - {text}" for text in self.assumptions]
        return "\n".join(lines)


def certify(
    losses: object,
    alpha: float,
    upper_bound: float,
    r: float | None = None,
    delta: float | None = None,
) -> Certificate:
    """Certify the expected test loss of a fixed model from its held-out losses.

    Computes V_B = max{E_p[ℓ] : p in the HD set of (α, r) around P̂, worst atom at B} and δ = 2√n·e^{−nr}; give
    either r or the target δ (then r = radius_for(n, δ)).

    Args:
        losses: Held-out per-sample losses of the fixed model (n,), each ≤ upper_bound.
        alpha: Fraction α of the held-out points that may have been replaced.
        upper_bound: B, an upper bound of the loss over every possible point.
        r: KL radius r > 0 (exclusive with delta).
        delta: Target failure probability δ ∈ (0, 1) (exclusive with r).

    Returns:
        The certificate.

    Raises:
        ValueError: If both or neither of r and delta are given, r is not > 0, or a loss exceeds B.
    """
    values = as_loss_array(losses)
    alpha = check_alpha(alpha)
    if (r is None) == (delta is None):
        raise ValueError("certify needs exactly one of r (the KL radius) or delta (the failure probability).")
    if upper_bound is None:
        raise ValueError("certify needs upper_bound: a bound B of the loss (e.g. 1 for the 0-1 loss).")
    n = int(values.size)
    radius = radius_for(n, delta) if delta is not None else check_radius(r)  # type: ignore[arg-type]
    if radius <= 0.0:
        raise ValueError("certify needs r > 0: with r = 0 the KL ball is a point and nothing is certified.")
    solution = solve(values, alpha, radius, "HD", upper_bound=upper_bound)
    return Certificate(
        bound=solution.value,
        empirical_mean=float(np.mean(values)),
        n=n,
        alpha=alpha,
        r=radius,
        delta=failure_probability(n, radius),
        upper_bound=float(solution.upper_bound),  # type: ignore[arg-type]
    )


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (the number of held-out points) must be a positive integer, got {n!r}.")
