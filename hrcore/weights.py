"""Holistic Robust importance weights for a batch of per-sample losses, solved exactly.

The public entry point of the core: ``solve`` maximises E_p[ℓ] over the HD or HR ambiguity set around the
batch's empirical distribution and returns the maximiser folded into per-sample weights w = ∂V/∂ℓ, so that
any framework's robust loss is Σ stop_gradient(w_i)·ℓ_i.
"""

from __future__ import annotations

import math

import numpy as np

from hrcore import compiled
from hrcore.programs import count_at_worst, solve_hd, solve_hr
from hrcore.solution import HRSolution
from hrcore.validation import (
    as_batch,
    check_alpha,
    check_ambiguity,
    check_radius,
    check_upper_bound,
)

SOLVERS = ("exact", "cvxpy")
NEGLIGIBLE_RADIUS = 1e-32


def solve(
    losses: object,
    alpha: float = 0.05,
    r: float = 0.1,
    ambiguity: str = "HD",
    upper_bound: float | None = None,
    mask: object = None,
    solver: str = "exact",
) -> HRSolution:
    """Worst-case distribution and robust loss of one batch.

    Solves V = max{E_p[ℓ] : p in the HD/HR set of (α, r) around P̂}, over the N samples and a worst atom at
    M = max ℓ (or at the known bound B), and folds the worst atom's mass onto the samples tied at M.

    Args:
        losses: Per-sample losses (N,), any real dtype or array-like; computed in float64.
        alpha: Poisoning fraction α ∈ [0, 1); 0 is solved exactly (no poisoning).
        r: KL radius r ≥ 0; 0 is solved exactly (no generalisation term).
        ambiguity: "HD" (poison P̂, then the KL ball; the default) or "HR" (the KL ball, then poison).
        upper_bound: A known bound B ≥ max ℓ of the loss: the worst atom sits at B and is not folded, so
            V = Σ w_i ℓ_i + worst_weight·B (what the certificate needs).
        mask: Optional booleans (N,); False entries (padding, ignored rows) are left out of the problem and
            get weight 0, without consuming α.
        solver: "exact" (the closed-form/Newton algorithms of this module) or "cvxpy" (the reference conic
            formulation in ``hrcore.reference``; slow, for checking).

    Returns:
        The solution: folded weights, worst-atom mass, value and diagnostics.

    Raises:
        ValueError: For NaN/inf losses, a wrong shape, an empty batch, α ∉ [0, 1), r < 0, an unknown ambiguity
            or solver, or an upper bound below the largest loss.
        TypeError: For non-numeric losses or hyper-parameters.
    """
    # The common types pass without the checks' calls (a few µs each when the caches are cold).
    if not (type(alpha) is float and 0.0 <= alpha < 1.0):
        alpha = check_alpha(alpha)
    if not (type(r) is float and 0.0 <= r < math.inf):
        r = check_radius(r)
    if ambiguity != "HD" and ambiguity != "HR":
        ambiguity = check_ambiguity(ambiguity)
    if solver == "cvxpy":
        from hrcore import reference

        return reference.solve(losses, alpha, r, ambiguity, upper_bound, mask)
    if solver != "exact":
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")

    found = None
    if mask is None and upper_bound is None:
        array = _float_vector(losses)
        if array is not None:
            # HR with α = 0 or r = 0 is the HD program (solved by the same code: the two agree to the bit).
            hd = ambiguity == "HD" or alpha == 0.0 or r == 0.0
            found = compiled.solve_hd(array, alpha, r) if hd else compiled.solve_hr(array, alpha, r)
    if found is None:
        found = _solve_numpy(losses, alpha, r, ambiguity, upper_bound, mask)
    weights, sample_weights, worst_mass, removed, value, worst_value = found
    # Under a bound the worst atom sits at the validated B.
    return HRSolution(
        weights=weights,
        sample_weights=sample_weights,
        worst_weight=worst_mass,
        value=value,
        worst_value=worst_value,
        ambiguity=ambiguity,
        alpha=alpha,
        r=r,
        upper_bound=None if upper_bound is None else worst_value,
        removed_mass=removed,
        solver="exact",
    )


def _solve_numpy(
    losses: object, alpha: float, r: float, ambiguity: str, upper_bound: float | None, mask: object
) -> tuple[np.ndarray, np.ndarray, float, float, float, float]:
    """``solve`` by the numpy path, for any batch.

    Computes (weights, sample weights, worst mass, removed mass, V, where the worst atom sits: M or B).
    """
    _, included, kept, order, ordered, bound, worst_value, spread = as_batch(losses, mask, upper_bound)
    n = kept.size
    # Entries in ascending d = descending loss: position j holds sample descending[j].
    descending = order[::-1]
    if spread == 0.0:
        # Every included loss equals the worst atom: any p gives V = M; the canonical choice is uniform.
        mass, worst_mass, removed = np.full(n, 1.0 / n), 0.0, 0.0
        distances = np.zeros(n)
    else:
        # Affine equivariance: work on d = (M − ℓ)/S ∈ [0, 1] so nothing can overflow and ties stay exact.
        distances = np.subtract(worst_value, ordered[::-1])
        distances /= spread
        # Below this radius the KL term moves V by less than S·√(2r) ≈ 1e-16·S, under float64 resolution,
        # while u* ≈ σ/√(2r) would overflow: such an r is solved as r = 0.
        radius = r if r >= NEGLIGIBLE_RADIUS else 0.0
        if ambiguity == "HD" or alpha == 0.0 or radius == 0.0:
            mass, worst_mass, removed = solve_hd(distances, alpha, radius)
        else:
            values, counts, groups = group_ties(distances)
            group_mass, worst_mass, removed = solve_hr(values, counts, n, alpha, radius)
            mass = group_mass if groups is None else (group_mass / counts)[groups]

    value = worst_value - spread * float(mass @ distances)
    sample_weights = np.empty(n)
    sample_weights[descending] = mass
    weights = sample_weights.copy()
    if bound is None and worst_mass > 0.0:
        # The samples tied at the maximum (d = 0, first in ascending d) take the worst atom's mass.
        top_group = count_at_worst(distances)
        if top_group == 1:
            weights[descending.item(0)] += worst_mass
        else:
            weights[descending[:top_group]] += worst_mass / top_group
    if included is not None:
        sample_weights, weights = _scatter(sample_weights, included), _scatter(weights, included)
    return weights, sample_weights, worst_mass, removed, value, worst_value


