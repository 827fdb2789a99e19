"""The main job (`make demo`) and the certificate example run end to end at toy size."""

from __future__ import annotations

from pathlib import Path

from example_runs import run_example
from frameworks import require

require("torch")
require("sklearn")


def test_demo_prints_the_comparison_and_writes_the_plot(tmp_path: Path) -> None:
    out = run_example("demo.py", "--out", str(tmp_path / "demo.png"), cwd=tmp_path)
    for row in ("ERM", "HR α", "HR r", "HR + ε"):
        assert f"\n{row} " in out
    assert "cert 0-1" in out and "test 0-1" in out
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"


def test_certificate_example_compares_bound_and_untouched_error(tmp_path: Path) -> None:
    out = run_example("certificate.py", cwd=tmp_path)
    assert out.count("E_test[loss] <=") == 2
    assert "untouched test digits" in out
