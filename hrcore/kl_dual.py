"""The one-dimensional dual of the worst case over a Kullback-Leibler ball, and its root finder.

For atoms with normalised values d_g ≥ 0 (d = 0 is the worst atom) and masses w_g,
min{Σ p_g d_g : KL(w‖p) ≤ r} = e^{−r}·G(u*) − u*, G(u) = exp(Σ w_g log(u + d_g)), where u* ≥ 0 solves
H(u) = −r + Σ w_g log(u + d_g) + log Σ w_g/(u + d_g) = 0 (H decreases from +∞ when some mass sits at d = 0).
Every quantity is written relative to u (ratio_g = 1 + d_g/u), so nothing cancels catastrophically when u is
huge (tiny r) or tiny (large r), and the root is found in t = log u.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# Newton in t = log u stops when a step moves t by less than this: u is then known to ~1e-14 relative.
_STEP_TOLERANCE = 1e-14
# A Newton step this small leaves an error of order its square: below rounding, so it is the last one taken.
_NEWTON_TOLERANCE = 1e-9
_MAX_ITERATIONS = 200


def ratios(values: np.ndarray, u: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale-free atom positions (u + d)/u and their logarithms.

    Computes 1 + d/u and log1p(d/u) for u > 0, and d, log d at the boundary u = 0 (where every d > 0).

    Args:
        values: Normalised values d (K,).
        u: The dual variable u ≥ 0.

    Returns:
        (ratio, log_ratio), each (K,).
    """
    if u > 0.0:
        scaled = values / u
        return 1.0 + scaled, np.log1p(scaled)
    return values.copy(), np.log(values)


def dual_gradient(
    weights: np.ndarray, ratio: np.ndarray, log_ratio: np.ndarray, r: float
) -> tuple[float, float]:
    """H and its derivative in t = log u for fixed atoms.

    Computes H = −r + Σ w log ŷ + log a and dH/dt = −(c − a²)/a, with ŷ = (u + d)/u, a = Σ w/ŷ, c = Σ w/ŷ².

    Args:
        weights: Masses w (K,), summing to 1.
        ratio: ŷ (K,).
        log_ratio: log ŷ (K,).
        r: The KL radius.

    Returns:
        (H, dH/dt).
    """
    inverse = weights / ratio
    a = float(inverse.sum())
    c = float((inverse / ratio).sum())
    return -r + float(weights @ log_ratio) + math.log(a), -(c - a * a) / a


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
        ArithmeticError: If no root is bracketed or the iteration does not converge (never expected).
    """
    t = math.log(u_start)
    low, high = -math.inf, math.inf
    for _ in range(_MAX_ITERATIONS):
        if not -700.0 < t < 700.0:
            break
        h, slope = state(math.exp(t))
        if h == 0.0:
            return math.exp(t)
        if h > 0.0:
            low = t
        else:
            high = t
        scale = max(1.0, abs(t))
        if slope < 0.0:
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