def group_ties(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Distinct values of ascending ``distances``, their multiplicities, and each entry's group.

    Computes values = unique(d), counts, and groups with values[groups] == d; groups is None when no two
    entries tie (then group g is entry g), the common case.

    Args:
        distances: Normalised losses d (n,), ascending.

    Returns:
        (values (K,), counts (K,), groups (n,) or None).
    """
    same = distances[1:] == distances[:-1]
    if not same.any():
        return distances, np.ones(distances.size, dtype=np.intp), None
    starts = np.flatnonzero(np.concatenate(([True], ~same)))
    counts = np.diff(starts, append=distances.size)
    groups = np.cumsum(np.concatenate(([0], ~same)))
    return distances[starts], counts, groups


def _float_vector(losses: object) -> np.ndarray | None:
    """``losses`` as a C-contiguous float64 vector when it is a non-empty 1-D real array or list, else None.

    Anything else (other shapes, dtypes, ragged input) is left to ``as_batch``, which owns the error messages.
    """
    if type(losses) is not np.ndarray:
        if not isinstance(losses, (list, tuple)):
            return None
        try:
            losses = np.asarray(losses)
        except (ValueError, TypeError):
            return None
    if losses.ndim != 1 or losses.size == 0:
        return None
    if losses.dtype.char == "d" and losses.flags.c_contiguous:
        return losses
    return np.ascontiguousarray(losses, dtype=np.float64) if losses.dtype.kind in "fiu" else None


def _scatter(kept: np.ndarray, included: np.ndarray) -> np.ndarray:
    """Per-sample values of the included entries placed in a zero vector of the full batch."""
    full = np.zeros(included.size)
    full[included] = kept
    return full


class HRSettings:
    """The hyper-parameters of ``solve``, validated on every assignment, for losses that keep them as state.

    Holds α, r, the ambiguity set and the bound B; ``solve(losses, mask)`` runs the program with their current
    values, so a schedule may reassign them between steps and a bad value fails at the assignment.
    """

    def __init__(
        self, alpha: float = 0.05, r: float = 0.1, ambiguity: str = "HD", upper_bound: float | None = None
    ) -> None:
        self.alpha = alpha
        self.r = r
        self.ambiguity = ambiguity
        self.upper_bound = upper_bound

    @property
    def alpha(self) -> float:
        """Poisoning fraction α ∈ [0, 1)."""
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = check_alpha(value)

    @property
    def r(self) -> float:
        """KL radius r ≥ 0."""
        return self._r

    @r.setter
    def r(self, value: float) -> None:
        self._r = check_radius(value)

    @property
    def ambiguity(self) -> str:
        """The ambiguity set: "HD" or "HR"."""
        return self._ambiguity

    @ambiguity.setter
    def ambiguity(self, value: str) -> None:
        self._ambiguity = check_ambiguity(value)

    @property
    def upper_bound(self) -> float | None:
        """A known bound B of the loss (the worst atom), or None for the batch maximum."""
        return self._upper_bound

    @upper_bound.setter
    def upper_bound(self, value: float | None) -> None:
        # Finite here; B ≥ max ℓ is checked by each solve, against that batch.
        self._upper_bound = None if value is None else check_upper_bound(value, -math.inf)

    def solve(self, losses: object, mask: object = None) -> HRSolution:
        """``solve`` with the current hyper-parameters.

        Computes V = max{E_p[ℓ] : p in the (α, r) ambiguity set around P̂} and its folded weights.
        """
        return solve(losses, self.alpha, self.r, self.ambiguity, self.upper_bound, mask)


def hr_weights(
    losses: object,
    alpha: float = 0.05,
    r: float = 0.1,
    ambiguity: str = "HD",
    upper_bound: float | None = None,
    mask: object = None,
) -> np.ndarray:
    """Folded HR importance weights of one batch.

    Returns w = ∂V/∂ℓ of ``solve`` (N,): Σw = 1 without an upper bound, and Σ w_i ℓ_i is the robust loss.

    Args:
        losses: Per-sample losses (N,).
        alpha: Poisoning fraction α ∈ [0, 1).
        r: KL radius r ≥ 0.
        ambiguity: "HD" or "HR".
        upper_bound: Optional known bound B of the loss (see ``solve``).
        mask: Optional inclusion mask (N,).

    Returns:
        The weights, float64 (N,).
    """
    return solve(losses, alpha, r, ambiguity, upper_bound, mask).weights
