"""Evaluation summaries, plots, and the import rules of the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hrcore.evaluation import adversarial_accuracy_from_predictions, summarize_draws

ROOT = Path(__file__).resolve().parents[1]


def test_adversarial_accuracy_counts_only_correct_originals() -> None:
    labels = np.array([0, 1, 2, 3])
    clean = np.array([0, 1, 2, 0])  # three correct
    adv = np.array([0, 2, 2, 3])  # of those three, two survive; the wrong original is right after attack
    result = adversarial_accuracy_from_predictions(labels, clean, adv)
    assert result.clean == pytest.approx(0.75)
    assert result.conditional == pytest.approx(2 / 3)
    assert result.robust == pytest.approx(0.75)
    clean_acc, conditional, robust = result
    assert (clean_acc, conditional, robust) == tuple(result)
    none_right = adversarial_accuracy_from_predictions([1, 1], [0, 0], [1, 1])
    assert np.isnan(none_right.conditional)
    with pytest.raises(ValueError, match="differ in length"):
        adversarial_accuracy_from_predictions([1, 2], [1], [1, 2])
    with pytest.raises(ValueError, match="empty"):
        adversarial_accuracy_from_predictions([], [], [])


def test_summarize_draws() -> None:
    curve = summarize_draws([0.0, 0.5], [[1.0, 3.0], [2.0, 2.0]])
    np.testing.assert_allclose(curve.mean, [2.0, 2.0])
    np.testing.assert_allclose(curve.std, [1.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        summarize_draws([0.0, 0.5], [[1.0, 3.0]])


def test_plots_write_png_files(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from hrcore import plot

    curve = summarize_draws([0.0, 0.1, 0.2], np.abs(np.random.default_rng(0).normal(size=(3, 20))))
    paths = [
        plot.plot_robustness_curves({"robust": curve, "standard": curve}, tmp_path / "a.png", log_y=True),
        plot.plot_accuracy_over_epochs(
            {"ERM": {"clean": [0.5, 0.7], "adversarial": [0.1, 0.2]}}, tmp_path / "b.png"
        ),
        plot.plot_weight_histogram(np.full(10, 0.1), tmp_path / "c.png"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def run_python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, check=False)


def test_importing_the_core_and_adapter_package_loads_no_framework() -> None:
    result = run_python(
        "import sys, hrcore, hrcore.adapters, hrcore.geometry, hrcore.certificate, hrcore.reference;"
        "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'keras', 'cvxpy', 'matplotlib')"
        " if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_adapters_folder_refuses_a_top_level_import() -> None:
    result = run_python("import adapters", cwd=ROOT)
    assert result.returncode != 0
    assert "hrcore.adapters" in result.stderr


def test_robustness_table_lists_each_level_with_the_ratio() -> None:
    from hrcore.evaluation import robustness_table

    robust = summarize_draws([0.0, 0.3], [[1.0, 1.0], [2.0, 4.0]])
    standard = summarize_draws([0.0, 0.3], [[0.5, 0.5], [6.0, 6.0]])
    lines = robustness_table(
        {"robust": robust, "standard": standard}, ratio=("standard", "robust")
    ).splitlines()
    assert len(lines) == 3 and lines[0].endswith("standard/robust")
    assert lines[2].split("|")[-1].strip() == "2.00"
    with pytest.raises(ValueError, match="same levels"):
        robustness_table({"a": robust, "b": summarize_draws([0.0, 0.5], [[1.0], [1.0]])})
