"""The exact HD/HR solver against the cvxpy reference, its properties, and its input checks."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from frameworks import require
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import alphas, ambiguities, loss_batches, oracle_radii, radii

import hrcore
from hrcore import compiled, reference
from hrcore.kl_dual import DIRECT_RADIUS
from hrcore.programs import binary_kl
from hrcore.reference import ReferenceInaccurate

VALUE_RTOL = 1e-7
TOTAL_ATOL = 1e-5
ORACLE_RESOLUTION = 1e-5
ORACLE_TOLERANCES = (1e-10, 1e-12, 1e-13)


@pytest.fixture(autouse=True, scope="module", params=["compiled", "numpy"])
def solver_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test of this module runs on both paths of ``solve``: the numba kernel where it applies, and numpy.

    Module-scoped (hypothesis refuses function-scoped fixtures): the whole module runs once per path.
    """
    if request.param == "compiled" and not compiled.available():
        require("numba")  # fails under CI=true, skips locally
        pytest.fail("numba imports but hrcore.compiled is not available (HRCORE_COMPILED=0?)")
    saved = compiled.ENABLED
    compiled.ENABLED = request.param == "compiled"
    yield request.param
    compiled.ENABLED = saved


# Oracle outcomes across the comparison tests, checked by test_oracle_skips_are_rare (same file, runs after).
ORACLE = {"compared": 0, "inaccurate": 0}


def value_scale(losses: np.ndarray, value: float, upper_bound: float | None = None) -> float:
    """The scale a relative value error is measured against: |V|, or the spread S = M − min ℓ near V = 0."""
    top = float(losses.max()) if upper_bound is None else upper_bound
    return max(abs(value), top - float(losses.min()), np.finfo(float).tiny)


def resolvable_clusters(losses: np.ndarray, upper_bound: float | None = None) -> list[np.ndarray]:
    """Masks of the distinct losses as the oracle can tell them apart.

    Exactly tied losses form one group. The oracle also cannot order losses whose normalised values
    d = (M − ℓ)/S differ by a small gap g: moving weight δ between them changes V by only δ·g·S, so at
    its value tolerance (~1e-10·S) it can misplace δ ≈ 1e-10/g; for δ under the 1e-5 totals tolerance, g
    must exceed 1e-5. Closer losses are merged and compared by their total weight.
    """
    top = float(losses.max()) if upper_bound is None else upper_bound
    spread = top - float(losses.min())
    distinct = np.unique(losses)
    if spread == 0.0:
        return [losses == distinct[0]]
    starts = np.flatnonzero(np.diff(distinct) / spread > ORACLE_RESOLUTION) + 1
    return [np.isin(losses, block) for block in np.split(distinct, starts)]


def assert_matches_reference(
    losses: np.ndarray, alpha: float, r: float, ambiguity: str, **kw: object
) -> None:
    exact = hrcore.solve(losses, alpha, r, ambiguity, **kw)
    bound = kw.get("upper_bound")
    oracle = consult_oracle(losses, alpha, r, ambiguity, ORACLE_TOLERANCES[0], **kw)
    for tolerance in ORACLE_TOLERANCES[1:]:
        if agrees(losses, exact, oracle, bound):
            break
        # Interior-point solutions drift on adversarial near-degenerate instances (near-ties far below an
        # upper bound); a disagreement is settled by the oracle run tighter, never by loosening the check.
        oracle = consult_oracle(losses, alpha, r, ambiguity, tolerance, **kw)
    if not agrees(losses, exact, oracle, bound) and exact.value > oracle.value:
        # Our maximiser is a feasible point with a higher objective than the oracle's "optimum": the oracle is
        # the inaccurate side (seen on near-ties far below an upper bound, even at tolerance 1e-13).
        assert divergence_needed(losses, exact, alpha, ambiguity) <= r + 1e-12
        ORACLE["inaccurate"] += 1
        assume(False)
    ORACLE["compared"] += 1
    assert abs(exact.value - oracle.value) <= VALUE_RTOL * value_scale(losses, oracle.value, bound)
    ours, theirs = comparable_totals(losses, exact, bound), comparable_totals(losses, oracle, bound)
    np.testing.assert_allclose(ours, theirs, rtol=0.0, atol=TOTAL_ATOL)
    assert exact.worst_weight >= 0.0


