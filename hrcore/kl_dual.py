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
# it is the last one taken. A Halley step (F'' known, F smooth there) leaves an error of order its cube:
# ~1e-14 at 1e-4 (the constant (F''/2F')² − F'''/6F' was ~0.01 on lognormal batches, 1e-12 allows 1).
_NEWTON_TOLERANCE = 1e-6
_HALLEY_TOLERANCE = 1e-4
_MAX_ITERATIONS = 200
# The start's model only needs to land near the root: the real iteration polishes.
_MODEL_ITERATIONS = 12
_MODEL_TOLERANCE = 1e-3
# u below e^−700 is numerically the boundary u* = 0 (the solution is continuous there).
_LOWEST_T = -700.0


class RootBelowRange(ArithmeticError):
    """H stays negative down to u = e^−700: the root is indistinguishable from the boundary u* = 0."""


# Below this excess the power series of φ and ψ (17 terms) are exact to rounding; above it the closed forms
# lose at most ~1e-15 relative.
_SERIES_LIMIT = 0.1
_SERIES_TERMS = 18
_PHI_SERIES = tuple((-1.0) ** k * (k - 1) / k for k in range(_SERIES_TERMS, 1, -1))


def _phi_series(x: np.ndarray) -> np.ndarray:
    """φ(x) = log1p(x) − x/(1+x) = Σ_{k≥2} (−1)^k (k−1)/k x^k for max x < 0.1, without cancellation."""
    total = np.zeros_like(x)
    for coefficient in _PHI_SERIES:  # Horner in x, from the highest power down to x²
        total += coefficient
        total *= x
    total *= x
    return total


def _psi(m: float, a: float) -> float:
    """ψ(m) = log1p(−m) + m = log a + m with a = 1 − m; the series −Σ_{k≥2} m^k/k avoids cancellation."""
    if m >= _SERIES_LIMIT:
        return math.log(a) + m
    total = 0.0
    for k in range(_SERIES_TERMS, 1, -1):
        total = (total - 1.0 / k) * m
    return total * m


class Scratch:
    """Work rows for ``dual_gradient`` over K atoms, allocated once per solve and overwritten by each call.

    Holds the (7, K) block and named views of its rows: 1/(1+x), x/(1+x), φ(x), the centred spread, its
    square, and two rows for the caller (the excess x and the log-positions log(1+x)).
    """

    def __init__(self, size: int) -> None:
        self.block = np.empty((7, size))
        self.inverse, self.share, self.phi, self.centred, self.square = self.block[:5]
        self.excess, self.log_ratio = self.block[5:]
        self.sums = self.block[:3]
        self.moments = self.block[3:5]


def dual_gradient(
    weights: np.ndarray,
    excess: np.ndarray,
    log_r: float,
    largest: float,
    rows: Scratch,
    curvature: bool = False,
) -> tuple[float, float, float, float]:
    """The root function F = log(H + r) − log r and its first two derivatives in t = log u, for fixed atoms.

    Computes H + r = Σ w φ(x) + ψ(m) ≥ 0 (Jensen), g' = d(H + r)/dt = −V/a and
    g'' = (2V(1 − 2m) − 2T)/a + Vm/a − V²/a², with x = d/u, y = x/(1+x), m = Σ w y, a = Σ w/(1+x) = 1 − m,
    V = Σ w (y − m)², T = Σ w (y − m)³; then F' = g'/g and F'' = g''/g − F'². F has the root of H; the
    logarithm makes it nearly linear in t where r is small (H + r ≈ σ²e^{−2t}/2), so few steps are needed
    from the χ² start.

    Args:
        weights: Masses w (K,), summing to 1.
        excess: x = d/u (K,).
        log_r: log r of the KL radius r > 0.
        largest: max x (selects the series or the closed form of φ).
        rows: Work rows over the K atoms (overwritten), allocated once per solve.
        curvature: Whether to compute F'' (two more array operations); NaN otherwise.

    Returns:
        (F, dF/dt, d²F/dt², a).
    """
    inverse, share, phi, centred, square = rows.inverse, rows.share, rows.phi, rows.centred, rows.square
    np.add(excess, 1.0, out=inverse)
    np.divide(1.0, inverse, out=inverse)
    np.multiply(excess, inverse, out=share)
    if largest >= _SERIES_LIMIT:
        np.log1p(excess, out=phi)
        np.subtract(phi, share, out=phi)
    else:
        phi[:] = _phi_series(excess)
    # One matrix-vector product gives a, m and Σ w φ together.
    a, m, spread = (rows.sums @ weights).tolist()
    # a = Σ w/(1+x) summed directly, not 1 − m: with mass near d = 0 and a tiny u, m rounds to 1 while a stays
    # exact. The spread y − m = a − 1/(1+x) is likewise taken from whichever side is small (T flips sign).
    if m <= 0.5:
        np.subtract(share, m, out=centred)
        sign = 1.0
    else:
        np.subtract(inverse, a, out=centred)
        sign = -1.0
    np.multiply(centred, centred, out=square)
    gap = spread + _psi(m, a)
    if not curvature:
        variance = float(square @ weights)
        value, slope = log_gap(gap, -variance / a, log_r)
        return value, slope, math.nan, a
    np.multiply(square, centred, out=centred)
    skew, variance = (rows.moments @ weights).tolist()
    return (*root_derivatives(gap, m, a, variance, sign * skew, log_r), a)


