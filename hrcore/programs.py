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

from hrcore.kl_dual import dual_gradient, find_root, ratios


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


def trim_top(mass: np.ndarray, amount: float) -> np.ndarray:
    """Remove mass from the groups with the largest d (lowest losses) first.

    Computes mass_g − clip(amount − Σ_{h>g} mass_h, 0, mass_g): whole groups from the top, then a partial cut
    of the group where the amount runs out (split equally inside it by the caller's expansion).

    Args:
        mass: Group masses (K,), ascending d.
        amount: Mass to remove (≤ Σ mass).

    Returns:
        The remaining masses (K,).
    """
    above = np.cumsum(mass[::-1])[::-1] - mass
    return mass - np.clip(amount - above, 0.0, mass)


def _start(values: np.ndarray, weights: np.ndarray, r: float) -> float:
    # For small r the KL ball behaves like a χ² ball: u* ≈ σ/√(2r) in normalised units.
    mean = float(weights @ values)
    variance = float(weights @ (values - mean) ** 2)
    return math.sqrt(variance / (2.0 * r)) if variance > 0.0 else 1.0


def solve_hd(values: np.ndarray, counts: np.ndarray, alpha: float, r: float) -> GroupSolution:
    """The HD program: poison P̂ first, then the KL ball around the poisoned distribution.

    Solves min E_p[d] s.t. KL(q*‖p) ≤ r, where q* moves a = min(α, 1 − m/N) of P̂'s mass from the largest d
    onto the worst atom (m samples sit at d = 0); p_g = e^{−r}G(u*) q*_g/(u* + d_g).

    Args:
        values: Distinct normalised losses d (K,), ascending, in [0, 1].
        counts: Samples per value (K,).
        alpha: Poisoning fraction α ∈ [0, 1).
        r: KL radius r ≥ 0.

    Returns:
        The grouped maximiser.
    """
    n = int(counts.sum())
    at_worst = int(counts[0]) if values[0] == 0.0 else 0
    movable = (n - at_worst) / n
    moved = min(alpha, movable)
    poisoned = trim_top(counts / n, moved)
    if alpha >= movable:
        poisoned[values > 0.0] = 0.0  # exact zeros: rounding in trim_top must not leave a sliver behind
        return GroupSolution(poisoned, moved, moved)
    if r == 0.0:
        return GroupSolution(poisoned, moved, moved)

    # The worst atom is one more atom at d = 0 with mass `moved`; atoms without mass drop out of the dual.
    support = poisoned > 0.0
    atom_values = np.append(values[support], 0.0)
    atom_mass = np.append(poisoned[support], moved)
    if atom_mass[-1] == 0.0 and atom_values[0] > 0.0:
        boundary = _boundary(atom_values[:-1], atom_mass[:-1], r)
        if boundary is not None:
            group_mass = np.zeros_like(poisoned)
            group_mass[support] = boundary
            return GroupSolution(group_mass, 1.0 - float(boundary.sum()), moved)

    def state(u: float) -> tuple[float, float]:
        return dual_gradient(atom_mass, *ratios(atom_values, u), r)

    u = find_root(state, _start(atom_values, atom_mass, r))
    ratio, _ = ratios(atom_values, u)
    p = atom_mass / ratio
    p /= p.sum()  # Σp = e^{H(u*)} = 1 at the root; renormalising removes the last rounding
    group_mass = np.zeros_like(poisoned)
    group_mass[support] = p[:-1]
    return GroupSolution(group_mass, float(p[-1]), moved)


def _boundary(values: np.ndarray, mass: np.ndarray, r: float) -> np.ndarray | None:
    """The optimum on the boundary u* = 0, when no mass sits at d = 0 and H(0⁺) ≤ 0.

    Computes p_g = e^{−r}G(0) w_g/d_g (the worst atom takes 1 − Σp), or None when the root is interior.
    """
    ratio, log_ratio = ratios(values, 0.0)
    h, _ = dual_gradient(mass, ratio, log_ratio, r)
    if h > 0.0:
        return None
    scale = math.exp(-r + float(mass @ log_ratio))
    return scale * mass / ratio


def binary_kl(b: float, a: float) -> float:
    """Binary Kullback-Leibler divergence.

    Computes kl(b‖a) = b log(b/a) + (1 − b) log((1 − b)/(1 − a)), with 0 log 0 = 0.
    """
    total = b * math.log(b / a) if b > 0.0 else 0.0
    if b < 1.0:
        total += (1.0 - b) * math.log((1.0 - b) / (1.0 - a))
    return total


class _HRState(NamedTuple):
    h: float
    slope: float
    first_capped: int
    capped_ratio: float
    capped_log_ratio: float


