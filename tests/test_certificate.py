"""The finite-sample certificate: its formulas, its coverage in simulation, and its input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hrcore
from hrcore.certificate import certify, failure_probability, radius_for


def test_radius_and_failure_probability_are_inverse() -> None:
    for n in (1, 10, 1000, 10**6):
        for delta in (0.5, 0.05, 1e-6):
            r = radius_for(n, delta)
            assert failure_probability(n, r) == pytest.approx(delta, rel=1e-12)
            assert r == pytest.approx((math.log(1 / delta) + math.log(2) + 0.5 * math.log(n)) / n)
    assert radius_for(1000, 0.01) < radius_for(100, 0.01)
    assert failure_probability(10, 0.0) == 1.0


def test_certify_is_the_hd_value_with_the_worst_atom_at_the_bound() -> None:
    losses = (np.random.default_rng(0).uniform(size=500) < 0.1).astype(float)
    certificate = certify(losses, alpha=0.02, upper_bound=1.0, delta=0.05)
    expected = hrcore.solve(losses, 0.02, radius_for(500, 0.05), "HD", upper_bound=1.0).value
    assert certificate.bound == pytest.approx(expected)
    assert certificate.bound > certificate.empirical_mean + 0.02
    assert certificate.confidence == pytest.approx(0.95)
    text = str(certificate)
    assert "held-out" in text and "bounded" in text


def test_bound_covers_the_true_loss_at_the_promised_rate_even_under_poisoning() -> None:
    rng = np.random.default_rng(1)
    n, p, alpha, delta = 200, 0.15, 0.05, 0.2
    failures = 0
    trials = 400
    for _ in range(trials):
        losses = (rng.uniform(size=n) < p).astype(float)
        # The adversary replaces ⌊αn⌋ points by perfect ones, pulling the empirical loss down.
        losses[: int(alpha * n)] = 0.0
        failures += certify(losses, alpha, upper_bound=1.0, delta=delta).bound < p
    assert failures / trials <= delta


def test_batch_max_worst_atom_would_not_be_a_certificate() -> None:
    # All-zero held-out 0-1 losses: with the worst atom at the batch maximum the "bound" is 0, which the true
    # error rate can exceed; with B = 1 the certificate stays positive.
    losses = np.zeros(100)
    assert hrcore.solve(losses, 0.0, radius_for(100, 0.05)).value == 0.0
    assert certify(losses, 0.0, upper_bound=1.0, delta=0.05).bound > 0.05


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"r": 0.1, "delta": 0.05}, "exactly one"),
        ({}, "exactly one"),
        ({"r": 0.0}, "r > 0"),
        ({"delta": 1.5}, r"delta .* \(0, 1\)"),
        ({"delta": 0.05, "upper_bound": 0.5}, "below the largest loss"),
        ({"delta": 0.05, "upper_bound": None}, "upper_bound"),
    ],
)
def test_bad_certificate_arguments(kwargs: dict, message: str) -> None:
    arguments = {"upper_bound": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        certify(np.array([0.0, 1.0, 1.0]), 0.0, **arguments)


def test_bad_counts() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        radius_for(0, 0.05)
    with pytest.raises(ValueError, match="positive integer"):
        failure_probability(2.5, 0.1)  # type: ignore[arg-type]
