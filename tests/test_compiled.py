"""The numba kernel of ``solve`` against the numpy path: same solution, same errors, and it really serves."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from collections.abc import Iterator

import numpy as np
import pytest
from frameworks import require
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import alphas, ambiguities, loss_batches

import hrcore
from hrcore import compiled
from hrcore.kl_dual import DIRECT_RADIUS

require("numba")

compiled_radii = st.one_of(
    st.just(0.0), st.sampled_from([DIRECT_RADIUS, 0.01, 0.1, 1.0, 20.0]), st.floats(DIRECT_RADIUS, 5.0)
)


@pytest.fixture
def switch() -> Iterator[None]:
    saved = compiled.ENABLED
    yield
    compiled.ENABLED = saved


def both_paths(losses: object, alpha: float, r: float, **kw: object) -> tuple[hrcore.HRSolution, ...]:
    compiled.ENABLED = True
    fast = hrcore.solve(losses, alpha, r, **kw)
    compiled.ENABLED = False
    slow = hrcore.solve(losses, alpha, r, **kw)
    compiled.ENABLED = True
    return fast, slow


def test_kernel_is_available_and_serves_plain_float_batches(switch: None) -> None:
    compiled.ENABLED = True
    assert compiled.available()
    losses = np.random.default_rng(0).lognormal(size=128)
    # A float64 batch without mask or bound is solved by the kernel, not handed back.
    assert compiled.solve_hd(losses, 0.05, 0.1) is not None
    assert compiled.solve_hd(losses, 0.1, 0.0) is not None
    assert compiled.solve_hr(losses, 0.05, 0.1) is not None
    assert compiled.solve_hr(losses, 0.1, DIRECT_RADIUS) is not None
    # Below the direct-sum radius the series path of numpy is needed (HR with r = 0 is the HD program).
    assert compiled.solve_hd(losses, 0.05, DIRECT_RADIUS / 2) is None
    assert compiled.solve_hr(losses, 0.05, DIRECT_RADIUS / 2) is None


@settings(max_examples=400)
@given(losses=loss_batches(max_size=600), alpha=alphas, r=compiled_radii, ambiguity=ambiguities)
def test_kernel_matches_the_numpy_path(losses: np.ndarray, alpha: float, r: float, ambiguity: str) -> None:
    saved = compiled.ENABLED
    try:
        fast, slow = both_paths(losses, alpha, r, ambiguity=ambiguity)
    finally:
        compiled.ENABLED = saved
    scale = max(abs(slow.value), float(losses.max() - losses.min()), np.finfo(float).tiny)
    assert abs(fast.value - slow.value) <= 1e-9 * scale
    np.testing.assert_allclose(fast.weights, slow.weights, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.sample_weights, slow.sample_weights, rtol=0, atol=1e-9)
    assert fast.worst_weight == pytest.approx(slow.worst_weight, abs=1e-9)
    assert fast.removed_mass == pytest.approx(slow.removed_mass, abs=1e-15)
    assert fast.worst_value == slow.worst_value
    # Tied losses get bit-identical weights on the kernel too (its arithmetic is elementwise).
    for value in np.unique(losses):
        tied = fast.weights[losses == value]
        assert np.all(tied == tied[0])


@pytest.mark.parametrize("ambiguity", ["HD", "HR"])
@pytest.mark.parametrize("n", [4, 5, 100, 1000])
def test_cut_inside_a_tie_group_is_split_equally(switch: None, n: int, ambiguity: str) -> None:
    # α·N falls inside the group of the lowest losses: the group keeps what is left of it, shared equally.
    losses = np.r_[np.zeros(n // 2 + 1), np.arange(1.0, n - n // 2)]
    alpha = 0.25
    compiled.ENABLED = True
    assert (compiled.solve_hd if ambiguity == "HD" else compiled.solve_hr)(losses, alpha, 0.1) is not None
    fast, slow = both_paths(losses, alpha, 0.1, ambiguity=ambiguity)
    low = fast.sample_weights[: n // 2 + 1]
    assert np.all(low == low[0]) and low[0] > 0.0
    np.testing.assert_allclose(fast.weights, slow.weights, atol=1e-12)


def test_float32_input_and_non_contiguous_views_are_served(switch: None) -> None:
    losses = np.random.default_rng(1).lognormal(size=256)
    reference = hrcore.solve(losses.astype(np.float32).astype(np.float64), 0.05, 0.1)
    for view in (losses.astype(np.float32), losses.astype(np.float32).astype(np.float64)[::1]):
        fast, slow = both_paths(view, 0.05, 0.1)
        np.testing.assert_allclose(fast.weights, reference.weights, atol=1e-12)
        np.testing.assert_allclose(fast.weights, slow.weights, atol=1e-12)
    strided = np.repeat(losses, 2)[::2]
    fast, slow = both_paths(strided, 0.05, 0.1)
    np.testing.assert_allclose(fast.weights, slow.weights, atol=1e-12)


@pytest.mark.parametrize("ambiguity", ["HD", "HR"])
@pytest.mark.parametrize(("bad", "message"), [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_non_finite_losses_fall_back_to_the_clear_error(
    switch: None, bad: float, message: str, ambiguity: str
) -> None:
    losses = np.array([1.0, 2.0, bad, 0.5])
    compiled.ENABLED = True
    assert (compiled.solve_hd if ambiguity == "HD" else compiled.solve_hr)(losses, 0.05, 0.1) is None
    with pytest.raises(ValueError, match=message):
        hrcore.solve(losses, ambiguity=ambiguity)


def test_kernel_leaves_the_input_untouched(switch: None) -> None:
    losses = np.random.default_rng(2).lognormal(size=64)
    before = losses.copy()
    compiled.ENABLED = True
    hrcore.solve(losses, 0.1, 0.1, "HD")
    hrcore.solve(losses, 0.1, 0.1, "HR")
    np.testing.assert_array_equal(losses, before)


class _Unbuildable(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        raise RuntimeError("cannot cache function 'hd': no locator available")


def test_kernels_that_cannot_be_built_warn_and_leave_numpy_in_charge(
    switch: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled.ENABLED = True
    monkeypatch.setattr(compiled, "_kernels", None)
    monkeypatch.delattr(hrcore, "kernels", raising=False)
    monkeypatch.setitem(sys.modules, "hrcore.kernels", _Unbuildable("hrcore.kernels"))
    losses = np.random.default_rng(3).lognormal(size=32)
    with pytest.warns(RuntimeWarning, match="compiled solver is unavailable.*NUMBA_CACHE_DIR"):
        assert not compiled.available()
    assert compiled.solve_hd(losses, 0.05, 0.1) is None
    served = hrcore.solve(losses, 0.05, 0.1)
    compiled.ENABLED = False
    np.testing.assert_array_equal(served.weights, hrcore.solve(losses, 0.05, 0.1).weights)


def test_environment_switch_turns_the_kernel_off() -> None:
    code = "from hrcore import compiled; print(compiled.available())"
    for value, expected in (("0", "False"), ("1", "True")):
        env = {**os.environ, "HRCORE_COMPILED": value}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert result.stdout.strip() == expected