def comparable_totals(losses: np.ndarray, solution: hrcore.HRSolution, bound: float | None) -> np.ndarray:
    """Weight totals the optimum determines: per resolvable cluster of losses, then the worst atom.

    An upper bound equal to the largest loss puts the worst atom on the same value as the samples at the
    maximum: only their joint total is determined, so the atom joins that cluster.
    """
    clusters = resolvable_clusters(losses, bound)
    totals = [float(solution.weights[cluster].sum()) for cluster in clusters]
    if bound is None:
        return np.array(totals)
    if bound == losses.max():
        top = next(i for i, cluster in enumerate(clusters) if cluster[np.argmax(losses)])
        totals[top] += solution.worst_weight
        return np.array(totals)
    return np.array([*totals, solution.worst_weight])


def divergence_needed(losses: np.ndarray, solution: hrcore.HRSolution, alpha: float, ambiguity: str) -> float:
    """The smallest KL divergence that puts the solution's unfolded p inside the ambiguity set.

    HD: KL(q‖p) for q = P̂ with min(α, 1 − m/N) of its mass moved off the lowest losses onto the worst atom
    (a feasible q, so an upper bound on the minimum). HR: min KL(P̂‖q) over the q that p can come from
    (q ≥ p on the samples, at most min(α, p_{N+1}) added back), exactly, by water-filling.
    """
    p = solution.sample_weights
    n = p.size
    if ambiguity == "HD" or alpha == 0.0:
        order = np.argsort(losses, kind="stable")
        # Samples at the worst atom's value (the maximum, or B when it equals the maximum) are never trimmed.
        at_max = int(np.sum(losses == solution.worst_value))
        moved = min(alpha, 1.0 - at_max / n)
        ranks = np.empty(n)
        ranks[order] = np.arange(1, n + 1)
        q = np.clip(ranks / n - moved, 0.0, 1.0 / n)
        # ranks/N − moved leaves a rounding residue (~1e-17) where the cut is exact, e.g. when α covers every
        # sample below the maximum: that sample has q = 0 exactly.
        q[q < 1e-12 / n] = 0.0
        for value in np.unique(losses):  # equal split inside a tie group
            q[losses == value] = q[losses == value].mean()
        q_all, p_all = np.append(q, moved), np.append(p, solution.worst_weight)
        support = q_all > 0
        with np.errstate(divide="ignore"):
            return float(np.sum(q_all[support] * np.log(q_all[support] / p_all[support])))
    budget = min(alpha, solution.worst_weight)
    low, high = 0.0, 1.0
    for _ in range(200):
        level = 0.5 * (low + high)
        low, high = (level, high) if np.maximum(p, level).sum() - p.sum() <= budget else (low, level)
    return float(np.mean(np.log((1.0 / n) / np.maximum(p, low))))


def consult_oracle(
    losses: np.ndarray, alpha: float, r: float, ambiguity: str, tolerance: float, **kw: object
) -> hrcore.HRSolution:
    try:
        return reference.solve(losses, alpha, r, ambiguity, tolerance=tolerance, **kw)
    except (ReferenceInaccurate, RuntimeError):
        # Clarabel stopped at reduced accuracy, or gave up: the oracle cannot vouch for this instance.
        ORACLE["inaccurate"] += 1
        assume(False)
        raise


def agrees(
    losses: np.ndarray, exact: hrcore.HRSolution, oracle: hrcore.HRSolution, bound: float | None
) -> bool:
    if abs(exact.value - oracle.value) > VALUE_RTOL * value_scale(losses, oracle.value, bound):
        return False
    gaps = comparable_totals(losses, exact, bound) - comparable_totals(losses, oracle, bound)
    return bool(np.all(np.abs(gaps) <= TOTAL_ATOL))


def assert_feasible(losses: np.ndarray, solution: hrcore.HRSolution) -> None:
    w = solution.weights
    assert w.shape == losses.shape and w.dtype == np.float64
    assert np.all(w >= 0.0)
    total = w.sum() + (solution.worst_weight if solution.upper_bound is not None else 0.0)
    assert total == pytest.approx(1.0, abs=1e-12)
    # Equal split inside tie groups (the canonical choice).
    for v in np.unique(losses):
        group = w[losses == v]
        assert np.ptp(group) <= 1e-12 * max(1.0, group.max())
    robust = float(w @ losses) + (
        solution.worst_weight * solution.upper_bound if solution.upper_bound is not None else 0.0
    )
    scale = value_scale(losses, solution.value, solution.upper_bound)
    assert robust == pytest.approx(solution.value, rel=1e-9, abs=1e-9 * scale)


