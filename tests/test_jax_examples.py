"""The JAX examples run as documented at toy size (--quick), offline, and write their plots."""

from __future__ import annotations

from pathlib import Path

import pytest
from example_runs import run_example
from frameworks import require

require("jax")
require("optax")
require("sklearn")


def _run(script: str, tmp_path: Path) -> str:
    plot = tmp_path / f"{script}.png"
    output = run_example(f"{script}.py", "--out", str(plot), cwd=tmp_path, timeout=120)
    assert plot.stat().st_size > 1000
    return output


@pytest.mark.slow
def test_mismatch_example_quick(tmp_path: Path) -> None:
    output = _run("mismatch_jax", tmp_path)
    rows = [line.split("|") for line in output.splitlines() if line.count("|") == 3 and "±" in line]
    assert [float(row[0]) for row in rows] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    spreads = [[float(cell.split("±")[1]) for cell in row[1:3]] for row in rows]
    assert spreads[0] == [0.0, 0.0] and all(s > 0 for s in spreads[-1])  # ζ = 0: every draw is Θ itself


@pytest.mark.slow
def test_hr_example_quick(tmp_path: Path) -> None:
    output = _run("hr_jax", tmp_path)
    assert output.count("ERM epoch") == 2 and output.count(" HR epoch") == 2
