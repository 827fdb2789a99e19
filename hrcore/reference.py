"""The HR and HD programs stated as conic programs in cvxpy and solved by Clarabel.

This is the test oracle of the exact solver in ``hrcore.weights`` and the ``solver="cvxpy"`` option of
``hrcore.solve``: slow, but a direct transcription of the programs' math. cvxpy is imported inside the
functions that need it, so ``import hrcore`` stays fast and works without the ``reference`` extra.

Both programs are affine-equivariant, so they are solved on the normalised distances
d_i = (M − ℓ_i)/S ∈ [0, 1] (M the worst atom's value, S = M − min ℓ) with the distributions scaled by N: the
solver sees O(1) data whatever the losses' magnitude or the batch size.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from hrcore.solution import HRSolution, fold_worst_atom
from hrcore.validation import (
    as_batch,
    check_alpha,
    check_ambiguity,
    check_radius,
)

__all__ = ["ReferenceInaccurate", "solve"]

# Clarabel's gap and feasibility tolerance. An objective gap δ moves the maximiser by O(√(δ/curvature)), and
# the curvature is small when the samples' losses are close together relative to the worst atom (small
# losses under a large upper bound): there 1e-10 left weights off by 1e-4, 1e-12 by 1e-6.
DEFAULT_TOLERANCE = 1e-12
# Used when the requested tolerance cannot be met; the solution records which one it met.
FALLBACK_TOLERANCE = 1e-10


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
    tolerance: float  # the Clarabel tolerance the solution met


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
        mask: Optional booleans (N,), False = exclude the entry (it may then hold NaN/inf: padding).
        tolerance: Clarabel's gap and feasibility tolerances (tol_gap_abs, tol_gap_rel, tol_feas). When it
            cannot be met, 1e-10 is tried before giving up; ``extra["tolerance"]`` says which was met.
        solver_options: Further Clarabel settings (cvxpy keyword arguments), overriding the defaults.

    Returns:
        An ``HRSolution`` with ``solver="cvxpy"``; ``extra`` holds the divergence of the returned
        distributions (``"divergence"``, ≤ r up to the tolerance), Clarabel's iteration count over all
        attempts (``"iterations"``) and the tolerance met (``"tolerance"``).

    Raises:
        ImportError: If cvxpy (or Clarabel) is not installed.
        TypeError, ValueError: For bad losses, mask or hyper-parameters (``hrcore.validation``'s messages),
            or a tolerance outside (0, 1).
        ReferenceInaccurate: If Clarabel only reached its reduced tolerances.
        RuntimeError: If Clarabel fails or stops without a solution.
    """
    alpha = check_alpha(alpha)
    r = check_radius(r)
    ambiguity = check_ambiguity(ambiguity)
    if not (isinstance(tolerance, (int, float)) and 0.0 < tolerance < 1.0):
        raise ValueError(
            f"tolerance (Clarabel's gap and feasibility tolerance) must lie in (0, 1), got {tolerance!r}."
        )
    values, included, kept, _, _, upper_bound, worst_value, scale = as_batch(losses, mask, upper_bound)
    included = np.ones(values.size, dtype=bool) if included is None else included
    n = kept.size
    if scale == 0.0:
        # Every atom (samples and worst atom) sits at M: V = M for any distribution; uniform is canonical.
        q = p = np.append(np.full(n, 1.0 / n), 0.0)
        normalised = _Normalised(q=q, p=p, status="optimal", iterations=0, tolerance=0.0)
    else:
        distances = (worst_value - kept) / scale
        # Clarabel's scaling overflows on subnormal data, and an α below the smallest normal double moves V by
        # under α·S ≈ 1e-308·S: such an α enters the conic program as 0.
        budget = alpha if alpha >= np.finfo(float).tiny else 0.0
        normalised = _solve_normalised(distances, budget, r, ambiguity, tolerance, solver_options)
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
        import clarabel  # noqa: F401  (cvxpy alone would only fail later, as a solver error)
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

    Minimises Σ p_i d_i (so V = M − S·min) with the distributions scaled by N (Q = N q, P = N p).

    The m samples tied at the maximum (d = 0) and the worst atom are pooled into one atom at d = 0: they are
    interchangeable in the objective, and by the data-processing inequality pooling them never loosens a
    divergence, which is unchanged when the pool is split in proportion to the reference distribution (the
    canonical split used here). Stated unpooled, the program is degenerate enough to stall Clarabel.

    Each mass is a variable times a fixed scale, so that every exponential cone sees O(1) entries: with unit
    scales, Clarabel stalls on many batches where a few samples near the maximum take most of the mass
    (e.g. r = 1 on lognormal losses). The first solve uses the shape of the KL ball's maximiser for small r,
    p_i ∝ 1/(u₀ + d_i) with u₀ = √(Var(d)/(2r)); an inaccurate solution is solved again scaled by itself (a
    preconditioner only: the answer is always the conic program's, with its status checked). If the
    requested tolerance is never met, the program is solved at FALLBACK_TOLERANCE, and the result records
    which tolerance it met.

    Args:
        distances: d_i ∈ [0, 1] of the N included samples, at least one of them positive.
        alpha: α.
        r: r.
        ambiguity: "HD" or "HR".
        tolerance: Clarabel's gap and feasibility tolerance.
        solver_options: Overrides of Clarabel settings.

    Returns:
        q and p over the N+1 atoms (unscaled, samples first), the status, iterations and tolerance met.

    Raises:
        RuntimeError: If no attempt returned a solution.
    """
    cp = _import_cvxpy()
    lower_index = np.flatnonzero(distances > 0.0)
    tied_index = np.flatnonzero(distances == 0.0)
    lower, m = distances[lower_index], tied_index.size
    if alpha == 0.0:
        # Both programs reduce to the KL ball around P̂. Stated through α's box and budget, P̂ would be pinned
        # by inequalities only (no interior), which also stalls Clarabel.
        program, scale_from = _kl_ball_program, _scale_of_p
    elif ambiguity == "HD" or r == 0.0:
        program, scale_from = _hd_program, _scale_of_p
    else:
        program, scale_from = _hr_program, _scale_of_q
    # Clarabel's default step (0.99 of the way to the cone's boundary) stalls more often on these programs;
    # a shorter one rescued most of the rest in a sample of 1,400 random HD programs.
    steps = (None,) if "max_step_fraction" in (solver_options or {}) else (0.9, 0.5)
    scales = [_scale_guess(lower, m, alpha, r), _unit_scale(lower, m, alpha)]
    status, iterations, best, met = "solver_error", 0, None, tolerance
    for met in (tolerance, FALLBACK_TOLERANCE) if tolerance < FALLBACK_TOLERANCE else (tolerance,):
        options = {"tol_gap_abs": met, "tol_gap_rel": met, "tol_feas": met, "max_iter": 500}
        options.update(solver_options or {})
        for scale, step in itertools.product(scales, steps):
            status, count, masses = _attempt(cp, program(cp, lower, m, alpha, r, scale), options, step)
            iterations += count
            if masses is not None and status != "optimal":
                best = best or (status, masses)
                # An inaccurate solution is a good preconditioner: solve again scaled by it.
                polish = program(cp, lower, m, alpha, r, scale_from(*masses))
                status, count, masses = _attempt(cp, polish, options, step)
                iterations += count
            if masses is not None and status == "optimal":
                best = (status, masses)
                break
        if best is not None:
            if best[0] == "optimal":
                break
            # Start the looser round from the best solution so far.
            scales = [scale_from(*best[1]), *scales]
    if best is None:
        raise RuntimeError(
            f"Clarabel returned status {status!r} for the {ambiguity} program (N={distances.size}); the "
            "reference has no solution."
        )
    status, masses = best
    n = distances.size
    distributions = []
    for mass in masses:
        full = np.empty(n + 1)
        full[lower_index] = mass.lower
        full[tied_index] = mass.tied / max(m, 1)
        full[n] = mass.worst
        distributions.append(full / n)
    return _Normalised(
        distributions[0], distributions[1], status, iterations, met if status == "optimal" else tolerance
    )


class _Masses(NamedTuple):
    """A distribution scaled to total N: samples below the maximum, the tied maxima, the worst atom."""

    lower: np.ndarray
    tied: float  # the total over the m samples at the maximum, split equally
    worst: float


class _Scale(NamedTuple):
    """Typical sizes of the scaled masses: each sample below the maximum, and the pool at d = 0."""

    lower: np.ndarray
    pool: float


_Recover = Callable[[], tuple[_Masses, _Masses]]


def _scale_guess(lower: np.ndarray, m: int, alpha: float, r: float) -> _Scale:
    """Sizes from the KL ball's maximiser for small r, before any solve.

    Computes P_i ∝ 1/(u₀ + d_i) with u₀ = √(Var_P̂(d)/(2r)), normalised to Σ P = N; the pool gets
    (m + Nα)/u₀ on the same scale (HD moves α onto it), or max(Nα, N(1 − e^{−r}), 1) when m = 0.
    """
    n = lower.size + m
    if r == 0.0:
        return _unit_scale(lower, m, alpha)
    mean = lower.sum() / n
    spread = max(float(np.sum(lower**2) / n - mean**2), 0.0)
    start = max(math.sqrt(spread / (2.0 * r)), 1e-9)
    shape = 1.0 / (start + lower)
    pool = (m + n * alpha) / start
    normaliser = n / (shape.sum() + pool)
    if m:
        return _Scale(normaliser * shape, normaliser * pool)
    return _Scale(normaliser * shape, max(n * alpha, -n * math.expm1(-r), 1.0))


def _unit_scale(lower: np.ndarray, m: int, alpha: float) -> _Scale:
    """Sizes of P̂ itself: 1 per sample, m + Nα (at least 1) for the pool."""
    return _Scale(np.ones(lower.size), max(m + (lower.size + m) * alpha, 1.0))


def _scale_of_p(q: _Masses, p: _Masses) -> _Scale:
    """Sizes from a solution's maximiser p (floored: trimmed samples have p = 0)."""
    return _Scale(np.maximum(p.lower, 1e-6), max(p.tied + p.worst, 1e-6))


def _scale_of_q(q: _Masses, p: _Masses) -> _Scale:
    """Sizes from a solution's KL-ball member q (HR: p ≤ q on the samples)."""
    return _Scale(np.maximum(q.lower, 1e-6), max(q.tied + q.worst, 1e-6))


def _attempt(
    cp: Any, built: tuple[Any, _Recover], options: Mapping[str, Any], step: float | None
) -> tuple[str, int, tuple[_Masses, _Masses] | None]:
    """One Clarabel solve: the cvxpy status, the iterations, and the masses when a solution came back."""
    problem, recover = built
    settings = dict(options) if step is None else {**options, "max_step_fraction": step}
    try:
        with warnings.catch_warnings():
            # The caller checks the status and raises ReferenceInaccurate: cvxpy's warning is redundant.
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            problem.solve(solver=cp.CLARABEL, **settings)
    except cp.error.SolverError:
        return "solver_error", 0, None
    status = str(problem.status)
    iterations = int(problem.solver_stats.num_iters or 0)
    if status not in ("optimal", "optimal_inaccurate"):
        return status, iterations, None
    return status, iterations, recover()


def _kl_ball_program(
    cp: Any, lower: np.ndarray, m: int, alpha: float, r: float, scale: _Scale
) -> tuple[Any, _Recover]:
    """The α = 0 program, where HD and HR coincide: the KL ball around P̂.

    Minimises Σ_i P_i d_i / N over P with Σ P = N and KL(P̂‖p) ≤ r, i.e. Σ_i log P_i + m log(P_0/m) ≥ −N r
    for the pool mass P_0 at d = 0 (with m = 0 the pool is the worst atom alone, P_0 ≥ 0 outside the sum).
    """
    n = lower.size + m
    size = cp.Variable(lower.size)  # P_i / s_i
    pool = cp.Variable()  # P_0 / s_0
    constraints = [scale.lower @ size + scale.pool * pool == n]
    if r == 0.0:
        constraints.append(cp.multiply(scale.lower, size) == 1)
    else:
        constraints += _kl_to_uniform_at_most(cp, size, pool, scale, m, r)
    problem = cp.Problem(cp.Minimize((lower * scale.lower) @ size / n), constraints)

    def recover() -> tuple[_Masses, _Masses]:
        pool_mass = scale.pool * float(pool.value)
        masses = scale.lower * np.asarray(size.value)
        reference = _Masses(np.ones(lower.size), float(m), 0.0)
        return reference, _Masses(masses, pool_mass if m else 0.0, 0.0 if m else pool_mass)

    return problem, recover


def _hd_program(
    cp: Any, lower: np.ndarray, m: int, alpha: float, r: float, scale: _Scale
) -> tuple[Any, _Recover]:
    """HD with α > 0 (and HR at r = 0, the same linear program).

    Minimises Σ_i P_i d_i / N over Q ∈ [0, 1] on the samples below the maximum, the moved mass
    A = Σ_i (1 − Q_i) ≤ N α onto the pool (Q_0 = m + A), and P with Σ P = N and KL(q‖p) ≤ r, i.e.
    Σ_i Q_i log(Q_i/P_i) + Q_0 log(Q_0/P_0) ≤ N r; or P = Q when r = 0 (the KL ≤ 0 cone has no interior).
    """
    n = lower.size + m
    kept = cp.Variable(lower.size)  # Q_i, already O(1)
    moved = lower.size - cp.sum(kept)
    size = cp.Variable(lower.size)  # P_i / s_i
    pool = cp.Variable()  # P_0 / s_0
    constraints = [kept <= 1, moved <= n * alpha, scale.lower @ size + scale.pool * pool == n]
    if r == 0.0:
        constraints += [kept >= 0, cp.multiply(scale.lower, size) == kept, scale.pool * pool == m + moved]
    else:
        # rel_entr(Q, s·y) = rel_entr(Q, y) − Q log s and rel_entr(a·w, s·z) = a·rel_entr(w, z) + a·w log(a/s)
        # keep each cone's entries O(1). rel_entr's cone implies Q ≥ 0 and P ≥ 0; restating them stalls
        # Clarabel.
        size_q0 = m + n * alpha
        divergence = (
            cp.sum(cp.rel_entr(kept, size))
            - np.log(scale.lower) @ kept
            + size_q0 * cp.rel_entr((m + moved) / size_q0, pool)
            + (m + moved) * math.log(size_q0 / scale.pool)
        )
        constraints.append(divergence <= n * r)
    problem = cp.Problem(cp.Minimize((lower * scale.lower) @ size / n), constraints)

    def recover() -> tuple[_Masses, _Masses]:
        kept_value = np.asarray(kept.value)
        moved_value = max(float(lower.size - kept_value.sum()), 0.0)
        pool_value = scale.pool * float(pool.value)
        # Split the pool in proportion to q (m for the tied maxima, the moved mass for the worst atom).
        share = m / (m + moved_value) if m + moved_value > 0.0 else 0.0
        intermediate = _Masses(kept_value, float(m), moved_value)
        maximiser = _Masses(
            scale.lower * np.asarray(size.value), share * pool_value, (1 - share) * pool_value
        )
        return intermediate, maximiser

    return problem, recover


def _hr_program(
    cp: Any, lower: np.ndarray, m: int, alpha: float, r: float, scale: _Scale
) -> tuple[Any, _Recover]:
    """HR with α > 0 and r > 0.

    Minimises Σ_i P_i d_i / N over Q with Σ Q = N and KL(P̂‖q) ≤ r (as in the α = 0 program), and
    0 ≤ P_i ≤ Q_i with Σ_i (Q_i − P_i) ≤ N α moved onto the worst atom.
    """
    n = lower.size + m
    ball = cp.Variable(lower.size)  # Q_i / s_i
    pool = cp.Variable()  # Q_0 / s_0
    size = cp.Variable(lower.size)  # P_i / s_i
    constraints = [
        scale.lower @ ball + scale.pool * pool == n,
        size >= 0,
        size <= ball,
        scale.lower @ (ball - size) <= n * alpha,
        *_kl_to_uniform_at_most(cp, ball, pool, scale, m, r),
    ]
    problem = cp.Problem(cp.Minimize((lower * scale.lower) @ size / n), constraints)

    def recover() -> tuple[_Masses, _Masses]:
        ball_value = scale.lower * np.asarray(ball.value)
        size_value = scale.lower * np.asarray(size.value)
        pool_value = scale.pool * float(pool.value)
        moved = float(np.sum(ball_value - size_value))
        # With m ≥ 1 the whole pool of q sits on the tied maxima (P̂ puts nothing on the worst atom).
        tied, worst = (pool_value, 0.0) if m else (0.0, pool_value)
        return _Masses(ball_value, tied, worst), _Masses(size_value, tied, worst + moved)

    return problem, recover


def _kl_to_uniform_at_most(cp: Any, size: Any, pool: Any, scale: _Scale, m: int, r: float) -> list[Any]:
    """Constraints stating KL(P̂‖q) ≤ r for scaled masses Q_i = s_i·x_i and pool Q_0 = s_0·z.

    Computes Σ_i log x_i + m log z ≥ −N r − Σ_i log s_i − m log(s_0/m), i.e. (1/N) Σ log(N q_i) ≥ −r.
    With m = 0 the pool is the worst atom, where P̂ has no mass: only z ≥ 0.
    """
    n = scale.lower.size + m
    bound = -n * r - float(np.sum(np.log(scale.lower)))
    if m:
        bound -= m * math.log(scale.pool / m)
        return [cp.sum(cp.log(size)) + m * cp.log(pool) >= bound]
    return [cp.sum(cp.log(size)) >= bound, pool >= 0]


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
        extra={
            "divergence": divergence,
            "iterations": float(normalised.iterations),
            "tolerance": normalised.tolerance,
        },
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