@settings(max_examples=160)
@given(losses=loss_batches(), alpha=alphas, r=oracle_radii, ambiguity=ambiguities)
def test_matches_cvxpy_reference(losses: np.ndarray, alpha: float, r: float, ambiguity: str) -> None:
    solution = hrcore.solve(losses, alpha, r, ambiguity)
    assert_feasible(losses, solution)
    assert divergence_needed(losses, solution, alpha, ambiguity) <= r + 1e-9
    assert_matches_reference(losses, alpha, r, ambiguity)


@settings(max_examples=60)
@given(
    losses=loss_batches(max_size=128),
    alpha=alphas,
    r=oracle_radii,
    ambiguity=ambiguities,
    headroom=st.sampled_from([0.0, 1e-3, 0.5, 5.0]),
)
def test_upper_bound_matches_cvxpy_reference(
    losses: np.ndarray, alpha: float, r: float, ambiguity: str, headroom: float
) -> None:
    bound = float(losses.max() + headroom * max(1.0, abs(losses.max())))
    solution = hrcore.solve(losses, alpha, r, ambiguity, upper_bound=bound)
    assert_feasible(losses, solution)
    assert divergence_needed(losses, solution, alpha, ambiguity) <= r + 1e-9
    assert_matches_reference(losses, alpha, r, ambiguity, upper_bound=bound)


@pytest.mark.parametrize("ambiguity", ["HD", "HR"])
@pytest.mark.parametrize(("alpha", "r"), [(0.05, 0.1), (0.1, 0.01), (0.3, 1.0)])
@pytest.mark.parametrize("shape", ["lognormal", "ties"])
def test_full_size_batches_match_cvxpy_reference(ambiguity: str, alpha: float, r: float, shape: str) -> None:
    # Hypothesis favours small batches: pin the largest size of the test range explicitly.
    rng = np.random.default_rng(512)
    losses = rng.lognormal(size=512) if shape == "lognormal" else rng.integers(0, 6, 512).astype(float)
    assert_matches_reference(losses, alpha, r, ambiguity)


def test_oracle_skips_are_rare() -> None:
    total = ORACLE["compared"] + ORACLE["inaccurate"]
    if total == 0:
        pytest.skip("run together with the comparison tests above")
    assert ORACLE["inaccurate"] <= 0.05 * total, ORACLE


@settings(max_examples=80)
@given(losses=loss_batches(max_size=256), alpha=alphas, r=radii, ambiguity=ambiguities)
def test_monotone_in_alpha_and_r(losses: np.ndarray, alpha: float, r: float, ambiguity: str) -> None:
    base = hrcore.solve(losses, alpha, r, ambiguity).value
    scale = value_scale(losses, base)
    assert hrcore.solve(losses, min(alpha + 0.05, 0.99), r, ambiguity).value >= base - 1e-12 * scale
    assert hrcore.solve(losses, alpha, r + 0.05, ambiguity).value >= base - 1e-12 * scale
    assert base >= float(np.mean(losses)) - 1e-12 * scale
    assert base <= float(losses.max()) + 1e-12 * scale


@settings(max_examples=80)
@given(
    losses=loss_batches(max_size=256),
    alpha=alphas,
    r=radii,
    ambiguity=ambiguities,
    shift=st.floats(-100.0, 100.0),
    scale=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**16),
)
def test_shift_scale_permutation_equivariance(
    losses: np.ndarray, alpha: float, r: float, ambiguity: str, shift: float, scale: float, seed: int
) -> None:
    base = hrcore.solve(losses, alpha, r, ambiguity)
    moved = hrcore.solve(scale * losses + shift, alpha, r, ambiguity)
    # Ties must survive the affine map for the weights to be comparable one by one.
    assume(np.unique(scale * losses + shift).size == np.unique(losses).size)
    expected = scale * base.value + shift
    assert moved.value == pytest.approx(
        expected, rel=1e-9, abs=1e-9 * (abs(shift) + scale * np.ptp(losses) + 1)
    )
    # Rounding the moved losses perturbs the normalised d by ~eps·|shift|/(scale·spread): weights can move by
    # that much whatever the solver does, so the tolerance carries the map's conditioning.
    spread = scale * float(np.ptp(losses))
    conditioning = (abs(shift) + scale * float(np.abs(losses).max())) / spread if spread > 0 else 1.0
    np.testing.assert_allclose(
        moved.weights, base.weights, atol=1e-8 + 100 * np.finfo(float).eps * conditioning
    )
    order = np.random.default_rng(seed).permutation(losses.size)
    permuted = hrcore.solve(losses[order], alpha, r, ambiguity)
    assert permuted.value == pytest.approx(base.value, rel=1e-12, abs=1e-12 * value_scale(losses, base.value))
    np.testing.assert_allclose(permuted.weights, base.weights[order], atol=1e-10)


