"""The common case of ``solve`` compiled with numba: a whole batch in one machine-code call.

Solves the HD program (poison P̂, then the KL dual in u by direct sums) for a batch without mask or upper
bound and with r = 0 or r ≥ DIRECT_RADIUS, in fused loops. At N ≈ 100 the numpy path spends most of its time
in the fixed cost of ~40 array calls, which grows several-fold when the caches are cold after a training step;
here the whole solve is one call. The scalar pieces (the Halley/Newton step, the dual's derivatives, the
two-node start) are the numpy path's own functions, compiled, so both paths run the same iteration. Anything
else (ties with the worst atom only, a root below e^−700, bad input) returns FALLBACK and is left to the numpy
path, which also owns every error message.

numba is optional (``pip install 'hrcore[fast]'``) and imported on first use: ``import hrcore`` stays fast.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from hrcore import kl_dual

# ``solve_compiled`` statuses.
SOLVED = 0
FALLBACK = 1
# HRCORE_COMPILED=0 turns the compiled path off (the numpy path then serves every batch).
ENABLED = os.environ.get("HRCORE_COMPILED", "1") != "0"

_kernels: dict[str, Callable[..., Any]] | None = None


def available() -> bool:
    """Whether the compiled path is on and numba imports (compiling the kernels on the first call)."""
    return ENABLED and _load() is not None


def _load() -> dict[str, Callable[..., Any]] | None:
    global _kernels
    if _kernels is None:
        try:
            import numba  # noqa: F401  (optional; checked here so that its absence is a quiet fallback)
        except ImportError:
            _kernels = {}
        else:
            _kernels = _build()
    return _kernels or None


def solve_hd(losses: np.ndarray, alpha: float, r: float) -> tuple[Any, ...] | None:
    """The HD solution of a float64 batch, or None where the numpy path must take it.

    Computes the same (weights, sample weights, worst mass, removed mass, value, max loss) as
    ``hrcore.weights.solve`` for 1-D finite losses, no mask or bound, and r = 0 or r ≥ DIRECT_RADIUS.

    Args:
        losses: Per-sample losses, float64, 1-D, C-contiguous (unchecked otherwise; NaN/inf fall back).
        alpha: α ∈ [0, 1), validated.
        r: r ≥ 0, validated.

    Returns:
        The solution's arrays and scalars, or None (not compiled, or a case the kernel leaves to numpy).
    """
    kernels = _load() if ENABLED else None
    if kernels is None or not (r == 0.0 or r >= kl_dual.DIRECT_RADIUS):
        return None
    # The kernel fills arrays made here: numba boxing its own arrays into numpy costs more than the solve.
    weights, sample_weights = np.empty(losses.size), np.empty(losses.size)
    result = kernels["hd"](losses, alpha, r, weights, sample_weights)
    return None if result[0] != SOLVED else (weights, sample_weights, *result[1:])


def _build() -> dict[str, Callable[..., Any]]:
    """Compile the kernels; the kl_dual scalar functions are registered so compiled code can call them."""
    from numba import njit
    from numba.extending import register_jitable

    # root_derivatives calls log_gap as a plain global: registering it lets compiled callers resolve it.
    register_jitable(kl_dual.log_gap)
    root_step = njit(kl_dual.root_step)
    two_node_start = njit(kl_dual.two_node_start)
    root_derivatives = njit(kl_dual.root_derivatives)
    chi_square_start = njit(kl_dual.chi_square_start)
    lowest_t = kl_dual._LOWEST_T
    iterations = kl_dual._MAX_ITERATIONS
    step_on = kl_dual.STEP_ON

    @njit(error_model="numpy", nogil=True)
    def hd_state(
        values: np.ndarray, mass: np.ndarray, size: int, moved: float, u: float, log_r: float
    ) -> tuple[float, float, float]:
        # ``direct_gradient`` in one pass: the raw moments of both sides of the spread are summed together,
        # and the side whose mean is small is picked afterwards.
        a, m, log_sum = 0.0, 0.0, 0.0
        share2, share3, inverse2, inverse3 = 0.0, 0.0, 0.0, 0.0
        for j in range(size):
            w = mass[j]
            x = values[j] / u
            inverse = 1.0 / (x + 1.0)
            share = x * inverse
            a += w * inverse
            m += w * share
            log_sum += w * math.log1p(x)
            square = share * share
            share2 += w * square
            share3 += w * square * share
            square = inverse * inverse
            inverse2 += w * square
            inverse3 += w * square * inverse
        a += moved
        gap = log_sum + math.log(a)
        if m <= 0.5:
            mean, second, third, sign = m, share2, share3, 1.0
        else:
            mean, second, third, sign = a, inverse2 + moved, inverse3 + moved, -1.0
        variance = max(second - mean * mean, 0.0)
        skew = sign * (third - 3.0 * mean * second + 2.0 * mean * mean * mean)
        return root_derivatives(gap, m, a, variance, skew, log_r)

    @njit(error_model="numpy", nogil=True)
    def smallest(values: np.ndarray, rank: int) -> float:
        # The rank-th smallest entry (0-based) by quickselect on a copy: HD needs only the cut, not an order.
        work = values.copy()
        low, high = 0, work.size - 1
        while low < high:
            middle = (low + high) // 2
            pivot = max(min(work[low], work[middle]), min(max(work[low], work[middle]), work[high]))
            i, j = low, high
            while i <= j:
                while work[i] < pivot:
                    i += 1
                while work[j] > pivot:
                    j -= 1
                if i <= j:
                    work[i], work[j] = work[j], work[i]
                    i += 1
                    j -= 1
            if rank <= j:
                high = j
            elif rank >= i:
                low = i
            else:
                return work[rank]
        return work[rank]

    @njit(error_model="numpy", nogil=True)
    def hd(
        losses: np.ndarray, alpha: float, r: float, weights: np.ndarray, sample_weights: np.ndarray
    ) -> tuple[int, float, float, float, float]:
        # Works in the batch's own order: the dual's sums do not depend on it, and poisoning needs only the
        # loss at the cut, so no sort is needed (sorting costs more than the rest of the solve).
        n = losses.size
        worst, lowest = -math.inf, math.inf
        for i in range(n):
            loss = losses[i]
            if not math.isfinite(loss):
                return FALLBACK, 0.0, 0.0, 0.0, 0.0
            worst = max(worst, loss)
            lowest = min(lowest, loss)
        spread = worst - lowest
        if spread == 0.0:
            return FALLBACK, 0.0, 0.0, 0.0, 0.0
        values = sample_weights  # d = (M − ℓ)/S, held in the output until the masses replace it
        at_worst = 0
        for i in range(n):
            values[i] = (worst - losses[i]) / spread
            at_worst += values[i] == 0.0
        movable = (n - at_worst) / n
        moved = min(alpha, movable)
        mass = weights  # q, then p, before the worst atom is folded in
        if alpha >= movable:
            for i in range(n):
                mass[i] = 1.0 / n if values[i] == 0.0 else 0.0
            return _fold(losses, values, mass, sample_weights, moved, moved, worst, spread, at_worst)
        # ``poison_uniform``: the `removed` lowest losses go whole, the next is cut; whole samples are the
        # largest j with j/N ≤ moved, guarded against the rounding of moved·N.
        removed = int(moved * n)
        while (removed + 1) / n <= moved:
            removed += 1
        while removed > 0 and removed / n > moved:
            removed -= 1
        cut = smallest(losses, removed) if removed > 0 else lowest
        below, tied = 0, 0
        for i in range(n):
            below += losses[i] < cut
            tied += losses[i] == cut
        # The tie group at the cut keeps (below + tied)/N − moved, split equally (untied: the partial cut).
        share = ((below + tied) / n - moved) / tied
        for i in range(n):
            loss = losses[i]
            mass[i] = 1.0 / n if loss > cut else (share if loss == cut else 0.0)
        if r == 0.0:
            return _fold(losses, values, mass, sample_weights, moved, moved, worst, spread, at_worst)
        # ``moments_start`` and ``find_root`` on ``hd_state``.
        first_moment, second_moment, third_moment = 0.0, 0.0, 0.0
        for i in range(n):
            d = values[i]
            w = mass[i] * d
            first_moment += w
            second_moment += w * d
            third_moment += w * d * d
        guess = chi_square_start(second_moment - first_moment * first_moment, r)
        u = two_node_start(moved, (first_moment, second_moment, third_moment), r, guess)
        t, low, high = math.log(u), -math.inf, math.inf
        log_r = math.log(r)
        outcome = step_on
        for _ in range(iterations):
            if t <= lowest_t or t >= -lowest_t:
                break
            h, slope, bend = hd_state(values, mass, n, moved, math.exp(t), log_r)
            outcome, t, low, high = root_step(t, low, high, h, slope, bend)
            if outcome != step_on:
                break
        if outcome == step_on:
            return FALLBACK, 0.0, 0.0, 0.0, 0.0
        u = math.exp(t)
        total = 0.0
        for i in range(n):
            mass[i] = mass[i] / (values[i] + u)
            total += mass[i]
        scale = 1.0 / (total + moved / u)
        for i in range(n):
            mass[i] *= scale
        # moved·(scale/u): a subnormal α keeps a nonzero worst mass (moved/u could underflow).
        worst_mass = moved * (scale / u)
        return _fold(losses, values, mass, sample_weights, worst_mass, moved, worst, spread, at_worst)

    @njit(error_model="numpy", nogil=True)
    def _fold(
        losses: np.ndarray,
        values: np.ndarray,
        weights: np.ndarray,
        sample_weights: np.ndarray,
        worst_mass: float,
        moved: float,
        worst: float,
        spread: float,
        at_worst: int,
    ) -> tuple[int, float, float, float, float]:
        # ``weights`` holds p per sample and ``sample_weights`` d: the value, then the unfolded copy, then the
        # worst atom's mass split over the samples at the maximum.
        expected = 0.0
        for i in range(losses.size):
            expected += weights[i] * values[i]
        sample_weights[:] = weights
        for i in range(losses.size):
            if losses[i] == worst:
                weights[i] += worst_mass / at_worst
        return SOLVED, worst_mass, moved, worst - spread * expected, worst

    return {"hd": hd}
