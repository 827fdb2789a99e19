"""The PyTorch examples run as documented, at toy size (``--quick``), offline."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from example_runs import EXAMPLES, run_example
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
@pytest.mark.parametrize("arguments", [(), ("--biases",)])
def test_mismatch_torch_example(tmp_path, arguments):
    output = run_example("mismatch_torch.py", "--out", "curves.png", *arguments, cwd=tmp_path)
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


def test_mismatch_torch_network_initialisation():
    specification = importlib.util.spec_from_file_location("mismatch_torch", EXAMPLES / "mismatch_torch.py")
    example = importlib.util.module_from_spec(specification)
    specification.loader.exec_module(example)

    net = example.make_network(np.random.default_rng(0), 20, 8, 2, biases=True)
    largest = {name: float(value.detach().abs().max()) for name, value in net.named_parameters()}
    assert set(largest) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert largest["0.bias"] <= np.sqrt(1 / 20) and largest["2.bias"] <= np.sqrt(1 / 8)
    assert largest["0.weight"] <= np.sqrt(6 / 20) and largest["2.weight"] <= np.sqrt(6 / 8)
    # Kaiming-uniform spans its range: the largest of 160 draws is close to the limit.
    assert largest["0.weight"] > 0.9 * np.sqrt(6 / 20)
    bare = example.make_network(np.random.default_rng(0), 20, 8, 2)
    assert bare[0].bias is None and bare[2].bias is None
