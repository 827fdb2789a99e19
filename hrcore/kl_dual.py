"""The one-dimensional dual of the worst case over a Kullback-Leibler ball, and its root finder.

For atoms with normalised values d_g ≥ 0 (d = 0 is the worst atom) and masses w_g,
min{Σ p_g d_g : KL(w‖p) ≤ r} = e^{−r}·G(u*) − u*, G(u) = exp(Σ w_g log(u + d_g)), where u* ≥ 0 solves
H(u) = −r + Σ w_g log(u + d_g) + log Σ w_g/(u + d_g) = 0 (H decreases from +∞ when some mass sits at d = 0).
Every quantity is written in the excess x_g = d_g/u, and H as Σ w φ(x) + ψ(m) with φ(x) = log1p(x) − x/(1+x)
and ψ(m) = log1p(−m) + m, so that nothing cancels when u is huge (tiny r: H ~ r while its terms ~ √r);
the root is found in t = log u.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# Newton in t = log u stops when a step moves t by less than this: u is then known to ~1e-14 relative.
_STEP_TOLERANCE = 1e-14
# A Newton step this small leaves an error of order its square (~1e-12 in log u, F being piecewise C²):
# it is the last one taken.
_NEWTON_TOLERANCE = 1e-6
_MAX_ITERATIONS = 200
# u below e^−700 is numerically the boundary u* = 0 (the solution is continuous there).
_LOWEST_T = -700.0


class RootBelowRange(ArithmeticError):
    """H stays negative down to u = e^−700: the root is indistinguishable from the boundary u* = 0."""


# Below this excess the power series of φ and ψ (17 terms) are exact to rounding; above it the closed forms
# lose at most ~1e-15 relative.
_SERIES_LIMIT = 0.1
_SERIES_TERMS = 18


def _phi(x: np.ndarray, share: np.ndarray, largest: float) -> np.ndarray:
    """φ(x) = log1p(x) − x/(1+x) = Σ_{k≥2} (−1)^k (k−1)/k x^k, without cancellation for small x.

    ``share`` is x/(1+x) and ``largest`` max x, both already at hand in the caller.
    """
    if largest >= _SERIES_LIMIT:
        return np.log1p(x) - share
    total = np.zeros_like(x)
    for k in range(_SERIES_TERMS, 1, -1):  # Horner in x, from the highest power down to x²
        total = (total + (-1.0) ** k * (k - 1) / k) * x
    return total * x


def _psi(m: float, a: float) -> float:
    """ψ(m) = log1p(−m) + m = log a + m with a = 1 − m; the series −Σ_{k≥2} m^k/k avoids cancellation."""
    if m >= _SERIES_LIMIT:
        return math.log(a) + m
    total = 0.0
    for k in range(_SERIES_TERMS, 1, -1):
        total = (total - 1.0 / k) * m
    return total * m


def dual_gradient(
    weights: np.ndarray, excess: np.ndarray, log_r: float, largest: float
) -> tuple[float, float, float]:
    """The root function F = log(H + r) − log r and its derivative in t = log u, for fixed atoms at u > 0.

    Computes H + r = Σ w φ(x) + ψ(m) ≥ 0 (Jensen) and d(H + r)/dt = −Σ w (y − m)²/a, with x = d/u,
    y = x/(1+x), m = Σ w y, a = Σ w/(1+x) = 1 − m. F has the root of H; the logarithm makes it nearly
    linear in t where r is small (H + r ≈ σ²e^{−2t}/2), so Newton needs few steps from the χ² start.

    Args:
        weights: Masses w (K,), summing to 1.
        excess: x = d/u (K,).
        log_r: log r of the KL radius r > 0.
        largest: max x (selects the series or the closed form of φ).

    Returns:
        (F, dF/dt, a).
    """
    inverse = 1.0 / (1.0 + excess)
    share = excess * inverse
    m = float(weights @ share)
    # a = 1 − m summed directly: with mass near d = 0 and a tiny u, m rounds to 1 while a stays exact. The
    # spread y − m = a − 1/(1+x) is likewise taken from whichever side is small.
    a = float(weights @ inverse)
    centred = share - m if m <= 0.5 else inverse - a
    gap = float(weights @ _phi(excess, share, largest)) + _psi(m, a)
    slope = -float(weights @ (centred * centred)) / a
    return (*log_gap(gap, slope, log_r), a)


def log_gap(gap: float, slope: float, log_r: float) -> tuple[float, float]:
    """(log(H + r) − log r, its t-derivative) from H + r and d(H + r)/dt; −∞ where H + r underflows to 0."""
    if gap <= 0.0:
        return -math.inf, -math.inf
    return math.log(gap) - log_r, slope / gap


def boundary_value(weights: np.ndarray, values: np.ndarray, r: float) -> float:
    """H at the boundary u → 0⁺ when every atom has d > 0.

    Computes H(0) = −r + Σ w log d + log Σ w/d; the optimum sits at u* = 0 when this is ≤ 0.

    Args:
        weights: Masses w (K,), summing to 1.
        values: Atom values d > 0 (K,).
        r: The KL radius.

    Returns:
        H(0).
    """
    return -r + float(weights @ np.log(values)) + math.log(float((weights / values).sum()))


def find_root(state: Callable[[float], tuple[float, float]], u_start: float) -> float:
    """Root of a decreasing function H(u) on u > 0, by safeguarded Newton in t = log u.

    Solves H(e^t) = 0 given dH/dt; keeps a bracket [lo, hi] with H(lo) > 0 > H(hi), falls back to bisection
    when a Newton step leaves it, and widens the bracket by e^8 per step until it holds the root.

    Args:
        state: u -> (H(u), dH/dt(u)).
        u_start: A first guess (> 0).

    Returns:
        u* > 0.

    Raises:
        RootBelowRange: If H < 0 down to u = e^−700 (mass at d = 0 too small to matter: use the boundary).
        ArithmeticError: If the iteration does not converge (never expected).
    """
    t = math.log(u_start)
    low, high = -math.inf, math.inf
    for _ in range(_MAX_ITERATIONS):
        if t <= _LOWEST_T:
            raise RootBelowRange(math.exp(_LOWEST_T))
        if t >= -_LOWEST_T:
            break
        h, slope = state(math.exp(t))
        if h == 0.0:
            return math.exp(t)
        if h > 0.0:
            low = t
        else:
            high = t
        scale = max(1.0, abs(t))
        if slope < 0.0 and math.isfinite(h) and math.isfinite(slope):
            # Far from a bracket, Newton on the flat tail can jump arbitrarily far: cap one move at e^8.
            step = max(-8.0, min(8.0, -h / slope))
            if low < t + step < high:
                if abs(step) <= _NEWTON_TOLERANCE * scale:
                    # Quadratic convergence: the step after this one would be below rounding.
                    return math.exp(t + step)
                t += step
                continue
        if math.isfinite(low) and math.isfinite(high):
            if high - low <= _STEP_TOLERANCE * scale:
                return math.exp(0.5 * (low + high))
            t = 0.5 * (low + high)
        else:
            t = low + 8.0 if math.isfinite(low) else high - 8.0
    raise ArithmeticError("the KL-dual root finder did not converge; please report this instance.")
