"""Hypothesis strategies for batches of per-sample losses and HR hyper-parameters."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

SHAPES = ("uniform", "lognormal", "ties", "tiny", "huge", "negative", "binary")


@st.composite
def loss_batches(draw: st.DrawFn, max_size: int = 512) -> np.ndarray:
    """A batch of losses of a random shape: spread, skewed, heavily tied, 1e-6 or 1e6 scaled, or negative."""
    n = draw(st.one_of(st.integers(1, 8), st.integers(1, 64), st.integers(1, max_size)))
    shape = draw(st.sampled_from(SHAPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if shape == "uniform":
        return rng.uniform(0.0, 3.0, n)
    if shape == "lognormal":
        return rng.lognormal(0.0, 1.0, n)
    if shape == "ties":
        return rng.integers(0, draw(st.integers(1, 5)), n).astype(np.float64) * 0.5
    if shape == "tiny":
        return rng.lognormal(0.0, 1.0, n) * 1e-6
    if shape == "huge":
        return rng.lognormal(0.0, 1.0, n) * 1e6
    if shape == "negative":
        return rng.normal(-2.0, 1.0, n)
    return (rng.uniform(size=n) < 0.2).astype(np.float64)


alphas = st.one_of(st.just(0.0), st.sampled_from([0.01, 0.05, 0.1, 0.25, 0.5]), st.floats(0.0, 0.5))
radii = st.one_of(st.just(0.0), st.sampled_from([1e-3, 0.01, 0.1, 1.0]), st.floats(0.0, 1.0))
# The conic oracle meets KL ≤ r only up to its feasibility tolerance ε (~1e-10), which moves V by about
# σ(√(2(r + ε)) − √(2r)): above 1e-7 relative once r < 1e-5. Compare against it where it is accurate.
oracle_radii = st.one_of(st.just(0.0), st.sampled_from([1e-4, 1e-3, 0.01, 0.1, 1.0]), st.floats(1e-4, 1.0))
ambiguities = st.sampled_from(["HD", "HR"])