@settings(max_examples=60)
@given(losses=loss_batches(max_size=256), value=st.floats(0.0, 1.0))
def test_hd_equals_hr_when_alpha_or_r_is_zero(losses: np.ndarray, value: float) -> None:
    for alpha, r in ((0.0, value), (value * 0.9, 0.0)):
        hd, hr = hrcore.solve(losses, alpha, r, "HD"), hrcore.solve(losses, alpha, r, "HR")
        assert hd.value == hr.value
        np.testing.assert_array_equal(hd.weights, hr.weights)


@settings(max_examples=60)
@given(losses=loss_batches(max_size=256), alpha=alphas, ambiguity=ambiguities)
def test_direct_and_series_evaluations_agree_at_their_switch(
    losses: np.ndarray, alpha: float, ambiguity: str
) -> None:
    # From DIRECT_RADIUS up the dual is summed directly, below it by the cancellation-free series: a
    # relative change of 1e-12 in r crosses over and must move nothing beyond what 1e-12 in r moves.
    below = hrcore.solve(losses, alpha, DIRECT_RADIUS * (1.0 - 1e-12), ambiguity)
    above = hrcore.solve(losses, alpha, DIRECT_RADIUS, ambiguity)
    scale = value_scale(losses, above.value)
    assert abs(above.value - below.value) <= 1e-11 * scale
    np.testing.assert_allclose(above.weights, below.weights, rtol=0.0, atol=1e-10)


@pytest.mark.parametrize("r", [1e-4, 0.1])
def test_subnormal_alpha_keeps_its_worst_mass(r: float) -> None:
    # q moves 5e-324 onto the worst atom; p must keep some mass there, or KL(q‖p) is infinite.
    losses = np.array([1.91088506, 0.80936014])
    solution = hrcore.solve(losses, 5e-324, r)
    assert solution.worst_weight > 0.0
    assert divergence_needed(losses, solution, 5e-324, "HD") <= r + 1e-12


def test_zero_alpha_zero_r_is_the_mean() -> None:
    losses = np.array([0.3, 1.2, 0.7, 2.5])
    solution = hrcore.solve(losses, alpha=0.0, r=0.0)
    assert solution.value == pytest.approx(losses.mean(), rel=1e-15)
    np.testing.assert_allclose(solution.weights, 0.25)
    assert solution.effective_sample_size == pytest.approx(4.0)


def test_r_zero_is_the_trimmed_top_heavy_mean() -> None:
    losses = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    solution = hrcore.solve(losses, alpha=0.4, r=0.0)
    # The two lowest losses lose their mass to the worst atom, folded onto the maximum (5.0).
    np.testing.assert_allclose(solution.weights, [0.6, 0.0, 0.2, 0.0, 0.2], atol=1e-15)
    assert solution.value == pytest.approx(0.6 * 5 + 0.2 * 3 + 0.2 * 4)
    assert set(solution.zero_weight_indices.tolist()) == {1, 3}
    assert solution.removed_mass == pytest.approx(0.4)


def test_partial_tie_group_is_cut_equally() -> None:
    losses = np.array([1.0, 1.0, 1.0, 9.0])
    solution = hrcore.solve(losses, alpha=0.5, r=0.0)
    # 0.5 of the 0.75 mass at 1.0 moves to the worst atom: each tied sample keeps 0.25/3.
    np.testing.assert_allclose(solution.weights[:3], 0.25 / 3)
    assert solution.weights[3] == pytest.approx(0.75)


@pytest.mark.parametrize("ambiguity", ["HD", "HR"])
def test_single_sample_and_all_equal_are_uniform(ambiguity: str) -> None:
    one = hrcore.solve([2.5], 0.3, 0.5, ambiguity)
    assert one.value == 2.5 and one.weights.tolist() == [1.0]
    equal = hrcore.solve(np.full(7, -1.5), 0.3, 0.5, ambiguity)
    assert equal.value == -1.5
    np.testing.assert_allclose(equal.weights, 1 / 7)


