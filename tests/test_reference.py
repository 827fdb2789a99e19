"""Sanity tests of the cvxpy oracle ``hrcore.reference`` on cases derived by hand or by an independent dual.

None of these tests uses the exact solver: the oracle must stand on its own before it can judge anything.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from frameworks import require

cvxpy = require("cvxpy")
require("clarabel")
scipy_optimize = require("scipy.optimize")

from hrcore import reference  # noqa: E402  (after the skip-or-fail import of cvxpy)
from hrcore.reference import ReferenceInaccurate, solve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AMBIGUITIES = ("HD", "HR")
# At the oracle's default tolerance (gap 1e-10) its weights are good to ~1e-6: an objective gap δ moves the
# maximiser of these strictly concave-in-p programs by O(√δ). Values are good to ~1e-9 relative.
WEIGHT_ATOL = 2e-6


def lognormal(n: int, seed: int) -> np.ndarray:
    """Cross-entropy-like losses without ties."""
    return np.random.default_rng(seed).lognormal(-1.0, 1.0, n)


def kl(first: np.ndarray, second: np.ndarray) -> float:
    """KL(a‖b) = Σ_{a_i > 0} a_i log(a_i / b_i)."""
    support = first > 0
    return float(np.sum(first[support] * np.log(first[support] / second[support])))


def kl_ball_dual(values: np.ndarray, weights: np.ndarray, r: float, floor: float) -> tuple[float, float]:
    """The 1-D dual of max{E_p v : KL(w‖p) ≤ r}: min over η ≥ floor of η − e^{−r} Π (η − v_i)^{w_i}.

    The KL-ball lemma, independent of any conic solver. Returns the minimum and the minimiser η*, found by
    bounded Brent on an interval that contains it.
    """
    support = weights > 0
    values, weights = values[support], weights[support]

    def dual(eta: float) -> float:
        with np.errstate(divide="ignore"):
            return eta - math.exp(-r + float(weights @ np.log(np.maximum(eta - values, 0.0))))

    # The minimiser lies below floor + E_w(floor − v)/expm1(r); pad it generously.
    spread = floor - values.min()
    upper = floor + 2.0 * float(weights @ (floor - values)) / math.expm1(r) + spread
    result = scipy_optimize.minimize_scalar(
        dual, bounds=(floor, upper), method="bounded", options={"xatol": 1e-13 * max(1.0, abs(upper))}
    )
    return min(float(result.fun), dual(floor)), float(result.x)


def trimmed(losses: np.ndarray, alpha: float) -> np.ndarray:
    """HD's inner q* for distinct losses: α of P̂'s mass moved from the lowest losses to the atom (N+1,)."""
    n = losses.size
    q = np.empty(n + 1)
    q[np.argsort(losses)] = np.clip(np.arange(1, n + 1) / n - alpha, 0.0, 1.0 / n)
    q[n] = alpha
    return q


# --------------------------------------------------------------------------------------------------
# Hand-derived cases
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ambiguity", AMBIGUITIES)
@pytest.mark.parametrize("k", [1, 3])
def test_r0_is_a_trimmed_top_heavy_mean(ambiguity: str, k: int) -> None:
    losses = lognormal(10, seed=k)
    n = losses.size
    solution = solve(losses, alpha=k / n, r=0.0, ambiguity=ambiguity)
    order = np.argsort(losses)
    lowest, kept, top = order[:k], order[k:], order[-1]
    assert np.allclose(solution.weights[lowest], 0.0, atol=1e-7)
    expected = np.full(n, 1.0 / n)
    expected[lowest] = 0.0
    expected[top] += k / n  # the worst atom, folded onto the maximum
    np.testing.assert_allclose(solution.weights, expected, atol=1e-7)
    assert solution.worst_weight == pytest.approx(k / n, abs=1e-9)
    assert solution.removed_mass == pytest.approx(k / n, abs=1e-9)
    assert solution.value == pytest.approx((losses[kept].sum() + k * losses.max()) / n, rel=1e-9)
    assert solution.solver == "cvxpy"


@pytest.mark.parametrize("ambiguity", AMBIGUITIES)
def test_alpha0_r0_is_the_mean(ambiguity: str) -> None:
    losses = lognormal(7, seed=1)
    solution = solve(losses, alpha=0.0, r=0.0, ambiguity=ambiguity)
    np.testing.assert_allclose(solution.weights, 1.0 / 7, atol=1e-10)
    assert solution.value == pytest.approx(losses.mean(), rel=1e-10)
    assert solution.effective_sample_size == pytest.approx(7.0, rel=1e-8)


@pytest.mark.parametrize("ambiguity", AMBIGUITIES)
@pytest.mark.parametrize(("alpha", "r"), [(0.0, 0.0), (0.05, 0.1), (0.5, 1.0)])
def test_all_equal_losses_give_the_loss_and_uniform_weights(ambiguity: str, alpha: float, r: float) -> None:
    solution = solve(np.full(6, 2.5), alpha=alpha, r=r, ambiguity=ambiguity)
    assert solution.value == 2.5
    np.testing.assert_allclose(solution.weights, 1.0 / 6, rtol=1e-15)
    assert solution.worst_weight == 0.0


@pytest.mark.parametrize("ambiguity", AMBIGUITIES)
def test_single_sample(ambiguity: str) -> None:
    solution = solve([0.7], alpha=0.3, r=0.5, ambiguity=ambiguity)
    assert solution.value == 0.7
    np.testing.assert_allclose(solution.weights, [1.0], rtol=1e-15)


def test_hd_value_is_the_maximum_once_alpha_covers_every_lower_sample() -> None:
    # N = 2, one sample at the max: α ≥ 1 − m/N = 1/2 moves all lower mass onto the worst atom.
    solution = solve([1.0, 2.0], alpha=0.5, r=0.1, ambiguity="HD")
    assert solution.value == pytest.approx(2.0, abs=1e-9)
    np.testing.assert_allclose(solution.weights, [0.0, 1.0], atol=1e-8)


def test_hr_value_is_the_maximum_exactly_when_the_binary_kl_fits() -> None:
    # HR reaches V = M iff kl(b‖α) ≤ r with b = 1 − m/N: here b = 1/2, α = 0.2.
    b, alpha = 0.5, 0.2
    boundary = b * math.log(b / alpha) + (1 - b) * math.log((1 - b) / (1 - alpha))
    above = solve([1.0, 2.0], alpha=alpha, r=boundary + 0.05, ambiguity="HR")
    below = solve([1.0, 2.0], alpha=alpha, r=boundary - 0.05, ambiguity="HR")
    assert above.value == pytest.approx(2.0, abs=1e-8)
    assert below.value < 2.0 - 1e-3


# --------------------------------------------------------------------------------------------------
# The KL ball against its independent 1-D dual (α = 0)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ambiguity", AMBIGUITIES)
@pytest.mark.parametrize("r", [0.01, 0.1, 1.0])
def test_alpha0_matches_the_kl_ball_dual(ambiguity: str, r: float) -> None:
    losses = lognormal(20, seed=int(r * 100))
    uniform = np.full(20, 1.0 / 20)
    solution = solve(losses, alpha=0.0, r=r, ambiguity=ambiguity)
    value, eta = kl_ball_dual(losses, uniform, r, floor=losses.max())
    assert solution.value == pytest.approx(value, rel=1e-7)
    # The lemma's maximiser: p_i = λ (1/N)/(η* − ℓ_i), λ = e^{−r} Π (η* − ℓ_i)^{1/N}.
    lam = math.exp(-r + float(np.mean(np.log(eta - losses))))
    np.testing.assert_allclose(solution.weights, lam * uniform / (eta - losses), atol=WEIGHT_ATOL)


@pytest.mark.parametrize("alpha", [0.1, 0.05])  # 3 and 1.5 samples' worth of mass: whole and partial removal
@pytest.mark.parametrize("r", [0.01, 0.5])
def test_hd_matches_the_kl_ball_dual_around_the_trimmed_distribution(alpha: float, r: float) -> None:
    losses = lognormal(30, seed=41)
    q = trimmed(losses, alpha)
    atoms = np.append(losses, losses.max())
    solution = solve(losses, alpha=alpha, r=r, ambiguity="HD")
    value, eta = kl_ball_dual(atoms, q, r, floor=losses.max())
    assert solution.value == pytest.approx(value, rel=1e-7)
    lam = math.exp(-r + float(q[:-1] @ np.log(eta - losses) + alpha * math.log(eta - losses.max())))
    p = lam * q / (eta - atoms)
    folded = p[:-1].copy()
    folded[np.argmax(losses)] += p[-1]
    np.testing.assert_allclose(solution.weights, folded, atol=WEIGHT_ATOL)
    assert solution.worst_weight == pytest.approx(p[-1], abs=WEIGHT_ATOL)


@pytest.mark.parametrize(("ambiguity", "alpha"), [("HD", 0.0), ("HR", 0.0), ("HD", 0.05)])
def test_batches_where_a_few_samples_take_most_mass(ambiguity: str, alpha: float) -> None:
    # Lognormal(0, 1) batches of 512 at r = 1: unit-scaled exponential cones made Clarabel stall on about a
    # quarter of these; the scaled statement must solve them accurately.
    losses = np.random.default_rng(44).lognormal(0.0, 1.0, 512)  # unit scales stall Clarabel on this one
    solution = solve(losses, alpha=alpha, r=1.0, ambiguity=ambiguity)
    q = trimmed(losses, alpha)
    value, _ = kl_ball_dual(np.append(losses, losses.max()), q, 1.0, floor=losses.max())
    assert solution.value == pytest.approx(value, rel=1e-7)
    assert solution.weights.max() > 0.1  # the regime in question: mass concentrated near the maximum


@pytest.mark.parametrize("ambiguity", AMBIGUITIES)
def test_alpha0_upper_bound_matches_the_kl_ball_dual(ambiguity: str) -> None:
    losses = lognormal(15, seed=3)
    bound = losses.max() + 1.0
    solution = solve(losses, alpha=0.0, r=0.2, ambiguity=ambiguity, upper_bound=bound)
    value, _ = kl_ball_dual(losses, np.full(15, 1.0 / 15), 0.2, floor=bound)
    assert solution.value == pytest.approx(value, rel=1e-7)


# --------------------------------------------------------------------------------------------------
# upper_bound semantics (the worst atom is a separate point at B, never folded)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ambiguity", AMBIGUITIES)
@pytest.mark.parametrize("r", [0.05, 0.5])
def test_zero_one_losses_all_correct_alpha0(ambiguity: str, r: float) -> None:
    # Every sample at 0, B = 1: the KL ball moves 1 − e^{−r} of the mass to B (the boundary case η* = B).
    solution = solve(np.zeros(8), alpha=0.0, r=r, ambiguity=ambiguity, upper_bound=1.0)
    assert solution.value == pytest.approx(1.0 - math.exp(-r), rel=1e-7)
    np.testing.assert_allclose(solution.weights, math.exp(-r) / 8, rtol=1e-6)
    assert solution.worst_weight == pytest.approx(1.0 - math.exp(-r), rel=1e-6)


@pytest.mark.parametrize("r", [0.05, 0.5])
def test_zero_one_losses_all_correct_with_poisoning(r: float) -> None:
    alpha = 0.1
    # HR: q = e^{−r} P̂ on the samples (the rest on B), then α of it moves to B.
    hr = solve(np.zeros(8), alpha=alpha, r=r, ambiguity="HR", upper_bound=1.0)
    assert hr.value == pytest.approx(1.0 - math.exp(-r) + alpha, rel=1e-7)
    # HD: q = ((1 − α)/N, ..., α on B); by symmetry p = ((1 − t)/N, ..., t) with KL(q‖p) = r, V = t.
    hd = solve(np.zeros(8), alpha=alpha, r=r, ambiguity="HD", upper_bound=1.0)

    def gap(t: float) -> float:
        return (1 - alpha) * math.log((1 - alpha) / (1 - t)) + alpha * math.log(alpha / t) - r

    t = scipy_optimize.brentq(gap, alpha, 1.0 - 1e-15, xtol=1e-15)
    assert hd.value == pytest.approx(t, rel=1e-7)
    assert hd.removed_mass == pytest.approx(alpha, abs=1e-9)


@pytest.mark.parametrize("ambiguity", AMBIGUITIES)
def test_upper_bound_is_not_folded(ambiguity: str) -> None:
    losses = lognormal(12, seed=5)
    bound = 2.0 * losses.max()
    solution = solve(losses, alpha=0.1, r=0.1, ambiguity=ambiguity, upper_bound=bound)
    assert solution.upper_bound == bound and solution.worst_value == bound
    assert solution.worst_weight > 0.1  # at least the α moved onto B
    np.testing.assert_allclose(solution.weights, solution.sample_weights)
    assert solution.weights.sum() == pytest.approx(1.0 - solution.worst_weight, abs=1e-12)
    assert solution.value == pytest.approx(
        solution.weights @ losses + solution.worst_weight * bound, rel=1e-12
    )
    assert solution.value > solve(losses, alpha=0.1, r=0.1, ambiguity=ambiguity).value


def test_upper_bound_below_the_largest_loss_is_rejected() -> None:
    with pytest.raises(ValueError, match="lies below the largest loss"):
        solve([0.1, 0.9], upper_bound=0.5)
    with pytest.raises(ValueError, match="upper_bound must be finite"):
        solve([0.1, 0.9], upper_bound=math.inf)


# --------------------------------------------------------------------------------------------------
# Feasibility and the programs' structure
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("alpha", "r"), [(0.05, 0.1), (0.1, 0.01), (0.2, 1.0)])
def test_hd_is_feasible_and_uses_its_budgets(alpha: float, r: float) -> None:
    losses = lognormal(40, seed=7)
    n = losses.size
    solution = solve(losses, alpha=alpha, r=r, ambiguity="HD")
    p = solution.full_weights
    assert p.min() >= 0.0 and p.sum() == pytest.approx(1.0, abs=1e-12)
    assert solution.removed_mass == pytest.approx(alpha, abs=1e-8)  # the whole budget, from the lowest losses
    # Rebuild the canonical q (α removed from the lowest losses) and check p against the KL ball around it.
    q = trimmed(losses, alpha)
    assert kl(q, p) <= r + 1e-8
    assert kl(q, p) >= r - 1e-6  # the radius is used up: a larger r would raise the value
    assert solution.extra["divergence"] == pytest.approx(kl(q, p), abs=1e-8)
    assert solution.extra["tolerance"] == reference.DEFAULT_TOLERANCE
    assert solution.value == pytest.approx(p[:n] @ losses + p[n] * losses.max(), rel=1e-12)
    assert solution.weights @ losses == pytest.approx(solution.value, rel=1e-12)


@pytest.mark.parametrize(("alpha", "r"), [(0.05, 0.1), (0.1, 0.01), (0.2, 1.0)])
def test_hr_raw_solution_is_feasible(alpha: float, r: float) -> None:
    losses = lognormal(40, seed=8)
    n = losses.size
    distances = (losses.max() - losses) / (losses.max() - losses.min())
    raw = reference._solve_normalised(distances, alpha, r, "HR", 1e-10, None)
    q, p = raw.q, raw.p
    assert raw.status == "optimal"
    assert p.min() >= -1e-10 and q.min() >= -1e-10
    assert p.sum() == pytest.approx(1.0, abs=1e-9) and q.sum() == pytest.approx(1.0, abs=1e-9)
    assert kl(np.append(np.full(n, 1.0 / n), 0.0), q) <= r + 1e-8
    moved = q[:n] - p[:n]
    assert moved.min() >= -1e-9 and moved.sum() <= alpha + 1e-9
    assert p[n] == pytest.approx(q[n] + moved.sum(), abs=1e-12)
    solution = solve(losses, alpha=alpha, r=r, ambiguity="HR")
    assert solution.extra["divergence"] <= r + 1e-8
    assert solution.removed_mass == pytest.approx(alpha, abs=1e-8)


@pytest.mark.parametrize("case", ["alpha0", "r0"])
def test_hd_equals_hr_when_alpha_or_r_is_zero(case: str) -> None:
    losses = lognormal(25, seed=11)
    alpha, r = (0.0, 0.3) if case == "alpha0" else (0.12, 0.0)
    hd = solve(losses, alpha=alpha, r=r, ambiguity="HD")
    hr = solve(losses, alpha=alpha, r=r, ambiguity="HR")
    assert hd.value == pytest.approx(hr.value, rel=1e-7)
    np.testing.assert_allclose(hd.weights, hr.weights, atol=WEIGHT_ATOL)


@pytest.mark.parametrize("ambiguity", AMBIGUITIES)
def test_value_grows_with_r_and_alpha(ambiguity: str) -> None:
    losses = lognormal(16, seed=13)
    by_r = [solve(losses, alpha=0.05, r=r, ambiguity=ambiguity).value for r in (0.0, 0.05, 0.2, 0.8)]
    by_alpha = [solve(losses, alpha=a, r=0.1, ambiguity=ambiguity).value for a in (0.0, 0.05, 0.2)]
    assert np.all(np.diff(by_r) > 0) and np.all(np.diff(by_alpha) > 0)
    assert losses.mean() < by_r[0] and by_r[-1] < losses.max()


@pytest.mark.parametrize("ambiguity", AMBIGUITIES)
def test_affine_and_permutation_equivariance(ambiguity: str) -> None:
    losses = lognormal(18, seed=17)
    base = solve(losses, alpha=0.1, r=0.2, ambiguity=ambiguity)
    scaled = solve(1e3 * losses + 5.0, alpha=0.1, r=0.2, ambiguity=ambiguity)
    assert scaled.value == pytest.approx(1e3 * base.value + 5.0, rel=1e-9)
    np.testing.assert_allclose(scaled.weights, base.weights, atol=WEIGHT_ATOL)
    order = np.random.default_rng(0).permutation(losses.size)
    permuted = solve(losses[order], alpha=0.1, r=0.2, ambiguity=ambiguity)
    np.testing.assert_allclose(permuted.weights, base.weights[order], atol=WEIGHT_ATOL)


@pytest.mark.parametrize("ambiguity", AMBIGUITIES)
def test_tied_losses_share_their_weight_equally(ambiguity: str) -> None:
    losses = np.array([1.0, 3.0, 2.0, 1.0, 2.0, 2.0, 3.0, 0.5])
    solution = solve(losses, alpha=0.2, r=0.1, ambiguity=ambiguity)
    for value in np.unique(losses):
        group = solution.weights[losses == value]
        np.testing.assert_allclose(group, group[0], rtol=1e-12, atol=0)
    assert solution.weights.sum() == pytest.approx(1.0, abs=1e-12)
    # Nothing is removed from samples already at the maximum: the removed mass comes from below it.
    assert solution.removed_mass == pytest.approx(0.2, abs=1e-8)


# --------------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ambiguity", AMBIGUITIES)
def test_masked_entries_are_excluded(ambiguity: str) -> None:
    losses = lognormal(12, seed=19)
    losses[3] = 100.0  # masked: must not become the worst atom
    mask = np.ones(12, dtype=bool)
    mask[[3, 8]] = False
    masked = solve(losses, alpha=0.1, r=0.1, ambiguity=ambiguity, mask=mask)
    subset = solve(losses[mask], alpha=0.1, r=0.1, ambiguity=ambiguity)
    assert masked.value == pytest.approx(subset.value, rel=1e-9)
    assert masked.weights[3] == 0.0 and masked.weights[8] == 0.0
    np.testing.assert_allclose(masked.weights[mask], subset.weights, atol=WEIGHT_ATOL)
    assert masked.worst_value == losses[mask].max()


def test_masked_entries_may_hold_non_finite_padding() -> None:
    losses = np.array([0.3, math.nan, 0.9, math.inf, 0.5])
    mask = np.isfinite(losses)
    solution = solve(losses, alpha=0.0, r=0.0, mask=mask)
    np.testing.assert_allclose(solution.weights, [1 / 3, 0.0, 1 / 3, 0.0, 1 / 3], atol=1e-9)
    with pytest.raises(ValueError, match="NaN/inf at 2 position"):
        solve(losses)


def test_masked_entries_do_not_consume_alpha() -> None:
    # 10 included samples, α = 2/10 at r = 0: exactly the two lowest INCLUDED losses are trimmed.
    losses = np.concatenate([lognormal(10, seed=23) + 1.0, [0.0, 0.0, 0.0]])
    mask = np.arange(13) < 10
    solution = solve(losses, alpha=0.2, r=0.0, mask=mask.astype(int))
    lowest = np.argsort(losses[:10])[:2]
    assert np.allclose(solution.weights[lowest], 0.0, atol=1e-7)
    assert np.count_nonzero(solution.weights > 1e-6) == 8
    assert solution.value == pytest.approx(
        (np.sort(losses[:10])[2:].sum() + 2 * losses[:10].max()) / 10, rel=1e-9
    )


# --------------------------------------------------------------------------------------------------
# Errors, statuses and the lazy import
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"losses": 1.5}, ValueError, 'reduction="none"'),
        ({"losses": np.ones((2, 3))}, ValueError, "1-D array"),
        ({"losses": []}, ValueError, "empty batch"),
        ({"losses": [1.0, math.nan]}, ValueError, "NaN"),
        ({"losses": [1.0, math.inf]}, ValueError, "inf"),
        ({"losses": ["a", "b"]}, TypeError, "real numbers"),
        ({"alpha": 1.0}, ValueError, r"must lie in \[0, 1\)"),
        ({"alpha": -0.1}, ValueError, "poisoning fraction"),
        ({"alpha": True}, TypeError, "alpha must be a real number"),
        ({"r": -1.0}, ValueError, "KL radius"),
        ({"r": math.nan}, ValueError, "got NaN"),
        ({"ambiguity": "KL"}, ValueError, "ambiguity must be one of"),
        ({"mask": [False, False, False]}, ValueError, "excludes every loss"),
        ({"mask": [True, False]}, ValueError, "mask must have the losses' shape"),
        ({"mask": [0.5, 1.0, 1.0]}, TypeError, "mask must be boolean"),
        ({"upper_bound": 0.5}, ValueError, "lies below the largest loss"),
        ({"tolerance": 0.0}, ValueError, r"tolerance .* must lie in \(0, 1\)"),
    ],
)
def test_bad_input_messages(kwargs: dict, error: type[Exception], match: str) -> None:
    arguments = {"losses": [0.1, 0.5, 0.9], **kwargs}
    with pytest.raises(error, match=match):
        solve(**arguments)


def test_lowercase_ambiguity_is_accepted() -> None:
    losses = lognormal(6, seed=29)
    assert solve(losses, ambiguity="hr").ambiguity == "HR"


def test_solver_failure_raises_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="status 'user_limit'") as caught:
        solve(lognormal(30, seed=31), solver_options={"max_iter": 2})
    assert not isinstance(caught.value, ReferenceInaccurate)


def test_inaccurate_status_is_distinguishable() -> None:
    # Unreachable full tolerances: Clarabel stops at its reduced ones and reports "optimal_inaccurate".
    unreachable = {"tol_gap_abs": 1e-300, "tol_gap_rel": 1e-300, "tol_feas": 1e-300, "max_iter": 60}
    losses = lognormal(30, seed=37)
    with pytest.raises(ReferenceInaccurate, match="reduced tolerances") as caught:
        solve(losses, solver_options=unreachable)
    assert caught.value.status == "optimal_inaccurate"
    assert caught.value.solution.value == pytest.approx(solve(losses).value, rel=1e-4)


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )


def test_import_does_not_load_cvxpy() -> None:
    result = _run_python("import sys, hrcore.reference; print('cvxpy' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_missing_cvxpy_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['cvxpy'] = None\n"
        "from hrcore.reference import solve\n"
        "try:\n    solve([0.1, 0.2, 0.3])\n"
        "except ImportError as error:\n    print(error)\n"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert "pip install 'hrcore[reference]'" in result.stdout


@pytest.mark.slow
def test_weight_benchmark_smoke_runs() -> None:
    script = ROOT / "benchmarks" / "bench_weights.py"
    result = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT / "benchmarks",
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line[:5].strip().isdigit()]
    table = [row for row in rows if len(row) > 8]  # the timing table, not the oracle's
    assert {(int(row[0]), row[1]) for row in table} == {
        (n, a) for n in (32, 128, 512, 2048) for a in AMBIGUITIES
    }
    assert all(float(row[6].rstrip("×")) > 1.0 for row in table)  # the exact solver beats the conic path
