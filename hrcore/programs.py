"""Exact solutions of the HD and HR programs on normalised, grouped losses.

Both programs minimise E_p[d] over their ambiguity set, where d = (M − ℓ)/S ∈ [0, 1] are normalised
losses (d = 0 is the worst atom) grouped by distinct value. Each returns the maximiser's total mass per group,
the worst atom's mass, and the poisoning mass actually moved. No conic solver: HD poisons in closed form and
solves one KL dual in u; HR nests an exact piecewise inner problem in e inside the same dual.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from hrcore.kl_dual import (
    DIRECT_RADIUS,
    DirectRows,
    RootBelowRange,
    Scratch,
    boundary_value,
    chi_square_start,
    direct_gradient,
    dual_gradient,
    find_root,
    moments_start,
)


class ProgramSolution(NamedTuple):
    """Maximiser of one program, per entry of its ascending normalised losses.

    Attributes:
        mass: p's mass on each entry (K,), in ascending d (descending loss): per sample for HD, per group of
            tied losses for HR.
        worst_mass: p's mass on the worst atom (d = 0).
        removed_mass: Mass moved off the lowest losses onto the worst atom.
    """

    mass: np.ndarray
    worst_mass: float
    removed_mass: float


def trim_top(mass: np.ndarray, amount: float) -> tuple[np.ndarray, int]:
    """Remove mass from the groups with the largest d (lowest losses) first.

    Computes mass_g − clip(amount − Σ_{h>g} mass_h, 0, mass_g): whole groups from the top, then a partial cut
    of the group where the amount runs out (split equally inside it by the caller's expansion).

    Args:
        mass: Group masses (K,), ascending d; overwritten (every caller passes a fresh array: no copy).
        amount: Mass to remove (< Σ mass).

    Returns:
        (the remaining masses (K,), held in ``mass`` itself, the number of leading groups that keep mass).
    """
    tail = mass[::-1].cumsum()  # tail[j]: the mass of the j + 1 groups with the largest d
    removed = int(tail.searchsorted(amount, side="right"))  # groups the amount covers whole
    kept = mass
    size = mass.size - removed
    if size == 0:  # the amount covers everything (up to rounding)
        kept[:] = 0.0
        return kept, 0
    kept[size:] = 0.0  # exact zeros: no rounding sliver is left behind
    kept[size - 1] = tail[removed] - amount  # > 0: the first tail mass above the amount
    return kept, size


def _rest(mass: np.ndarray) -> float:
    """The worst atom's mass 1 − Σ mass, never negative from rounding."""
    return max(0.0, 1.0 - float(mass.sum()))


def _start(values: np.ndarray, weights: np.ndarray, r: float) -> float:
    # The variance centred first: the series path serves tiny r, where σ may be tiny beside the mean.
    centred = values - float(weights @ values)
    return chi_square_start(float(weights @ (centred * centred)), r)


def count_at_worst(values: np.ndarray) -> int:
    """The number of leading entries of ascending ``values`` at d = 0: the samples at the worst atom."""
    if values.item(0) > 0.0:
        return 0
    if values.size == 1 or values.item(1) > 0.0:
        return 1
    return int(values.searchsorted(0.0, side="right"))


def whole_samples(amount: float, n: int) -> int:
    """How many samples of mass 1/N an amount of mass removes whole.

    Computes the largest j with j/N ≤ amount, guarded against the rounding of amount·N.
    """
    removed = int(amount * n)
    while (removed + 1) / n <= amount:
        removed += 1
    while removed > 0 and removed / n > amount:
        removed -= 1
    return removed


def poison_uniform(values: np.ndarray, amount: float) -> tuple[np.ndarray, int]:
    """P̂ on ascending per-sample ``values`` with ``amount`` of mass removed from the largest d.

    Computes q_(j) = min(1/N, max(0, (N − j)/N − amount)) in ascending order of d (whole samples from the top,
    then a partial cut), and splits the cut equally over the samples tied with the one it falls on.

    Args:
        values: Normalised losses d (N,), ascending.
        amount: Mass to remove, in [0, 1 − 1/N·(samples at d = 0)).

    Returns:
        (the masses q (N,), the number of leading entries with q > 0).
    """
    n = values.size
    mass = np.full(n, 1.0 / n)
    removed = whole_samples(amount, n)
    size = n - removed
    if size < n:
        mass[size:] = 0.0
    last = size - 1
    mass[last] = (removed + 1) / n - amount  # in (0, 1/N] by the choice of `removed`
    cut = values.item(last)
    if (last > 0 and values.item(last - 1) == cut) or (size < n and values.item(size) == cut):
        # The cut falls inside a tie group: the group keeps its remaining mass, split equally.
        first, end = int(values.searchsorted(cut, "left")), int(values.searchsorted(cut, "right"))
        mass[first:end] = float(mass[first:end].sum()) / (end - first)
        size = end
    return mass, size


def solve_hd(values: np.ndarray, alpha: float, r: float) -> ProgramSolution:
    """The HD program: poison P̂ first, then the KL ball around the poisoned distribution.

    Solves min E_p[d] s.t. KL(q*‖p) ≤ r, where q* moves a = min(α, 1 − m/N) of P̂'s mass from the largest d
    onto the worst atom (m samples sit at d = 0); p_i = e^{−r}G(u*) q*_i/(u* + d_i).

    Args:
        values: Normalised losses d (N,), one per sample, ascending, in [0, 1].
        alpha: Poisoning fraction α ∈ [0, 1).
        r: KL radius r ≥ 0.

    Returns:
        The maximiser, per sample (in the order of ``values``); tied samples get equal mass.
    """
    n = values.size
    at_worst = count_at_worst(values)
    movable = (n - at_worst) / n
    moved = min(alpha, movable)
    if alpha >= movable:
        mass = np.zeros(n)
        mass[:at_worst] = 1.0 / n  # every sample below the maximum goes, exactly
        return ProgramSolution(mass, moved, moved)
    poisoned, size = poison_uniform(values, moved)
    if r == 0.0:
        return ProgramSolution(poisoned, moved, moved)
    if at_worst == 0 and moved == 0.0:
        # Possible only under an upper bound above the batch: the optimum may sit on the boundary u* = 0.
        boundary = _boundary(values[:size], poisoned[:size], r)
        if boundary is not None:
            poisoned[:size] = boundary
            return ProgramSolution(poisoned, _rest(boundary), moved)

    # The worst atom is one more atom of the dual at d = 0, with the moved mass.
    atom_values, atom_mass = values[:size], poisoned[:size]
    try:
        if r >= DIRECT_RADIUS:
            u = _direct_root(atom_values, atom_mass, moved, r)
        else:
            u = _careful_root(atom_values, atom_mass, moved, r)
    except RootBelowRange:
        if at_worst:
            # u* → 0 with mass at d = 0: p_i ∝ q_i/(u* + d_i) concentrates on d = 0, in proportion to q.
            at_zero = moved + at_worst / n
            sample_mass = np.zeros(n)
            sample_mass[:at_worst] = 1.0 / (n * at_zero)
            return ProgramSolution(sample_mass, moved / at_zero, moved)
        # A worst atom of negligible mass (e.g. α = 1e-200): the boundary solution is its exact limit.
        sample_mass = np.zeros(n)
        sample_mass[:size] = math.exp(-r + float(atom_mass @ np.log(atom_values))) * atom_mass / atom_values
        return ProgramSolution(sample_mass, _rest(sample_mass), moved)
    # p ∝ q/(u* + d) (u* ≥ e^−700 keeps q/u* finite); Σp = e^{H(u*)} = 1 at the root, and dividing by the
    # computed sum removes the last rounding. It is written over the poisoned masses, already 0 past `size`.
    p = np.divide(atom_mass, np.add(atom_values, u), out=atom_mass)
    scale = 1.0 / (float(p.sum()) + moved / u)
    p *= scale
    # moved·(scale/u), scale/u = O(1): a subnormal α keeps a nonzero worst mass (moved/u could underflow).
    return ProgramSolution(poisoned, moved * (scale / u), moved)


def _direct_root(values: np.ndarray, mass: np.ndarray, moved: float, r: float) -> float:
    """u* by direct sums of the dual (r ≥ DIRECT_RADIUS), the worst atom entering as a scalar mass."""
    rows = DirectRows(values.size)
    log_r = math.log(r)

    def state(u: float) -> tuple[float, float, float]:
        np.divide(values, u, out=rows.excess)
        np.log1p(rows.excess, out=rows.log_ratio)
        return direct_gradient(mass, moved, rows, log_r)[:3]

    return find_root(state, moments_start(values, mass, moved, r, rows))


def _careful_root(values: np.ndarray, mass: np.ndarray, moved: float, r: float) -> float:
    """u* by the cancellation-free evaluation of the dual (tiny r, where H ~ r while its terms ~ √r)."""
    atom_values = np.concatenate(([0.0], values))
    atom_mass = np.concatenate(([moved], mass))
    log_r = math.log(r)
    largest = float(atom_values[-1])
    rows = Scratch(atom_values.size)
    excess = rows.excess

    def state(u: float) -> tuple[float, float, float]:
        np.divide(atom_values, u, out=excess)
        return dual_gradient(atom_mass, excess, log_r, largest / u, rows, curvature=True)[:3]

    return find_root(state, _start(atom_values, atom_mass, r))


def _boundary(values: np.ndarray, mass: np.ndarray, r: float) -> np.ndarray | None:
    """The optimum on the boundary u* = 0, when no mass sits at d = 0 and H(0⁺) ≤ 0.

    Computes p_g = e^{−r}G(0) w_g/d_g (the worst atom takes 1 − Σp), or None when the root is interior.
    """
    if boundary_value(mass, values, r) > 0.0:
        return None
    return math.exp(-r + float(mass @ np.log(values))) * mass / values


def binary_kl(b: float, a: float) -> float:
    """Binary Kullback-Leibler divergence.

    Computes kl(b‖a) = b log(b/a) + (1 − b) log((1 − b)/(1 − a)), with 0 log 0 = 0.
    """
    total = b * math.log(b / a) if b > 0.0 else 0.0
    if b < 1.0:
        total += (1.0 - b) * math.log((1.0 - b) / (1.0 - a))
    return total


class _Cap(NamedTuple):
    """The inner minimiser e*(u), as the first capped group and the capped excess."""

    first: int
    kink: bool
    excess: float
    log_ratio: float


class _HRDual:
    """H(u) of the HR outer problem with the inner cap e*(u) solved exactly.

    For fixed u, f(e) = αe − e^{−r}exp((1/N)Σ log(u + min(d_i, e))) is convex and piecewise smooth; with k_j
    samples strictly above d_j its one-sided slopes at the breakpoint d_j are α − k·Q_j with
    Q_j = e^{−r}G(d_j)/(N(u + d_j)). The first breakpoint J whose right slope is ≥ 0 either is the
    minimiser (a kink) or bounds the piece (d_{J−1}, d_J) holding the closed-form stationary point. Positions
    are scaled by u (ŷ = 1 + d/u) for u > 0, and taken as d itself at the boundary u = 0.
    """

    def __init__(self, values: np.ndarray, counts: np.ndarray, n: int, alpha: float, r: float) -> None:
        self.values = values
        self.counts = counts
        self.n = n
        self.weights = counts / n
        self.cumulative = counts.cumsum()
        above = n - self.cumulative
        self.above = above
        self.untied = counts.size == n
        # Direct sums where r allows (see DIRECT_RADIUS), else the cancellation-free series.
        self.direct = DirectRows(values.size) if r >= DIRECT_RADIUS else None
        self.rows = Scratch(values.size) if self.direct is None else None
        # N·log(k_j Q_j/α) = prefix_j + (k_j − N)·log ŷ_j − limit_j with prefix_j = Σ_{l≤j} n_l log ŷ_l and
        # limit_j = N(r + log α − log(k_j/N)), constant in u; +∞ for the last group (no sample above it).
        self.log_alpha_r = r + math.log(alpha)
        self.coefficient = above - n
        self.limit = np.empty(values.size)
        self.limit[:-1] = n * (self.log_alpha_r + math.log(n)) - n * np.log(above[:-1])
        self.limit[-1] = math.inf
        self.alpha = alpha
        self.r = r
        self.log_r = math.log(r)
        self.largest = float(values[-1])
        rows = self.direct if self.direct is not None else self.rows
        self.excess, self.log_ratio = rows.excess, rows.log_ratio
        # The cap's work rows, free until the dual evaluation that follows it.
        self.work = (rows.square, rows.cube) if self.direct is not None else (rows.centred, rows.square)
        self.piece: tuple[int, bool] = (-1, False)
        self.final = math.nan

    def cap(self, log_ratio: np.ndarray) -> _Cap:
        """e*(u) from the log-positions log ŷ_g of the groups."""
        n = self.n
        prefix = np.cumsum(log_ratio if self.untied else self.counts * log_ratio, out=self.work[0])
        # N·log(k_j Q_j/α) + limit_j: the right slope at d_j is ≥ 0 where it is ≤ limit_j (first in j).
        test = np.multiply(self.coefficient, log_ratio, out=self.work[1])
        test += prefix
        first = int((test <= self.limit).argmax())
        above, here = self.above.item(first), self.counts.item(first)
        share = (above + here) / n
        log_first = log_ratio.item(first)
        prefix_first = prefix.item(first)
        kink = first == 0 or (
            math.log(share) - self.log_alpha_r + (prefix_first + above * log_first) / n >= log_first
        )
        if kink:
            cap_log = log_first
        else:
            below = prefix_first - here * log_first  # prefix up to the previous group
            cap_log = (below / n - self.log_alpha_r + math.log(share)) / (1.0 - share)
            cap_log = min(max(cap_log, log_ratio.item(first - 1)), log_first)
        return _Cap(first, kink, math.expm1(cap_log), cap_log)

    def capped(self, u: float) -> _Cap:
        """Fill ``self.excess`` with min(d, e*)/u for u > 0 and return the cap."""
        excess = np.divide(self.values, u, out=self.excess)
        cap = self.cap(np.log1p(excess, out=self.log_ratio))
        excess[cap.first :] = cap.excess
        return cap

    def gradient(self, u: float) -> tuple[float, float, float]:
        """(log(H + r) − log r, and its first two t-derivatives, the second NaN off a kink) for u > 0."""
        cap = self.capped(u)
        self.piece = (cap.first, cap.kink)
        # At a kink e* = d_J stays put as u moves: the atoms are fixed and F'' is the fixed-atom one.
        if self.direct is not None:
            self.log_ratio[cap.first :] = cap.log_ratio
            value, slope, bend, a = direct_gradient(self.weights, 0.0, self.direct, self.log_r)
            if not cap.kink:
                bend = math.nan
        else:
            value, slope, bend, a = dual_gradient(
                self.weights, self.excess, self.log_r, self.largest / u, self.rows, curvature=cap.kink
            )
        if not cap.kink and math.isfinite(value):
            # Along the interior path e*(u) moves with u: g'' = f_uu − f_ue²/f_ee adds this term to the slope
            # of H (divided by H + r = r·e^F for the slope of F).
            share = (self.above.item(cap.first) + self.counts.item(cap.first)) / self.n
            gap = cap.excess / (1.0 + cap.excess) - (1.0 - a)
            slope += share * gap * gap / ((1.0 - share) * a) / math.exp(value + self.log_r)
        return value, slope, bend

    def start(self) -> float:
        """A first u: the two-node start of the samples capped at their α-quantile of d, near e*."""
        if self.direct is None:
            return _start(self.values, self.weights, self.r)
        position = min(self.n - 1, math.ceil(self.n * (1.0 - self.alpha)))  # in ascending d, per sample
        group = position if self.untied else int(self.cumulative.searchsorted(position, "right"))
        capped = np.minimum(self.values, self.values.item(group))
        worst_mass = self.weights.item(0) if self.values.item(0) == 0.0 else 0.0
        return moments_start(capped, self.weights, worst_mass, self.r, self.direct)

    def same_piece(self, u: float) -> bool:
        """Whether e*(u) lies on the piece of the last ``gradient`` call (then F is smooth in between).

        e*(u) is nondecreasing in u (f_eu ≤ 0), so each piece is an interval of u: agreeing ends suffice.
        """
        cap = self.capped(u)
        self.final = u
        return (cap.first, cap.kink) == self.piece

    def q(self, u: float) -> np.ndarray:
        """The KL-ball maximiser q_g ∝ w_g/ŷ_g on the capped atoms, normalised (interior root u > 0)."""
        if u != self.final:
            self.capped(u)
        q = np.add(self.excess, 1.0, out=self.excess)
        np.divide(self.weights, q, out=q)
        return q / q.sum()  # Σq = e^{H(u*)} = 1 at the root: an interior q has no mass on the worst atom

    def boundary_q(self, force: bool = False) -> np.ndarray | None:
        """q at u* = 0 when every d > 0 and H(0) ≤ 0 (q_g = e^{−r}G(0)w_g/min(d_g, e*)), else None.

        ``force`` skips the sign test: for a root below e^−700, of which u* = 0 is the exact limit.
        """
        log_values = np.log(self.values)
        cap = self.cap(log_values)
        capped = self.values.copy()
        capped[cap.first :] = math.exp(cap.log_ratio)
        if not force and boundary_value(self.weights, capped, self.r) > 0.0:
            return None
        return math.exp(-self.r + float(self.weights @ np.log(capped))) * self.weights / capped


def solve_hr(values: np.ndarray, counts: np.ndarray, n: int, alpha: float, r: float) -> ProgramSolution:
    """The HR program: the KL ball around P̂ first, then poison at most α of the result.

    Solves min_{e,u ≥ 0} αe + u − e^{−r}exp((1/N)Σ log(u + min(d_i, e))); then q_i ∝ 1/(u* + min(d_i, e*)) and
    p removes α from q's largest d (cut equally inside a tie group), p_{N+1} = q_{N+1} + α. Requires α, r > 0.

    Args:
        values: Distinct normalised losses d (K,), ascending, in [0, 1].
        counts: Samples per value (K,).
        n: The number of samples, Σ counts.
        alpha: Poisoning fraction α ∈ (0, 1).
        r: KL radius r > 0.

    Returns:
        The grouped maximiser.
    """
    at_worst = int(counts[0]) if values[0] == 0.0 else 0
    movable = (n - at_worst) / n
    worst_group = values == 0.0
    if alpha >= movable:
        # q = P̂ already lets α cover every sample below the maximum.
        group_mass = np.where(worst_group, counts / n, 0.0)
        return ProgramSolution(group_mass, movable, movable)
    if binary_kl(movable, alpha) <= r:
        # The KL-closest q whose mass below the maximum is exactly α; poisoning then moves all of it. Without
        # samples at the maximum (an upper bound above the batch) q's remaining mass sits on the worst atom.
        group_mass = np.zeros(values.size)
        if at_worst:
            group_mass[worst_group] = counts[worst_group] / at_worst * (1.0 - alpha)
        return ProgramSolution(group_mass, _rest(group_mass), alpha)

    dual = _HRDual(values, counts, n, alpha, r)
    q = dual.boundary_q() if values[0] > 0.0 else None
    if q is None:
        try:
            q = dual.q(find_root(dual.gradient, dual.start(), dual.same_piece))
        except RootBelowRange:
            q = dual.boundary_q(force=True)
    kept, _ = trim_top(q, alpha)
    return ProgramSolution(kept, _rest(kept), alpha)