class _HRDual:
    """H(u) of the HR outer problem with the inner cap e*(u) solved exactly.

    For fixed u, f(e) = αe − e^{−r}exp((1/N)Σ log(u + min(d_i, e))) is convex and piecewise smooth; with k_j
    samples strictly above d_j its one-sided slopes at the breakpoint d_j are α − k·Q_j with
    Q_j = e^{−r}G(d_j)/(N(u + d_j)). The first breakpoint J whose right slope is ≥ 0 either is the minimiser
    (a kink) or bounds the piece (d_{J−1}, d_J) holding the closed-form stationary point.
    """

    def __init__(self, values: np.ndarray, counts: np.ndarray, alpha: float, r: float) -> None:
        self.values = values
        self.counts = counts
        self.n = int(counts.sum())
        self.weights = counts / self.n
        self.above = self.n - np.cumsum(counts)
        with np.errstate(divide="ignore"):
            # log(k_j/N) − r − log α, constant in u; −∞ where no sample lies above d_j.
            self.offset = np.log(self.above / self.n) - r - math.log(alpha)
        self.alpha = alpha
        self.r = r

    def state(self, u: float) -> _HRState:
        n, above = self.n, self.above
        ratio, log_ratio = ratios(self.values, u)
        prefix = np.cumsum(self.counts * log_ratio)
        # log(k_j Q_j / α): the right slope at d_j is ≥ 0 where this is ≤ 0.
        log_right = self.offset + (prefix + above * log_ratio) / n - log_ratio
        first = int(np.argmax(log_right <= 0.0))
        capped = int(above[first] + self.counts[first])
        share = capped / n
        kink = first == 0 or (
            math.log(share)
            - self.r
            - math.log(self.alpha)
            + (prefix[first] + above[first] * log_ratio[first]) / n
            >= log_ratio[first]
        )
        if kink:
            cap_log = float(log_ratio[first])
        else:
            cap_log = (prefix[first - 1] / n - self.r - math.log(self.alpha / share)) / (1.0 - share)
            cap_log = min(max(cap_log, float(log_ratio[first - 1])), float(log_ratio[first]))
        cap = math.exp(cap_log)
        ratio[first:] = cap
        log_ratio[first:] = cap_log
        h, slope = dual_gradient(self.weights, ratio, log_ratio, self.r)
        if not kink:
            # Along the interior path e*(u) moves with u: g'' = f_uu − f_ue²/f_ee adds this term to the slope.
            a = float((self.weights / ratio).sum())
            slope += share * (a - 1.0 / cap) ** 2 / ((1.0 - share) * a)
        return _HRState(h, slope, first, cap, cap_log)

    def gradient(self, u: float) -> tuple[float, float]:
        s = self.state(u)
        return s.h, s.slope

    def q(self, u: float) -> np.ndarray:
        """The KL-ball maximiser q_g = e^{−r}G·w_g/ŷ_g on the capped atoms ŷ = (u + min(d, e*))/u."""
        s = self.state(u)
        ratio, log_ratio = ratios(self.values, u)
        ratio[s.first_capped :] = s.capped_ratio
        log_ratio[s.first_capped :] = s.capped_log_ratio
        scale = math.exp(-self.r + float(self.weights @ log_ratio))
        return scale * self.weights / ratio


def solve_hr(values: np.ndarray, counts: np.ndarray, alpha: float, r: float) -> GroupSolution:
    """The HR program: the KL ball around P̂ first, then poison at most α of the result.

    Solves min_{e,u ≥ 0} αe + u − e^{−r}exp((1/N)Σ log(u + min(d_i, e))); then q_i ∝ 1/(u* + min(d_i, e*)) and
    p removes α from q's largest d (cut equally inside a tie group), p_{N+1} = q_{N+1} + α. Requires α, r > 0.

    Args:
        values: Distinct normalised losses d (K,), ascending, in [0, 1].
        counts: Samples per value (K,).
        alpha: Poisoning fraction α ∈ (0, 1).
        r: KL radius r > 0.

    Returns:
        The grouped maximiser.
    """
    n = int(counts.sum())
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
        return GroupSolution(group_mass, 1.0 - float(group_mass.sum()), alpha)

    dual = _HRDual(values, counts, alpha, r)
    if values[0] > 0.0 and dual.state(0.0).h <= 0.0:
        kept = trim_top(dual.q(0.0), alpha)
        return GroupSolution(kept, 1.0 - float(kept.sum()), alpha)
    q = dual.q(find_root(dual.gradient, _start(values, dual.weights, r)))
    q /= q.sum()  # at an interior root q has no mass on the worst atom and Σq = e^{H(u*)} = 1
    kept = trim_top(q, alpha)
    return GroupSolution(kept, 1.0 - float(kept.sum()), alpha)
