"""PyTorch adapter overheads, as ratios against baselines timed in the same run (interleaved medians).

1. HR training step ÷ ERM training step: a small CNN on a batch of 128 (1×28×28), ε = 0, SGD. The HR step adds
   one host round trip of 128 losses and the exact solve; target ≤ 1.05×.
2. ``pgd`` (10 steps, L∞, random start, eval mode) ÷ ten hand-written input-gradient steps (forward +
   ``torch.autograd.grad`` w.r.t. the inputs, and the inline signed step and clip, from a uniform start) on
   the same CNN and batch; target ≤ 1.05×.

Run ``python benchmarks/bench_torch.py`` (``--repeats``: rounds, ≥ 50; ``--threads``: torch intra-op threads,
default 1: on a shared CPU a second thread makes every timing bimodal, waiting on a descheduled worker).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import numpy as np
import torch
from timing import interleaved_medians
from torch import nn

import hrcore
from hrcore.adapters.torch import HRLoss, pgd


def small_cnn() -> nn.Module:
    """conv(1→16, 3) → ReLU → pool → conv(16→32, 3) → ReLU → pool → linear(800→10)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 5 * 5, 10),
    )


def training_step(
    model: nn.Module, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> Callable[..., None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(model(x), y).backward()
        optimizer.step()

    return step


def report(name: str, ratio: float, target: float, detail: str) -> bool:
    verdict = "ok" if ratio <= target else "ABOVE TARGET"
    print(f"{name:<44} {ratio:6.3f}×   target ≤ {target:.2f}×   {verdict}   ({detail})")
    return ratio <= target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60, help="interleaved timed rounds (≥ 50)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    repeats = max(args.repeats, 50)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(128, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (128,), generator=generator)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 128 × 1×28×28, {repeats} rounds"
    )

    model = small_cnn()
    erm_step = training_step(model, nn.CrossEntropyLoss())
    hr_model = copy.deepcopy(model)
    hr_step = training_step(hr_model, HRLoss(nn.CrossEntropyLoss(reduction="none"), alpha=0.05, r=0.1))
    losses = np.random.default_rng(0).exponential(size=128)
    steps = interleaved_medians(
        {
            "erm": lambda: erm_step(x, y),
            "hr": lambda: hr_step(x, y),
            "solve": lambda: hrcore.solve(losses, alpha=0.05, r=0.1),
        },
        repeats=repeats,
    )

    attacked = small_cnn().eval()

    def hand_written() -> None:
        # Ten input-gradient steps written inline, moving through the same kind of points as PGD (uniform
        # start in the L∞ ball, signed steps, clip): the CNN's cost depends on its inputs, so a baseline that
        # re-evaluated the clean x would flatter itself by a few percent.
        generator = torch.Generator().manual_seed(0)
        point = x + 0.3 * (2.0 * torch.rand(x.shape, generator=generator) - 1.0)
        for _ in range(10):
            leaf = point.detach().requires_grad_(True)
            loss = nn.functional.cross_entropy(attacked(leaf), y, reduction="none").sum()
            (grad,) = torch.autograd.grad(loss, leaf)
            with torch.no_grad():
                point = x + (leaf + 0.05 * grad.sign() - x).clamp(-0.3, 0.3)

    attacks = interleaved_medians(
        {
            "hand": hand_written,
            "pgd": lambda: pgd(attacked, x, y, eps=0.3, step_size=0.05, steps=10, norm="linf", key=0),
        },
        repeats=repeats,
    )

    print()
    ok = report(
        "HR step ÷ ERM step (CNN, batch 128, ε = 0)",
        steps["hr"] / steps["erm"],
        1.05,
        f"ERM {steps['erm'] * 1e3:.2f} ms, HR {steps['hr'] * 1e3:.2f} ms, "
        f"of which the solve ≈ {steps['solve'] * 1e3:.3f} ms",
    )
    ok &= report(
        "PGD-10 ÷ ten hand-written input-gradient steps",
        attacks["pgd"] / attacks["hand"],
        1.05,
        f"hand {attacks['hand'] * 1e3:.2f} ms, pgd {attacks['pgd'] * 1e3:.2f} ms",
    )
    if not ok:
        print("\nA target was missed (see above); like the other benchmarks this reports it and exits 0.")
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    status = main()
    print(f"\n(bench_torch took {time.perf_counter() - start:.0f} s)")
    raise SystemExit(status)