# From this radius up, H + r = r at the root is large enough that summing its terms directly (each of the
# order of |log u|) loses at most ~1e-16·|log u|/r ≤ 1e-12 relative: the direct sums need five array passes
# per evaluation, against about ten for the cancellation-free series.
DIRECT_RADIUS = 1e-3


class DirectRows:
    """Work rows for ``direct_gradient`` over K atoms, allocated once per solve and overwritten by each call.

    Holds the (6, K) block: 1/(1+x), y = x/(1+x) and log(1+x) (summed together), the square and cube of the
    spread's smaller side (summed together), and the excess x.
    """

    def __init__(self, size: int) -> None:
        self.block = np.empty((6, size))
        self.sums, self.moments = self.block[:3], self.block[3:5]
        self.inverse, self.share, self.log_ratio, self.square, self.cube, self.excess = self.block


def direct_gradient(
    weights: np.ndarray, worst_mass: float, rows: DirectRows, log_r: float
) -> tuple[float, float, float, float]:
    """F = log(H + r) − log r and its first two t-derivatives with H summed directly, for r ≥ DIRECT_RADIUS.

    Computes, from x = d/u and log(1+x) in ``rows`` and with y = x/(1+x), the sums a = a₀ + Σ w/(1+x),
    m = Σ w y and Σ w log(1+x) in one matrix product, and H + r = Σ w log(1+x) + log a; then the central
    moments V and T of y (from those of 1/(1+x) = 1 − y when m > 1/2, so that neither cancels when u ≪ d)
    give the derivatives of ``dual_gradient``.

    Args:
        weights: Masses w of the atoms in ``rows`` (K,); with the worst atom's, they sum to 1.
        worst_mass: The mass a₀ of one more atom at d = 0 (x = 0), not in the rows.
        rows: The atoms' excess x and log(1+x), filled by the caller; the other rows are overwritten.
        log_r: log r of the KL radius r ≥ DIRECT_RADIUS.

    Returns:
        (F, dF/dt, d²F/dt², a).
    """
    np.add(rows.excess, 1.0, out=rows.inverse)
    np.divide(1.0, rows.inverse, out=rows.inverse)
    np.multiply(rows.excess, rows.inverse, out=rows.share)
    a, m, log_sum = (rows.sums @ weights).tolist()
    a += worst_mass
    gap = log_sum + math.log(a)
    # The spread is taken on the side whose mean is small: y (mean m) or 1/(1+x) = 1 − y (mean a = 1 − m,
    # the worst atom adding 1 to each power); T flips sign with the side.
    side, mean, extra, sign = (rows.share, m, 0.0, 1.0) if m <= 0.5 else (rows.inverse, a, worst_mass, -1.0)
    np.multiply(side, side, out=rows.square)
    np.multiply(rows.square, side, out=rows.cube)
    second, third = (rows.moments @ weights).tolist()
    second += extra
    third += extra
    return (*side_derivatives(gap, m, a, mean, second, third, sign, log_r), a)


def side_derivatives(
    gap: float, m: float, a: float, mean: float, second: float, third: float, sign: float, log_r: float
) -> tuple[float, float, float]:
    """``root_derivatives`` from the raw moments of the side of the spread whose mean is small.

    Computes V = E s² − (E s)² and T = ±(E s³ − 3 E s E s² + 2 (E s)³) for s = y (sign +1) or
    s = 1/(1+x) = 1 − y (sign −1: T flips with the side), then (F, F', F'').
    """
    variance = max(second - mean * mean, 0.0)
    skew = sign * (third - 3.0 * mean * second + 2.0 * mean * mean * mean)
    return root_derivatives(gap, m, a, variance, skew, log_r)


