"""The shared AdvConfig: NSL's names and defaults, canonical norms, and its input checks."""

from __future__ import annotations

import enum

import numpy as np
import pytest

from hrcore.adversarial import AdvConfig


def test_defaults_are_nsl_defaults_and_the_config_round_trips() -> None:
    config = AdvConfig()
    assert (config.multiplier, config.adv_step_size, config.adv_grad_norm) == (0.2, 0.001, "l2")
    assert (config.pgd_iterations, config.pgd_epsilon, config.random_init) == (1, None, False)
    assert AdvConfig(**config.get_config()) == config


def test_norm_names_and_enums_are_canonical() -> None:
    class NormType(enum.Enum):
        INFINITY = "infinity"

    assert AdvConfig(adv_grad_norm="infinity").adv_grad_norm == "linf"
    assert AdvConfig(adv_grad_norm=NormType.INFINITY).adv_grad_norm == "linf"
    assert AdvConfig(adv_grad_norm="L1").adv_grad_norm == "l1"


def test_per_feature_bounds_are_accepted() -> None:
    AdvConfig(clip_value_min={"image": 0.0}, clip_value_max={"image": 1.0})
    AdvConfig(clip_value_min=[0.0, None], clip_value_max=np.ones(3))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"adv_step_size": -1.0}, ValueError, "adv_step_size"),
        ({"multiplier": float("nan")}, ValueError, "multiplier"),
        ({"adv_grad_norm": "l3"}, ValueError, "norm must be one of"),
        ({"pgd_iterations": 0}, ValueError, "pgd_iterations must be >= 1"),
        ({"pgd_iterations": 2.0}, TypeError, "pgd_iterations must be an integer"),
        ({"pgd_epsilon": -0.1}, ValueError, "pgd_epsilon"),
        ({"random_init": True}, ValueError, "needs pgd_epsilon"),
        ({"random_init": "yes", "pgd_epsilon": 0.1}, TypeError, "random_init must be a bool"),
        ({"clip_value_min": 1.0, "clip_value_max": 0.0}, ValueError, "exceeds clip_value_max"),
        ({"clip_value_min": "low"}, TypeError, "clip_value_min must be None"),
    ],
)
def test_bad_configuration(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        AdvConfig(**kwargs)
