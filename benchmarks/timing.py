"""Interleaved timing: medians of many repetitions, the candidates taking turns so load hits them alike."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def interleaved_medians(
    candidates: dict[str, Callable[[], object]],
    repeats: int = 50,
    warmup: int = 3,
    clock: Callable[[], float] = time.perf_counter,
    rotate: bool = True,
) -> dict[str, float]:
    """Median time in seconds of each candidate over interleaved repetitions.

    Each round runs every candidate once, in an order that rotates between rounds, so that a burst of machine
    load penalises all of them alike; ratios of the medians are what the benchmarks report.

    Args:
        candidates: Name -> zero-argument callable (it must block until its work is done).
        repeats: Timed rounds.
        warmup: Untimed rounds first (compilation, caches).
        clock: The clock: wall time by default; ``time.process_time`` counts this process's CPU time only,
            which is steadier on a shared machine for single-threaded work.
        rotate: Rotate the order between rounds. False keeps the given order in every round, so each
            candidate always runs right after the same one (e.g. a fast call after a slow one that evicts
            the caches, as in a training loop).

    Returns:
        Name -> median seconds.
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names) if rotate else 0
        for name in names[shift:] + names[:shift]:
            start = clock()
            candidates[name]()
            times[name].append(clock() - start)
    return {name: float(np.median(values)) for name, values in times.items()}
