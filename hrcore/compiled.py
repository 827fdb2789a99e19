"""The common case of ``solve`` compiled with numba: a whole batch in one machine-code call.

Solves the HD program (poison P̂, then the KL dual in u by direct sums) and the HR program (the KL dual with
its inner cap e*(u) solved exactly, then poison) for a batch without mask or upper bound, with r ≥
DIRECT_RADIUS (or r = 0 for HD), in fused loops. At N ≈ 100 the numpy path spends most of its time in the
fixed cost of ~40 array calls, several-fold larger when the caches are cold after a training step; here a
solve is one call. HD needs no sort (a quickselect finds the poisoning cut); HR sorts to group ties and scan
the cap. The scalar pieces (the Halley/Newton step, the dual's derivatives, the two-node start, the binary
KL) are the numpy path's own functions, compiled, so both paths run the same iteration. Anything else (a
root below e^−700, all-equal losses, bad input) returns FALLBACK and is left to the numpy path, which also
owns every error message.

numba is optional (``pip install 'hrcore[fast]'``) and imported on first use: ``import hrcore`` stays fast.
"""

from __future__ import annotations

import os
import warnings
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
            from hrcore import kernels

            _kernels = {"hd": kernels.hd, "hr": kernels.hr}
        except ImportError:  # numba is optional: without it the numpy path serves every batch
            _kernels = {}
        except Exception as error:  # e.g. no writable cache directory: slower, never wrong
            warnings.warn(
                f"hrcore's compiled solver is unavailable ({type(error).__name__}: {error}); the numpy path "
                "serves every batch. Set NUMBA_CACHE_DIR to a writable directory, or HRCORE_COMPILED=0 to "
                "silence this.",
                RuntimeWarning,
                stacklevel=3,
            )
            _kernels = {}
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
    return _run("hd", losses, alpha, r) if r == 0.0 or r >= kl_dual.DIRECT_RADIUS else None


def solve_hr(losses: np.ndarray, alpha: float, r: float) -> tuple[Any, ...] | None:
    """The HR solution of a float64 batch (α > 0, r ≥ DIRECT_RADIUS), or None where numpy must take it.

    Computes what ``solve_hd`` does, for the HR program: sorted and grouped by tied loss, the inner cap e*(u)
    solved exactly at each step of the same root finder as ``hrcore.programs.solve_hr``.
    """
    return _run("hr", losses, alpha, r) if alpha > 0.0 and r >= kl_dual.DIRECT_RADIUS else None


def _run(kernel: str, losses: np.ndarray, alpha: float, r: float) -> tuple[Any, ...] | None:
    """One kernel's solution, or None (not compiled, or FALLBACK)."""
    kernels = _load() if ENABLED else None
    if kernels is None:
        return None
    # The kernel fills arrays made here: numba boxing its own arrays into numpy costs more than the solve.
    weights, sample_weights = np.empty(losses.size), np.empty(losses.size)
    result = kernels[kernel](losses, alpha, r, weights, sample_weights)
    return None if result[0] != SOLVED else (weights, sample_weights, *result[1:])
