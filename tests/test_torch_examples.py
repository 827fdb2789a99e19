"""The PyTorch examples run as documented, at toy size (``--quick``), offline."""

from __future__ import annotations

import numpy as np
import pytest
from example_runs import run_example
from frameworks import require

require("torch")


@pytest.mark.slow
def test_hr_torch_example(tmp_path):
    output = run_example("hr_torch.py", cwd=tmp_path)
    for run in ("ERM", "HRLoss", "HR_Neural_Networks ε=0 ", "HR_Neural_Networks ε=0.5"):
        assert run in output
    assert output.count("test accuracy") >= 8  # 4 runs × 2 epochs
    rows = {line[:26].strip(): line[26:].split() for line in output.splitlines()[-4:]}
    # The swap and the original API compute the same loss on the same batches: identical results.
    assert rows["HRLoss"] == rows["HR_Neural_Networks ε=0"]


@pytest.mark.slow
def test_mismatch_torch_example(tmp_path):
    output = run_example("mismatch_torch.py", "--out", "curves.png", cwd=tmp_path)
    assert (tmp_path / "curves.png").stat().st_size > 0
    table = [line for line in output.splitlines() if line.strip()[:3] in {"0.0", "0.1", "0.6"}]
    assert len(table) == 3
    assert "± 0 |" in table[0] or "±         0" in table[0]  # no spread without mismatch


@pytest.mark.slow
def test_adversarial_training_example_on_digits_and_a_user_supplied_mnist(tmp_path):
    output = run_example("adversarial_training.py", "--out", "accuracy.png", cwd=tmp_path)
    assert (tmp_path / "accuracy.png").stat().st_size > 0
    for mode in ("standard", "adversarial", "noise"):
        assert f"{mode:<11} epoch   2" in output
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 40),
        x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 20),
    )
    output = run_example("adversarial_training.py", "--mnist", "mnist.npz", "--epochs", "1", cwd=tmp_path)
    assert "of shape (1, 28, 28)" in output
    assert (tmp_path / "adversarial_training.png").exists()
