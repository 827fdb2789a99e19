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

from hrcore.kl_dual import RootBelowRange, Scratch, boundary_value, dual_gradient, find_root


class GroupSolution(NamedTuple):
    """Maximiser of one program, per group of tied normalised losses.

    Attributes:
        group_mass: p's total mass on each group (K,), groups in ascending d (descending loss).
        worst_mass: p's mass on the worst atom (d = 0).
        removed_mass: Mass moved off the lowest losses onto the worst atom.
    """

    group_mass: np.ndarray
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
    # For small r the KL ball behaves like a χ² ball: u* ≈ σ/√(2r) in normalised units.
    centred = values - float(weights @ values)
    variance = float(weights @ (centred * centred))
    return math.exp(0.5 * (math.log(variance) - math.log(2.0 * r))) if variance > 0.0 else 1.0


def solve_hd(values: np.ndarray, counts: np.ndarray, n: int, alpha: float, r: float) -> GroupSolution:
    """The HD program: poison P̂ first, then the KL ball around the poisoned distribution.

    Solves min E_p[d] s.t. KL(q*‖p) ≤ r, where q* moves a = min(α, 1 − m/N) of P̂'s mass from the largest d
    onto the worst atom (m samples sit at d = 0); p_g = e^{−r}G(u*) q*_g/(u* + d_g).

    Args:
        values: Distinct normalised losses d (K,), ascending, in [0, 1].
        counts: Samples per value (K,).
        n: The number of samples, Σ counts.
        alpha: Poisoning fraction α ∈ [0, 1).
        r: KL radius r ≥ 0.

    Returns:
        The grouped maximiser.
    """
    merged = values[0] == 0.0
    at_worst = int(counts[0]) if merged else 0
    movable = (n - at_worst) / n
    moved = min(alpha, movable)
    mass = counts / n
    if alpha >= movable:
        mass[values > 0.0] = 0.0  # every sample below the maximum goes, exactly
        return GroupSolution(mass, moved, moved)
    poisoned, size = trim_top(mass, moved)
    if r == 0.0:
        return GroupSolution(poisoned, moved, moved)

    # Atoms without mass drop out of the dual. The worst atom sits at d = 0: with the samples at the maximum
    # it is one atom of the dual (equal d, so p splits it in proportion to q), else one more in front.
    if merged:
        atom_values = values[:size]
        atom_mass = poisoned[:size].copy()
        atom_mass[0] += moved
    else:
        if moved == 0.0:
            boundary = _boundary(values[:size], poisoned[:size], r)
            if boundary is not None:
                poisoned[:size] = boundary
                return GroupSolution(poisoned, _rest(boundary), moved)
        atom_values = np.concatenate(([0.0], values[:size]))
        atom_mass = np.concatenate(([moved], poisoned[:size]))

    log_r = math.log(r)
    largest = float(atom_values[-1])
    rows = Scratch(atom_values.size)
    excess = rows.excess

    def state(u: float) -> tuple[float, float, float]:
        np.divide(atom_values, u, out=excess)
        return dual_gradient(atom_mass, excess, log_r, largest / u, rows, curvature=True)[:3]

    try:
        u = find_root(state, _start(atom_values, atom_mass, r))
    except RootBelowRange:
        group_mass = np.zeros(values.size)
        if merged:
            # u* → 0 with mass at d = 0: p_g ∝ q_g/(u* + d_g) concentrates on d = 0, in proportion to q.
            group_mass[0] = float(poisoned[0]) / float(atom_mass[0])
            return GroupSolution(group_mass, moved / float(atom_mass[0]), moved)
        # A worst atom of negligible mass (e.g. α = 1e-200): the boundary solution is its exact limit.
        values_kept, mass_kept = atom_values[1:], atom_mass[1:]
        group_mass[:size] = math.exp(-r + float(mass_kept @ np.log(values_kept))) * mass_kept / values_kept
        return GroupSolution(group_mass, _rest(group_mass), moved)
    # p ∝ q/(u* + d) (u* ≥ e^−700 keeps q/u* finite); Σp = e^{H(u*)} = 1 at the root, and dividing by the
    # computed sum removes the last rounding. It is written over the poisoned masses, already 0 past `size`.
    p = np.divide(atom_mass, np.add(atom_values, u, out=excess), out=rows.inverse)
    total = float(p.sum())
    if merged:
        top = float(p[0]) / (total * float(atom_mass[0]))
        kept_top = float(poisoned[0])
        np.divide(p, total, out=poisoned[:size])
        poisoned[0] = top * kept_top
        return GroupSolution(poisoned, top * moved, moved)
    np.divide(p[1:], total, out=poisoned[:size])
    return GroupSolution(poisoned, float(p[0]) / total, moved)


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
        above = n - counts.cumsum()
        self.above_list = above.tolist()
        self.counts_list = counts.tolist()
        self.untied = counts.size == n
        self.rows = Scratch(values.size)
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
        self.excess, self.log_ratio = self.rows.excess, self.rows.log_ratio
        self.piece: tuple[int, bool] = (-1, False)
        self.final = math.nan

    def cap(self, log_ratio: np.ndarray) -> _Cap:
        """e*(u) from the log-positions log ŷ_g of the groups."""
        n = self.n
        # The cap's work rows are free until the dual evaluation that follows it.
        prefix = np.cumsum(log_ratio if self.untied else self.counts * log_ratio, out=self.rows.centred)
        # N·log(k_j Q_j/α) + limit_j: the right slope at d_j is ≥ 0 where it is ≤ limit_j (first in j).
        test = np.multiply(self.coefficient, log_ratio, out=self.rows.square)
        test += prefix
        first = int((test <= self.limit).argmax())
        above, here = self.above_list[first], self.counts_list[first]
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
        value, slope, bend, a = dual_gradient(
            self.weights, self.excess, self.log_r, self.largest / u, self.rows, curvature=cap.kink
        )
        if not cap.kink and math.isfinite(value):
            # Along the interior path e*(u) moves with u: g'' = f_uu − f_ue²/f_ee adds this term to the slope
            # of H (divided by H + r = r·e^F for the slope of F).
            share = (self.above_list[cap.first] + self.counts_list[cap.first]) / self.n
            gap = cap.excess / (1.0 + cap.excess) - (1.0 - a)
            slope += share * gap * gap / ((1.0 - share) * a) / math.exp(value + self.log_r)
        return value, slope, bend

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


def solve_hr(values: np.ndarray, counts: np.ndarray, n: int, alpha: float, r: float) -> GroupSolution:
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
        return GroupSolution(group_mass, movable, movable)
    if binary_kl(movable, alpha) <= r:
        # The KL-closest q whose mass below the maximum is exactly α; poisoning then moves all of it. Without
        # samples at the maximum (an upper bound above the batch) q's remaining mass sits on the worst atom.
        group_mass = np.zeros(values.size)
        if at_worst:
            group_mass[worst_group] = counts[worst_group] / at_worst * (1.0 - alpha)
        return GroupSolution(group_mass, _rest(group_mass), alpha)

    dual = _HRDual(values, counts, n, alpha, r)
    q = dual.boundary_q() if values[0] > 0.0 else None
    if q is None:
        try:
            q = dual.q(find_root(dual.gradient, _start(values, dual.weights, r), dual.same_piece))
        except RootBelowRange:
            q = dual.boundary_q(force=True)
    kept, _ = trim_top(q, alpha)
    return GroupSolution(kept, _rest(kept), alpha)
