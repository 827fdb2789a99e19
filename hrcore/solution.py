"""The result type shared by the exact solver and the cvxpy reference.

An ``HRSolution`` holds the maximising distribution p of the HR/HD program over the N samples and the worst
atom, folded into N per-sample weights w = ∂V/∂ℓ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


# Not frozen: a frozen dataclass's __init__ costs ~7 µs more per solve with cold caches (a tenth of a solve).
@dataclass
class HRSolution:
    """Optimal weights and value of one HR/HD program.

    Maximises E_p[ℓ] over the ambiguity set around the empirical distribution of the batch.

    Attributes:
        weights: Folded per-sample weights w (N,), float64: w = ∂V/∂ℓ, so Σ w_i ℓ_i (+ worst_weight·B when an
            upper bound is given) is the robust loss. Masked-out entries are 0.
        sample_weights: The maximiser's mass on each sample before folding the worst atom in (N,).
        worst_weight: The maximiser's mass p_{N+1} on the worst atom.
        value: The robust loss V.
        worst_value: Where the worst atom sits: the batch maximum M, or the given upper bound B.
        ambiguity: "HD" or "HR".
        alpha: The poisoning fraction α.
        r: The KL radius r.
        upper_bound: B, or None when the worst atom is the batch maximum (then it is folded into ``weights``).
        removed_mass: Mass moved off the samples with the lowest losses (the poisoning budget actually used).
        solver: "exact" or "cvxpy".
    """

    weights: np.ndarray
    sample_weights: np.ndarray
    worst_weight: float
    value: float
    worst_value: float
    ambiguity: str
    alpha: float
    r: float
    upper_bound: float | None
    removed_mass: float
    solver: str = "exact"
    extra: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def full_weights(self) -> np.ndarray:
        """The unfolded distribution (N+1,): per-sample mass, then the worst atom's mass."""
        return np.append(self.sample_weights, self.worst_weight)

    @property
    def effective_sample_size(self) -> float:
        """Kish's effective sample size 1/Σ w_i² of the folded weights."""
        return float(1.0 / np.sum(self.weights**2))

    @property
    def zero_weight_indices(self) -> np.ndarray:
        """Indices of the samples the maximiser gives no weight (trimmed by α, or masked out)."""
        return np.flatnonzero(self.weights <= 0.0)


def fold_worst_atom(
    sample_weights: np.ndarray,
    worst_weight: float,
    losses: np.ndarray,
    included: np.ndarray,
    upper_bound: float | None,
) -> np.ndarray:
    """Fold the worst atom's mass onto the samples that attain the maximum loss.

    Computes w_i = p_i + p_{N+1}·1[ℓ_i = M]/m, with m the number of included samples tied at M.

    Args:
        sample_weights: p_1..p_N (0 on excluded entries).
        worst_weight: p_{N+1}.
        losses: The losses ℓ (N,).
        included: Boolean (N,) of the entries in the problem.
        upper_bound: B; when given the worst atom is a separate point and nothing is folded.

    Returns:
        The folded weights (N,).
    """
    weights = sample_weights.copy()
    if upper_bound is None and worst_weight > 0.0:
        at_max = included & (losses == losses[included].max())
        weights[at_max] += worst_weight / np.count_nonzero(at_max)
    return weights
