"""The numba kernels behind ``hrcore.compiled``, imported only when numba is installed and a batch needs one.

Every kernel is cached on disk (``cache=True``), so a process compiles them once per installation instead of
paying ~5 s on its first batch. numba keys a cached kernel on its own source file only: after editing
``kl_dual.py`` or ``programs.py`` in a checkout, ``make clean`` drops the stale machine code.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import register_jitable

from hrcore import kl_dual, programs
from hrcore.compiled import FALLBACK, SOLVED

# side_derivatives → root_derivatives → log_gap call each other as plain globals: registering the callees
# lets compiled callers resolve them.
register_jitable(kl_dual.log_gap)
register_jitable(kl_dual.root_derivatives)
root_step = njit(cache=True)(kl_dual.root_step)
binary_kl = njit(cache=True)(programs.binary_kl)
whole_samples = njit(cache=True)(programs.whole_samples)
two_node_start = njit(cache=True)(kl_dual.two_node_start)
side_derivatives = njit(cache=True)(kl_dual.side_derivatives)
chi_square_start = njit(cache=True)(kl_dual.chi_square_start)
LOWEST_T = kl_dual._LOWEST_T
ITERATIONS = kl_dual._MAX_ITERATIONS
STEP_ON = kl_dual.STEP_ON
STEP_ROOT_IF_SMOOTH = kl_dual.STEP_ROOT_IF_SMOOTH


# ``direct_gradient`` in one pass: per atom, a, m, Σ w log(1+x) and the raw second and third moments of both
# sides of the spread (y and 1/(1+x)) are summed together; the side whose mean is small is picked at the end.
NO_ATOMS = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def add_atom(
    sums: tuple[float, float, float, float, float, float, float], w: float, x: float, log_ratio: float
) -> tuple[float, float, float, float, float, float, float]:
    a, m, log_sum, share2, share3, inverse2, inverse3 = sums
    inverse = 1.0 / (x + 1.0)
    share = x * inverse
    square = share * share
    inverse_square = inverse * inverse
    return (
        a + w * inverse,
        m + w * share,
        log_sum + w * log_ratio,
        share2 + w * square,
        share3 + w * square * share,
        inverse2 + w * inverse_square,
        inverse3 + w * inverse_square * inverse,
    )


@njit(cache=True, error_model="numpy", nogil=True)
def sums_derivatives(
    sums: tuple[float, float, float, float, float, float, float], worst_mass: float, log_r: float
) -> tuple[float, float, float, float]:
    # (F, F', F'', a) from the atoms' sums plus a worst atom of mass a₀ at x = 0 (adding a₀ to a and to
    # each power of 1/(1+x)).
    a, m, log_sum, share2, share3, inverse2, inverse3 = sums
    a += worst_mass
    gap = log_sum + math.log(a)
    if m <= 0.5:
        mean, second, third, sign = m, share2, share3, 1.0
    else:
        mean, second, third, sign = a, inverse2 + worst_mass, inverse3 + worst_mass, -1.0
    return (*side_derivatives(gap, m, a, mean, second, third, sign, log_r), a)


@njit(cache=True, error_model="numpy", nogil=True)
def hd_state(
    values: np.ndarray, mass: np.ndarray, moved: float, u: float, log_r: float
) -> tuple[float, float, float]:
    sums = NO_ATOMS
    for j in range(values.size):
        x = values[j] / u
        sums = add_atom(sums, mass[j], x, math.log1p(x))
    value, slope, bend, _ = sums_derivatives(sums, moved, log_r)
    return value, slope, bend


@njit(cache=True, error_model="numpy", nogil=True)
def start(values: np.ndarray, mass: np.ndarray, cap: float, worst_mass: float, r: float) -> float:
    # ``moments_start`` on the atoms min(d, cap): the χ² guess, polished by ``two_node_start``.
    first, second, third = 0.0, 0.0, 0.0
    for j in range(values.size):
        d = min(values[j], cap)
        w = mass[j] * d
        first += w
        second += w * d
        third += w * d * d
    guess = chi_square_start(second - first * first, r)
    return two_node_start(worst_mass, (first, second, third), r, guess)


@njit(cache=True, error_model="numpy", nogil=True)
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


@njit(cache=True, error_model="numpy", nogil=True)
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
    # ``poison_uniform``: the `removed` lowest losses go whole, the next is cut.
    removed = whole_samples(moved, n)
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
    t, low, high = math.log(start(values, mass, math.inf, moved, r)), -math.inf, math.inf
    log_r = math.log(r)
    outcome = STEP_ON
    for _ in range(ITERATIONS):
        if t <= LOWEST_T or t >= -LOWEST_T:
            break
        h, slope, bend = hd_state(values, mass, moved, math.exp(t), log_r)
        outcome, t, low, high = root_step(t, low, high, h, slope, bend)
        if outcome != STEP_ON:
            break
    if outcome == STEP_ON:
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


@njit(cache=True, error_model="numpy", nogil=True)
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


@njit(cache=True, error_model="numpy", nogil=True)
def hr_cap(
    values: np.ndarray,
    counts: np.ndarray,
    coefficient: np.ndarray,
    limit: np.ndarray,
    log_ratio: np.ndarray,
    n: int,
    u: float,
    log_alpha_r: float,
) -> tuple[int, bool, float, float]:
    # ``_HRDual.cap`` at u, stopping at the first group whose right slope is ≥ 0: the groups past it are
    # capped, so their log-positions are never needed. Fills log_ratio up to that group.
    prefix, first = 0.0, values.size - 1
    for j in range(values.size):
        log_ratio[j] = math.log1p(values[j] / u)
        prefix += counts[j] * log_ratio[j]
        if coefficient[j] * log_ratio[j] + prefix <= limit[j]:
            first = j
            break
    log_first = log_ratio[first]
    above = n + coefficient[first]  # samples strictly above the first capped group's d
    share = (above + counts[first]) / n
    kink = first == 0 or (math.log(share) - log_alpha_r + (prefix + above * log_first) / n >= log_first)
    if kink:
        cap_log = log_first
    else:
        below = prefix - counts[first] * log_first
        cap_log = (below / n - log_alpha_r + math.log(share)) / (1.0 - share)
        cap_log = min(max(cap_log, log_ratio[first - 1]), log_first)
    return first, kink, math.expm1(cap_log), cap_log


@njit(cache=True, error_model="numpy", nogil=True)
def hr_state(
    values: np.ndarray,
    weights: np.ndarray,
    first: int,
    kink: bool,
    cap_excess: float,
    cap_log: float,
    log_ratio: np.ndarray,
    u: float,
    log_r: float,
) -> tuple[float, float, float]:
    # ``_HRDual.gradient`` after the cap: ``direct_gradient`` over the uncapped groups, the capped ones
    # (all at x = e*/u) entering as one atom with their total mass.
    sums = NO_ATOMS
    for j in range(first):
        sums = add_atom(sums, weights[j], values[j] / u, log_ratio[j])
    capped = 0.0
    for j in range(first, values.size):
        capped += weights[j]
    sums = add_atom(sums, capped, cap_excess, cap_log)
    value, slope, bend, a = sums_derivatives(sums, 0.0, log_r)
    if not kink:
        bend = math.nan
        if math.isfinite(value):
            # Along the interior path e*(u) moves with u: g'' = f_uu − f_ue²/f_ee adds to the slope.
            gap_cap = cap_excess / (1.0 + cap_excess) - (1.0 - a)
            slope += capped * gap_cap * gap_cap / ((1.0 - capped) * a) / math.exp(value + log_r)
    return value, slope, bend


@njit(cache=True, error_model="numpy", nogil=True)
def hr(
    losses: np.ndarray, alpha: float, r: float, weights: np.ndarray, sample_weights: np.ndarray
) -> tuple[int, float, float, float, float]:
    n = losses.size
    for i in range(n):
        if not math.isfinite(losses[i]):
            return FALLBACK, 0.0, 0.0, 0.0, 0.0
    order = np.argsort(losses)
    worst = losses[order[n - 1]]
    spread = worst - losses[order[0]]
    if spread == 0.0:
        return FALLBACK, 0.0, 0.0, 0.0, 0.0
    # Distinct d = (M − ℓ)/S ascending (descending loss), their counts, and each sorted position's group.
    distinct, multiplicity, group = np.empty(n), np.empty(n), np.empty(n, dtype=np.intp)
    size = 0
    for j in range(n):
        d = (worst - losses[order[n - 1 - j]]) / spread
        if size == 0 or d != distinct[size - 1]:
            distinct[size] = d
            multiplicity[size] = 0.0
            size += 1
        multiplicity[size - 1] += 1.0
        group[j] = size - 1
    values, counts = distinct[:size], multiplicity[:size]
    at_worst = counts[0]
    movable = (n - at_worst) / n
    group_mass = np.zeros(size)
    if alpha >= movable:
        # q = P̂ already lets α cover every sample below the maximum.
        group_mass[0] = at_worst / n
        worst_mass, moved = movable, movable
    elif binary_kl(movable, alpha) <= r:
        # The KL-closest q with mass α below the maximum; poisoning then moves all of it.
        group_mass[0] = 1.0 - alpha
        worst_mass, moved = max(0.0, 1.0 - group_mass.sum()), alpha
    elif hr_dual_mass(values, counts, group, n, alpha, r, group_mass):
        worst_mass, moved = max(0.0, 1.0 - group_mass.sum()), alpha
    else:
        return FALLBACK, 0.0, 0.0, 0.0, 0.0
    return _expand(
        losses,
        order,
        group,
        values,
        counts,
        group_mass,
        weights,
        sample_weights,
        worst_mass,
        moved,
        worst,
        spread,
    )


@njit(cache=True, error_model="numpy", nogil=True)
def hr_dual_mass(
    values: np.ndarray,
    counts: np.ndarray,
    group: np.ndarray,
    n: int,
    alpha: float,
    r: float,
    group_mass: np.ndarray,
) -> bool:
    # The interior case of ``solve_hr``: p per group written into group_mass; False where the root finder
    # leaves its range (the numpy path then takes the boundary solution).
    size = values.size
    # ``_HRDual`` in direct mode: masses, the cap's constant limits, and the two-node start.
    masses = counts / n
    coefficient, limit = np.empty(size), np.empty(size)
    log_alpha_r = r + math.log(alpha)
    cumulative = 0.0
    for j in range(size):
        cumulative += counts[j]
        coefficient[j] = -cumulative  # (n − cumulative) − n
        limit[j] = n * (log_alpha_r + math.log(n)) - n * math.log(n - cumulative)
    limit[size - 1] = math.inf
    position = min(n - 1, math.ceil(n * (1.0 - alpha)))
    u = start(values, masses, values[group[position]], masses[0], r)
    log_ratio = np.empty(size)
    t, low, high = math.log(u), -math.inf, math.inf
    log_r = math.log(r)
    outcome = STEP_ON
    piece_first, piece_kink = -1, False
    for _ in range(ITERATIONS):
        if t <= LOWEST_T or t >= -LOWEST_T:
            break
        u = math.exp(t)
        first, kink, cap_excess, cap_log = hr_cap(
            values, counts, coefficient, limit, log_ratio, n, u, log_alpha_r
        )
        piece_first, piece_kink = first, kink
        h, slope, bend = hr_state(values, masses, first, kink, cap_excess, cap_log, log_ratio, u, log_r)
        outcome, t, low, high = root_step(t, low, high, h, slope, bend)
        if outcome == STEP_ROOT_IF_SMOOTH:
            # ``same_piece``: the last Halley step is taken only if e* stays on the piece it assumed.
            first, kink, _, _ = hr_cap(
                values, counts, coefficient, limit, log_ratio, n, math.exp(t), log_alpha_r
            )
            if first == piece_first and kink == piece_kink:
                break
            outcome = STEP_ON
        elif outcome != STEP_ON:
            break
    if outcome == STEP_ON:
        return False
    # q_g ∝ w_g/(1 + min(d_g, e*)/u*), then ``trim_top``: α off the largest d, whole groups then a cut.
    u = math.exp(t)
    first, kink, cap_excess, cap_log = hr_cap(
        values, counts, coefficient, limit, log_ratio, n, u, log_alpha_r
    )
    total = 0.0
    for j in range(size):
        x = values[j] / u if j < first else cap_excess
        group_mass[j] = masses[j] / (x + 1.0)
        total += group_mass[j]
    group_mass /= total
    tail, cut = 0.0, size
    while cut > 0 and tail + group_mass[cut - 1] <= alpha:
        tail += group_mass[cut - 1]
        cut -= 1
    if cut > 0:
        group_mass[cut - 1] = tail + group_mass[cut - 1] - alpha
    group_mass[cut:] = 0.0
    return True


@njit(cache=True, error_model="numpy", nogil=True)
def _expand(
    losses: np.ndarray,
    order: np.ndarray,
    group: np.ndarray,
    values: np.ndarray,
    counts: np.ndarray,
    group_mass: np.ndarray,
    weights: np.ndarray,
    sample_weights: np.ndarray,
    worst_mass: float,
    moved: float,
    worst: float,
    spread: float,
) -> tuple[int, float, float, float, float]:
    # Group masses split equally inside each tie group, per sample; the worst atom's mass is folded onto
    # the samples at the maximum (group 0), as ``_fold`` does.
    n = losses.size
    expected = 0.0
    for j in range(n):
        g = group[j]
        mass = group_mass[g] / counts[g]
        sample_weights[order[n - 1 - j]] = mass
        expected += mass * values[g]
    weights[:] = sample_weights
    for j in range(int(counts[0])):
        weights[order[n - 1 - j]] += worst_mass / counts[0]
    return SOLVED, worst_mass, moved, worst - spread * expected, worst