def test_value_is_the_maximum_when_alpha_covers_every_lower_loss() -> None:
    losses = np.array([0.0, 1.0, 1.0, 3.0, 3.0])
    for ambiguity in ("HD", "HR"):
        solution = hrcore.solve(losses, alpha=0.6, r=0.1, ambiguity=ambiguity)
        assert solution.value == 3.0
        assert solution.weights[3:].sum() == pytest.approx(1.0)


def test_hr_value_is_the_maximum_inside_the_binary_kl_regime() -> None:
    losses = np.array([0.0, 1.0, 2.0, 3.0])
    below, alpha = 0.75, 0.3
    threshold = binary_kl(below, alpha)
    assert hrcore.solve(losses, alpha, threshold * 1.0001, "HR").value == 3.0
    assert hrcore.solve(losses, alpha, threshold * 0.99, "HR").value < 3.0
    assert hrcore.solve(losses, alpha, threshold * 1.0001, "HD").value < 3.0


def test_upper_bound_boundary_case_all_zero_losses() -> None:
    # 0-1 losses all zero with B = 1: the KL ball alone moves 1 − e^{−r} onto the worst atom.
    r = 0.2
    solution = hrcore.solve(np.zeros(50), alpha=0.0, r=r, upper_bound=1.0)
    assert solution.value == pytest.approx(1.0 - math.exp(-r), rel=1e-12)
    assert solution.worst_weight == pytest.approx(1.0 - math.exp(-r), rel=1e-12)
    hr = hrcore.solve(np.zeros(50), alpha=0.1, r=r, ambiguity="HR", upper_bound=1.0)
    assert hr.value == pytest.approx(1.0 - math.exp(-r) + 0.1, rel=1e-12)


def test_upper_bound_is_not_folded_and_raises_the_value() -> None:
    losses = np.array([0.2, 0.5, 0.9])
    plain = hrcore.solve(losses, 0.1, 0.1)
    bounded = hrcore.solve(losses, 0.1, 0.1, upper_bound=2.0)
    assert bounded.value > plain.value
    assert bounded.weights.sum() + bounded.worst_weight == pytest.approx(1.0)
    assert bounded.worst_weight > 0.0
    assert bounded.value == pytest.approx(bounded.weights @ losses + 2.0 * bounded.worst_weight)
    np.testing.assert_allclose(bounded.full_weights[:3], bounded.weights)


