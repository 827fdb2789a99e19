"""The HR and HD programs stated as conic programs in cvxpy and solved by Clarabel.

This is the test oracle of the exact solver in ``hrcore.weights`` and the ``solver="cvxpy"`` option of
``hrcore.solve``: slow, but a direct transcription of the math in DESIGN §2. cvxpy is imported inside the
functions that need it, so ``import hrcore`` stays fast and works without the ``reference`` extra.

Both programs are affine-equivariant, so they are solved on the normalised distances
d_i = (M − ℓ_i)/S ∈ [0, 1] (M the worst atom's value, S = M − min ℓ) with the distributions scaled by N: the
solver sees O(1) data whatever the losses' magnitude or the batch size.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from hrcore.solution import HRSolution, fold_worst_atom
from hrcore.validation import (
    as_loss_array,
    as_mask,
    check_alpha,
    check_ambiguity,
    check_radius,
    check_upper_bound,
)

__all__ = ["ReferenceInaccurate", "solve"]

# Tight enough that the oracle's error (~1e-8 on weights) sits far below the tolerances the exact solver is
# tested to; Clarabel still converges on these well-scaled programs in a few dozen iterations.
DEFAULT_TOLERANCE = 1e-10


class ReferenceInaccurate(RuntimeError):
    """Clarabel stopped at its reduced tolerances ("optimal_inaccurate"): the oracle cannot vouch for it.

    Raised instead of returning, so that a comparison never trusts an inaccurate oracle silently; property
    tests catch it, skip the instance and count the skips.

    Attributes:
        status: The cvxpy status string.
        solution: The solver's approximate solution, post-processed like an accurate one.
    """

    def __init__(self, message: str, status: str, solution: HRSolution) -> None:
        super().__init__(message)
        self.status = status
        self.solution = solution


class _Normalised(NamedTuple):
    """A solution of the normalised program: distributions over the N included samples and the worst atom."""

    q: np.ndarray  # (N+1,) the intermediate distribution (HD: after poisoning; HR: inside the KL ball)
    p: np.ndarray  # (N+1,) the maximiser
    status: str
    iterations: int


def solve(
    losses: object,
    alpha: float = 0.05,
    r: float = 0.1,
    ambiguity: str = "HD",
    upper_bound: float | None = None,
    mask: object = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    solver_options: Mapping[str, Any] | None = None,
) -> HRSolution:
    """Solve the HR or HD program with cvxpy and Clarabel.

    Computes V = max_p Σ p_i ℓ_i + p_{N+1}·M over HD = {p : KL(q‖p) ≤ r, q = P̂ with ≤ α moved to the worst
    atom} or HR = {p : p = q with ≤ α of q's sample mass moved to the worst atom, KL(P̂‖q) ≤ r}.

    Masked-out entries are excluded from the problem (N counts the included entries only, so they never
    consume the α budget) and get weight 0. Samples tied at the same loss get equal weight (the solver's
    answer is averaged inside each tie group, which keeps it optimal: the programs are convex and symmetric
    in tied atoms). With the batch-max worst atom, no mass is moved off samples already at the maximum (moving
    it changes nothing), so ``removed_mass`` is the mass taken from samples below the maximum. Trimmed
    samples get weights of the order of the tolerance, not exact zeros.

    Args:
        losses: Per-sample losses, array-like of shape (N,).
        alpha: Poisoning fraction α ∈ [0, 1).
        r: KL radius r ≥ 0; r = 0 is solved as the linear program p = q.
        ambiguity: "HD" (poisoning, then the KL ball) or "HR" (the KL ball, then poisoning).
        upper_bound: A known bound B ≥ max ℓ: the worst atom sits at B and is not folded into the weights.
        mask: Optional booleans (N,), False = exclude the entry.
        tolerance: Clarabel's gap and feasibility tolerances (tol_gap_abs, tol_gap_rel, tol_feas).
        solver_options: Further Clarabel settings (cvxpy keyword arguments), overriding the defaults.

    Returns:
        An ``HRSolution`` with ``solver="cvxpy"``; ``extra`` holds the divergence of the returned
        distributions (``"divergence"``, ≤ r up to the tolerance) and Clarabel's iteration count.

    Raises:
        ImportError: If cvxpy (or Clarabel) is not installed.
        TypeError, ValueError: For bad losses, mask or hyper-parameters (``hrcore.validation``'s messages).
        ReferenceInaccurate: If Clarabel only reached its reduced tolerances.
        RuntimeError: If Clarabel fails or stops without a solution.
    """
    values = as_loss_array(losses)
    included = as_mask(mask, values.size)
    alpha = check_alpha(alpha)
    r = check_radius(r)
    ambiguity = check_ambiguity(ambiguity)
    kept = values if included is None else values[included]
    upper_bound = check_upper_bound(upper_bound, float(kept.max()))
    included = np.ones(values.size, dtype=bool) if included is None else included

    worst_value = float(kept.max()) if upper_bound is None else upper_bound
    scale = worst_value - float(kept.min())
    n = kept.size
    if scale == 0.0:
        # Every atom (samples and worst atom) sits at M: V = M for any distribution; uniform is canonical.
        q = p = np.append(np.full(n, 1.0 / n), 0.0)
        normalised = _Normalised(q=q, p=p, status="optimal", iterations=0)
    else:
        distances = (worst_value - kept) / scale
        normalised = _solve_normalised(distances, alpha, r, ambiguity, tolerance, solver_options)
    solution = _to_solution(normalised, values, kept, included, alpha, r, ambiguity, upper_bound, worst_value)
    if normalised.status != "optimal":
        raise ReferenceInaccurate(
            f"Clarabel returned status {normalised.status!r} for the {ambiguity} program (N={n}, "
            f"alpha={alpha}, r={r}): the reference is only accurate to Clarabel's reduced tolerances.",
            normalised.status,
            solution,
        )
    return solution


def _import_cvxpy() -> Any:
    try:
        import cvxpy
    except ImportError as error:
        raise ImportError(
            "hrcore.reference needs cvxpy and Clarabel: pip install 'hrcore[reference]'"
        ) from error
    return cvxpy


def _solve_normalised(
    distances: np.ndarray,
    alpha: float,
    r: float,
    ambiguity: str,
    tolerance: float,
    solver_options: Mapping[str, Any] | None,
) -> _Normalised:
    """Solve the program on normalised distances with Clarabel.

    Minimises Σ p_i d_i (so V = M − S·min): the distributions are scaled by N (Q = N q, P = N p ∈ O(1)), which
    turns KL(q‖p) ≤ r into Σ Q log(Q/P) ≤ N r and KL(P̂‖q) ≤ r into Σ log Q_i ≥ −N r.

    Args:
        distances: d_i ∈ [0, 1] of the N included samples; the worst atom has d = 0.
        alpha: α.
        r: r.
        ambiguity: "HD" or "HR".
        tolerance: Clarabel's gap and feasibility tolerance.
        solver_options: Overrides of Clarabel settings.

    Returns:
        q and p over the N+1 atoms (unscaled, samples first), the cvxpy status and the iteration count.
    """
    cp = _import_cvxpy()
    n = distances.size
    at_max = np.flatnonzero(distances == 0.0)
    if ambiguity == "HD" or r == 0.0:
        # r = 0 makes the two programs one LP (p = q); the KL ≤ 0 cone would have no interior.
        kept_mass = cp.Variable(n)  # N q_i
        moved = n - cp.sum(kept_mass)  # N q_{N+1}
        target = cp.Variable(n + 1)  # N p
        constraints = [kept_mass >= 0, kept_mass <= 1, moved <= n * alpha, target >= 0, cp.sum(target) == n]
        if at_max.size:
            # Moving mass off a sample already at the maximum changes nothing: fix it (a canonical answer).
            constraints.append(kept_mass[at_max] == 1)
        full_q = cp.hstack([kept_mass, cp.reshape(moved, (1,), order="C")])
        if r == 0.0:
            constraints.append(target == full_q)
        else:
            constraints.append(cp.sum(cp.rel_entr(full_q, target)) <= n * r)
        objective = cp.Minimize(distances @ target[:n] / n)
        problem = cp.Problem(objective, constraints)
        status, iterations = _run(cp, problem, tolerance, solver_options)
        if status not in ("optimal", "optimal_inaccurate"):
            _raise_failed(status, ambiguity, n)
        q = np.append(kept_mass.value, n - np.sum(kept_mass.value)) / n
        p = np.asarray(target.value) / n
    else:
        ball = cp.Variable(n + 1)  # N q, the worst atom last
        target = cp.Variable(n)  # N p on the samples
        constraints = [
            ball >= 0,
            cp.sum(ball) == n,
            cp.sum(cp.log(ball[:n])) >= -n * r,
            target >= 0,
            target <= ball[:n],
            cp.sum(ball[:n] - target) <= n * alpha,
        ]
        if at_max.size:
            constraints.append(target[at_max] == ball[at_max])
        objective = cp.Minimize(distances @ target / n)
        problem = cp.Problem(objective, constraints)
        status, iterations = _run(cp, problem, tolerance, solver_options)
        if status not in ("optimal", "optimal_inaccurate"):
            _raise_failed(status, ambiguity, n)
        ball_value = np.asarray(ball.value)
        target_value = np.asarray(target.value)
        worst = ball_value[n] + np.sum(ball_value[:n] - target_value)
        q = ball_value / n
        p = np.append(target_value, worst) / n
    return _Normalised(q=q, p=p, status=status, iterations=iterations)


def _run(
    cp: Any, problem: Any, tolerance: float, solver_options: Mapping[str, Any] | None
) -> tuple[str, int]:
    options: dict[str, Any] = {
        "tol_gap_abs": tolerance,
        "tol_gap_rel": tolerance,
        "tol_feas": tolerance,
        "tol_ktratio": min(1e-6, tolerance),
        "max_iter": 500,
    }
    options.update(solver_options or {})
    try:
        with warnings.catch_warnings():
            # The caller checks the status and raises ReferenceInaccurate: cvxpy's warning is redundant.
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            problem.solve(solver=cp.CLARABEL, **options)
    except cp.error.SolverError as error:
        raise RuntimeError(f"Clarabel failed on the reference HR/HD program: {error}") from error
    return str(problem.status), int(problem.solver_stats.num_iters or 0)


def _raise_failed(status: str, ambiguity: str, n: int) -> None:
    raise RuntimeError(
        f"Clarabel returned status {status!r} for the {ambiguity} program (N={n}); the reference has no "
        "solution."
    )


def _to_solution(
    normalised: _Normalised,
    values: np.ndarray,
    kept: np.ndarray,
    included: np.ndarray,
    alpha: float,
    r: float,
    ambiguity: str,
    upper_bound: float | None,
    worst_value: float,
) -> HRSolution:
    """Map the normalised solution back to the losses' units and the caller's indexing.

    Computes V = M − S·Σ p_i d_i = Σ p_i ℓ_i + p_{N+1}·M after cleaning solver round-off (p ≥ 0, Σ p = 1,
    equal weight inside tie groups).
    """
    n = kept.size
    q = _average_ties(np.clip(normalised.q, 0.0, None), kept)
    p = _average_ties(np.clip(normalised.p, 0.0, None), kept)
    p /= p.sum()
    value = float(np.dot(p[:n], kept) + p[n] * worst_value)
    if ambiguity == "HD" or r == 0.0:
        removed = float(q[n])
        divergence = _relative_entropy(q, p)
    else:
        removed = float(np.sum(np.clip(q[:n] - p[:n], 0.0, None)))
        divergence = _relative_entropy(np.append(np.full(n, 1.0 / n), 0.0), q)
    sample_weights = np.zeros(values.size)
    sample_weights[included] = p[:n]
    worst_weight = float(p[n])
    weights = fold_worst_atom(sample_weights, worst_weight, values, included, upper_bound)
    return HRSolution(
        weights=weights,
        sample_weights=sample_weights,
        worst_weight=worst_weight,
        value=value,
        worst_value=worst_value,
        ambiguity=ambiguity,
        alpha=alpha,
        r=r,
        upper_bound=upper_bound,
        removed_mass=removed,
        solver="cvxpy",
        extra={"divergence": divergence, "iterations": float(normalised.iterations)},
    )


def _average_ties(distribution: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Replace each sample's mass by its tie group's mean; the worst atom (last entry) is left alone.

    Computes p_i ← mean{p_j : ℓ_j = ℓ_i}; optimal and feasible again by convexity and symmetry.
    """
    _, group, counts = np.unique(kept, return_inverse=True, return_counts=True)
    sums = np.bincount(group, weights=distribution[: kept.size])
    return np.append(sums[group] / counts[group], distribution[kept.size :])


def _relative_entropy(first: np.ndarray, second: np.ndarray) -> float:
    """KL divergence of two distributions on the same atoms.

    Computes KL(a‖b) = Σ_{a_i > 0} a_i log(a_i / b_i) (infinite where b_i = 0 < a_i).
    """
    support = first > 0.0
    if np.any(second[support] <= 0.0):
        return float("inf")
    return float(np.sum(first[support] * np.log(first[support] / second[support])))
