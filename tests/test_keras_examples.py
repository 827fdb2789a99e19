"""The Keras examples run as documented, at toy size (``--quick``), offline."""

from __future__ import annotations

import pytest
from example_runs import run_example
from frameworks import require

require("tensorflow")
require("keras")


def table_after(output: str, header: str, width: int) -> dict[str, list[str]]:
    """The indented rows after the line starting with ``header``: name (up to ``width``) -> values."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header)) + 1
    rows = {}
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        rows[line[2:width].strip()] = line[width:].split()
    return rows


@pytest.mark.slow
def test_hr_keras_example(tmp_path):
    output = run_example("hr_keras.py", "--out", "curves.png", cwd=tmp_path)
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert output.count("test accuracy") >= 6  # 3 runs × 2 epochs
    rows = table_after(output, "test accuracy after", 19)
    assert set(rows) == {"ERM", "HRLoss", "hr_weights loop"}
    # The same batches and the same loss, once through compile/fit and once through sample_weight.
    assert rows["HRLoss"] == rows["hr_weights loop"]
    assert "easiest examples at 0" in output


@pytest.mark.slow
def test_input_adversarial_keras_example(tmp_path):
    output = run_example("input_adversarial_keras.py", "--out", "accuracy.png", cwd=tmp_path)
    assert (tmp_path / "accuracy.png").stat().st_size > 0
    rows = table_after(output, "  run ", 15)
    assert set(rows) == {"standard", "custom loop", "wrapper"}
    # The NSL-style loop and the Keras wrapper take the same steps on the same batches.
    assert rows["custom loop"] == rows["wrapper"]
