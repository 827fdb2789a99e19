"""The JAX examples run as documented at toy size (--quick), offline, and write their plots."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from example_runs import EXAMPLES, run_example
from frameworks import require

require("jax")
require("optax")
require("sklearn")


def _run(script: str, tmp_path: Path, *arguments: str) -> str:
    plot = tmp_path / f"{script}.png"
    output = run_example(f"{script}.py", "--out", str(plot), *arguments, cwd=tmp_path, timeout=120)
    assert plot.stat().st_size > 1000
    return output


@pytest.mark.slow
@pytest.mark.parametrize("arguments", [(), ("--biases",)])
def test_mismatch_example_quick(tmp_path: Path, arguments: tuple[str, ...]) -> None:
    output = _run("mismatch_jax", tmp_path, *arguments)
    rows = [line.split("|") for line in output.splitlines() if line.count("|") == 3 and "±" in line]
    assert [float(row[0]) for row in rows] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    spreads = [[float(cell.split("±")[1]) for cell in row[1:3]] for row in rows]
    assert spreads[0] == [0.0, 0.0] and all(s > 0 for s in spreads[-1])  # ζ = 0: every draw is Θ itself


@pytest.mark.slow
def test_hr_example_quick(tmp_path: Path) -> None:
    output = _run("hr_jax", tmp_path)
    assert output.count("ERM epoch") == 2 and output.count(" HR epoch") == 2


def test_mismatch_example_biases_are_trained_and_attacked_parameters() -> None:
    jnp = require("jax.numpy")
    specification = importlib.util.spec_from_file_location("mismatch_jax", EXAMPLES / "mismatch_jax.py")
    example = importlib.util.module_from_spec(specification)
    specification.loader.exec_module(example)

    params = example.init_params(np.random.RandomState(0), 20, 8, 2, biases=True)
    assert set(params) == {"w_in", "b_in", "w_out", "b_out"}
    assert float(jnp.max(jnp.abs(params["b_in"]))) <= np.sqrt(1 / 8)
    inputs = jnp.ones((5, 20))
    without = dict(params, b_out=jnp.zeros(2))
    # The output bias shifts every time step's output by itself.
    shift = example.network(params, inputs) - example.network(without, inputs)
    np.testing.assert_allclose(shift, np.tile(params["b_out"], (5, 1)), rtol=1e-6)
    assert set(example.init_params(np.random.RandomState(0), 20, 8, 2)) == {"w_in", "w_out"}