def two_node_start(worst_mass: float, moments: tuple[float, float, float], r: float, u_guess: float) -> float:
    """A start for the root of H, from the worst atom and the first three moments of the other atoms.

    Solves H(u) = r for the distribution that keeps the worst atom (mass a₀ at d = 0) and replaces the others
    by the two-point law with their mass, mean, variance and third moment (two-node Gauss quadrature), by
    Newton steps in log u from ``u_guess``. The χ² start σ/√(2r) ignores how far the worst atom sits from the
    bulk, and was off by 0.7 (HD, r = 0.1) to 4.5 (HR, N = 2048) in log u; this one by about 0.01-0.3.

    Args:
        worst_mass: a₀ ∈ [0, 1).
        moments: Σ w d, Σ w d², Σ w d³ over the other atoms (the worst atom adds nothing at d = 0).
        r: The KL radius r > 0.
        u_guess: Where Newton starts (> 0).

    Returns:
        The model's root u > 0 (u_guess itself if the model degenerates).
    """
    if worst_mass <= 0.0:
        # Without an atom at d = 0, H stays finite as u → 0 and the model may have no root at all.
        return u_guess
    rest = 1.0 - worst_mass
    first, second, third = moments[0] / rest, moments[1] / rest, moments[2] / rest
    variance = second - first * first
    # Two (mass, value) nodes; a degenerate law puts everything on the first (the second has no mass).
    nodes = ((rest, first), (0.0, first))
    if variance > 0.0 and first > 0.0:
        deviation = math.sqrt(variance)
        skewness = (third - 3.0 * first * second + 2.0 * first**3) / deviation**3
        root = math.sqrt(skewness * skewness + 4.0)
        upper, lower = 0.5 * (skewness + root), 0.5 * (skewness - root)
        share = -lower / (upper - lower)
        nodes = ((rest * share, first + deviation * upper), (rest * (1.0 - share), first + deviation * lower))
    t = math.log(u_guess)
    for _ in range(_MODEL_ITERATIONS):
        u = math.exp(t)
        log_sum, inverse_sum, inverse_square = worst_mass * t, worst_mass / u, 0.0
        for mass, value in nodes:
            position = u + max(value, 0.0)
            log_sum += mass * math.log(position)
            inverse_sum += mass / position
            inverse_square += mass / (position * position)
        h = log_sum + math.log(inverse_sum) - r
        # dH/du = Σ w/(u + d) + (d/du Σ w/(u + d)) / Σ w/(u + d); the slope is in t = log u.
        slope = u * (inverse_sum - (worst_mass / (u * u) + inverse_square) / inverse_sum)
        if not (math.isfinite(h) and slope < 0.0):
            return u_guess
        step = max(-4.0, min(4.0, -h / slope))
        t += step
        if abs(step) < _MODEL_TOLERANCE:
            break
    return math.exp(t)


def root_derivatives(
    gap: float, m: float, a: float, variance: float, skew: float, log_r: float
) -> tuple[float, float, float]:
    """(F, dF/dt, d²F/dt²) of F = log(H + r) − log r from H + r and the moments of y = x/(1+x).

    Computes g' = −V/a and g'' = (2V(1 − 2m) − 2T)/a + Vm/a − V²/a² for g = H + r, with m = Σ w y,
    a = Σ w/(1+x), V and T the second and third central moments of y; then F' = g'/g, F'' = g''/g − F'².
    F'' is NaN where H + r underflows to 0 (F = −∞ there).
    """
    value, slope = log_gap(gap, -variance / a, log_r)
    if gap <= 0.0:
        return value, slope, math.nan
    bend = (2.0 * variance * (1.0 - 2.0 * m) - 2.0 * skew + variance * m) / a - (variance / a) ** 2
    return value, slope, bend / gap - slope * slope


def chi_square_start(variance: float, r: float) -> float:
    """u₀ = σ/√(2r): where the KL ball, like a χ² ball for small r, puts the root (1 when σ = 0)."""
    return math.exp(0.5 * (math.log(variance) - math.log(2.0 * r))) if variance > 0.0 else 1.0


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


# What ``root_step`` tells its caller.
STEP_ON = 0  # keep iterating from the new t
STEP_ROOT = 1  # t is the root
STEP_ROOT_IF_SMOOTH = (
    2  # t is the root if F is smooth between the last evaluation and t (a final Halley step)
)