@settings(max_examples=40)
@given(
    losses=loss_batches(max_size=128), alpha=alphas, r=radii, ambiguity=ambiguities, seed=st.integers(0, 999)
)
def test_mask_excludes_entries_without_consuming_alpha(
    losses: np.ndarray, alpha: float, r: float, ambiguity: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    padded = np.concatenate([losses, rng.normal(size=5) * 100.0])
    mask = np.r_[np.ones(losses.size, bool), np.zeros(5, bool)]
    masked = hrcore.solve(padded, alpha, r, ambiguity, mask=mask)
    alone = hrcore.solve(losses, alpha, r, ambiguity)
    assert masked.value == pytest.approx(alone.value, rel=1e-12, abs=1e-12 * value_scale(losses, alone.value))
    np.testing.assert_allclose(masked.weights[: losses.size], alone.weights, atol=1e-12)
    assert np.all(masked.weights[losses.size :] == 0.0)


@pytest.mark.parametrize("ambiguity", ["HD", "HR"])
@pytest.mark.parametrize(("alpha", "r"), [(0.05, 0.1), (0.1, 0.01), (0.0, 0.3), (0.2, 0.0), (0.15, 1.0)])
def test_danskin_weights_are_the_value_gradient(ambiguity: str, alpha: float, r: float) -> None:
    rng = np.random.default_rng(3)
    for n in (7, 40):
        losses = rng.lognormal(size=n)
        # Keep away from the poisoning threshold, where the trimmed set (and the derivative) jumps.
        assume_untied = np.unique(losses).size == n
        assert assume_untied
        solution = hrcore.solve(losses, alpha, r, ambiguity)
        step = 1e-6
        gradient = np.empty(n)
        for i in range(n):
            up, down = losses.copy(), losses.copy()
            up[i] += step
            down[i] -= step
            gradient[i] = (
                hrcore.solve(up, alpha, r, ambiguity).value - hrcore.solve(down, alpha, r, ambiguity).value
            ) / (2 * step)
        np.testing.assert_allclose(gradient, solution.weights, atol=2e-6)


def test_accepts_array_likes_and_float32_and_integers() -> None:
    values = [0.1, 0.5, 0.2, 0.9]
    reference = hrcore.solve(np.array(values), 0.1, 0.1)
    for losses in (values, tuple(values), np.array(values, dtype=np.float32)):
        solution = hrcore.solve(losses, 0.1, 0.1)
        assert solution.weights.dtype == np.float64
        np.testing.assert_allclose(solution.weights, reference.weights, atol=1e-6)
    assert hrcore.solve(np.array([1, 2, 3]), 0.1, 0.1).value > 2.0
    np.testing.assert_array_equal(hrcore.hr_weights(values, 0.1, 0.1), reference.weights)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"losses": [1.0, float("nan")]}, ValueError, "NaN"),
        ({"losses": [1.0, float("inf")]}, ValueError, "inf"),
        ({"losses": []}, ValueError, "empty batch"),
        ({"losses": 0.7}, ValueError, 'reduction="none"'),
        ({"losses": np.ones((3, 2))}, ValueError, "1-D"),
        ({"losses": ["a", "b"]}, TypeError, "real numbers"),
        ({"losses": [1.0, 2.0], "alpha": 1.0}, ValueError, r"alpha .* \[0, 1\)"),
        ({"losses": [1.0, 2.0], "alpha": -0.1}, ValueError, r"alpha .* \[0, 1\)"),
        ({"losses": [1.0, 2.0], "r": -0.5}, ValueError, "r .*KL radius"),
        ({"losses": [1.0, 2.0], "r": float("nan")}, ValueError, "NaN"),
        ({"losses": [1.0, 2.0], "r": "0.1"}, TypeError, "real number"),
        ({"losses": [1.0, 2.0], "ambiguity": "KL"}, ValueError, "ambiguity"),
        ({"losses": [1.0, 2.0], "solver": "ecos"}, ValueError, "solver"),
        ({"losses": [1.0, 2.0], "upper_bound": 1.5}, ValueError, "below the largest loss"),
        ({"losses": [1.0, 2.0], "mask": [True]}, ValueError, "mask must have"),
        ({"losses": [1.0, 2.0], "mask": [False, False]}, ValueError, "excludes every"),
        ({"losses": [1.0, 2.0], "mask": [0.5, 1.0]}, TypeError, "boolean"),
    ],
)
def test_bad_input_raises_a_clear_error(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        hrcore.solve(**kwargs)


def test_non_finite_padding_behind_the_mask_is_ignored() -> None:
    solution = hrcore.solve([1.0, float("nan"), 3.0, float("inf")], 0.1, 0.1, mask=[True, False, True, False])
    assert np.isfinite(solution.value)
    assert solution.weights[1] == 0.0 and solution.weights[3] == 0.0
    with pytest.raises(ValueError, match="NaN"):
        hrcore.solve([1.0, float("nan")], mask=[False, True])


def test_settings_validate_each_assignment_and_solve_with_current_values() -> None:
    losses = np.array([0.3, 1.2, 0.7, 2.5])
    settings = hrcore.HRSettings(alpha=0.1, r=0.1)
    assert settings.solve(losses).value == hrcore.solve(losses, 0.1, 0.1).value
    settings.r = 0.5
    settings.ambiguity = "hr"
    assert settings.ambiguity == "HR"
    assert settings.solve(losses).value == hrcore.solve(losses, 0.1, 0.5, "HR").value
    for name, value, message in [
        ("alpha", 1.2, r"alpha .* \[0, 1\)"),
        ("r", -1.0, "KL radius"),
        ("ambiguity", "KL", "ambiguity"),
        ("upper_bound", float("inf"), "finite"),
    ]:
        with pytest.raises(ValueError, match=message):
            setattr(settings, name, value)
    assert (settings.alpha, settings.r, settings.ambiguity, settings.upper_bound) == (0.1, 0.5, "HR", None)


def test_check_count_accepts_integers_only() -> None:
    from hrcore.validation import check_count

    assert check_count("steps", np.int64(3)) == 3
    assert check_count("steps", np.array(4)) == 4
    for value, error, message in [
        (True, TypeError, "steps must be an integer"),
        (2.0, TypeError, "steps must be an integer"),
        (-1, ValueError, "steps must be >= 0"),
    ]:
        with pytest.raises(error, match=message):
            check_count("steps", value)
    with pytest.raises(ValueError, match="pgd_iterations must be >= 1"):
        check_count("pgd_iterations", 0, minimum=1)