def root_step(
    t: float, low: float, high: float, h: float, slope: float, bend: float
) -> tuple[int, float, float, float]:
    """One safeguarded Halley/Newton step towards the root of a decreasing F, in t = log u.

    Solves F(e^t) = 0 locally: from F, dF/dt and d²F/dt² (NaN where unknown) at t, takes Halley's step (or
    Newton's) when it stays inside the bracket (low, high) with F(low) > 0 > F(high), else bisects, or
    widens a one-sided bracket by e^8. Plain scalar arithmetic: the compiled solver runs this same step.

    Args:
        t: log u of the current point.
        low: The largest t seen with F > 0 (−∞ before one).
        high: The smallest t seen with F < 0 (+∞ before one).
        h: F at t.
        slope: dF/dt at t.
        bend: d²F/dt² at t, or NaN.

    Returns:
        (STEP_ON, STEP_ROOT or STEP_ROOT_IF_SMOOTH; the next t; the updated low and high).
    """
    if h == 0.0:
        return STEP_ROOT, t, low, high
    if h > 0.0:
        low = t
    else:
        high = t
    scale = max(1.0, abs(t))
    if slope < 0.0 and math.isfinite(h) and math.isfinite(slope):
        step = -h / slope
        tolerance = _NEWTON_TOLERANCE * scale
        lean = h * bend / (slope * slope)  # NaN where the curvature is unknown: plain Newton
        halley = abs(lean) <= 1.0
        if halley:
            # Halley's correction (cubic convergence) changes the Newton step by a factor in [2/3, 2]. Its
            # error bound K·step³ is absolute in t, the relative error of u: no scaling by |t|.
            step /= 1.0 - 0.5 * lean
            tolerance = _HALLEY_TOLERANCE
        # Far from a bracket, Newton on the flat tail can jump arbitrarily far: cap one move at e^8.
        step = max(-8.0, min(8.0, step))
        if low < t + step < high:
            if abs(step) <= tolerance:
                # Quadratic (cubic) convergence: the step after this one would be below rounding.
                return (STEP_ROOT_IF_SMOOTH if halley else STEP_ROOT), t + step, low, high
            return STEP_ON, t + step, low, high
    if math.isfinite(low) and math.isfinite(high):
        middle = 0.5 * (low + high)
        return (STEP_ROOT if high - low <= _STEP_TOLERANCE * scale else STEP_ON), middle, low, high
    return STEP_ON, (low + 8.0 if math.isfinite(low) else high - 8.0), low, high


def find_root(
    state: Callable[[float], tuple[float, float, float]],
    u_start: float,
    smooth_to: Callable[[float], bool] | None = None,
) -> float:
    """Root of a decreasing function F(u) on u > 0, by safeguarded Halley/Newton steps in t = log u.

    Solves F(e^t) = 0 given dF/dt and, where known, d²F/dt², by ``root_step`` from t = log u_start.

    Args:
        state: u -> (F(u), dF/dt(u), d²F/dt²(u) or NaN where unknown).
        u_start: A first guess (> 0).
        smooth_to: For a piecewise F: u -> whether F is smooth between the last evaluated point and u, asked
            before a Halley step is taken as the last one (its cubic error bound needs F'' continuous there).

    Returns:
        u* > 0.

    Raises:
        RootBelowRange: If F < 0 down to u = e^−700 (mass at d = 0 too small to matter: use the boundary).
        ArithmeticError: If the iteration does not converge (never expected).
    """
    t = math.log(u_start)
    low, high = -math.inf, math.inf
    for _ in range(_MAX_ITERATIONS):
        if t <= _LOWEST_T:
            raise RootBelowRange(math.exp(_LOWEST_T))
        if t >= -_LOWEST_T:
            break
        outcome, t, low, high = root_step(t, low, high, *state(math.exp(t)))
        if outcome == STEP_ROOT or (
            outcome == STEP_ROOT_IF_SMOOTH and (smooth_to is None or smooth_to(math.exp(t)))
        ):
            return math.exp(t)
    raise ArithmeticError("the KL-dual root finder did not converge; please report this instance.")


def moments_start(
    values: np.ndarray, weights: np.ndarray, worst_mass: float, r: float, rows: DirectRows
) -> float:
    """``two_node_start`` from the atoms' moments, summed in one matrix product over the work rows."""
    rows.log_ratio[:] = values  # rows 2-4 (d, d², d³) are contiguous: one product
    np.multiply(values, values, out=rows.square)
    np.multiply(rows.square, values, out=rows.cube)
    first, second, third = (rows.block[2:5] @ weights).tolist()
    guess = chi_square_start(second - first * first, r)
    return two_node_start(worst_mass, (first, second, third), r, guess)
