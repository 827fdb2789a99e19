"""hrcore's main job end to end (``make demo``): robust training on poisoned digits, attacked at test time.

scikit-learn's digits (offline) are split three ways: train / certify / test. A fraction of the training
labels is flipped (poisoning). The same network is trained with the same budget — ERM, HR with α only, with
r only, HR (α, r), and HR + ε (PGD-L2 inside the loss) — then evaluated on the untouched test split: clean
accuracy, accuracy under a PGD-L2 evasion attack (on correctly classified originals, and unconditional), the
train–test gap, and the certified bound on the 0-1 loss (HD with B = 1 on the held-out certify split, r for
δ = 0.05) next to the test error that neither training nor certification touched. Writes a PNG of accuracy
over epochs for ERM, HR and HR + ε.

Run: ``python examples/demo.py`` (``--quick`` for a smoke run, ``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from tqdm import tqdm

from hrcore.adapters.torch import HRCriterion, HRLoss, accuracy, adversarial_accuracy, pgd, predict
from hrcore.certificate import certify
from hrcore.plot import plot_accuracy_over_epochs


def load_splits(seed: int, flip: float) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Digits scaled to [0, 1], split 60/20/20 (stratified) into train/certify/test; flip training labels."""
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    y = digits.target.astype(np.int64)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=seed)
    x_cert, x_test, y_cert, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed
    )
    rng = np.random.default_rng(seed)
    poisoned = y_train.copy()
    flipped = rng.choice(y_train.size, size=round(flip * y_train.size), replace=False)
    # A flipped label is any other class: the poisoned points are wrong, not merely noisy.
    poisoned[flipped] = (y_train[flipped] + rng.integers(1, 10, size=flipped.size)) % 10
    as_tensors = lambda a, b: (torch.from_numpy(a), torch.from_numpy(b))  # noqa: E731
    return {
        "train": as_tensors(x_train, poisoned),
        "train_clean": as_tensors(x_train, y_train),
        "certify": as_tensors(x_cert, y_cert),
        "test": as_tensors(x_test, y_test),
    }


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))


LossOf = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def train(
    name: str,
    objective_for: Callable[[nn.Module], LossOf],
    data: dict[str, tuple[torch.Tensor, torch.Tensor]],
    args: argparse.Namespace,
    evaluate_attack: Callable[..., torch.Tensor],
) -> tuple[nn.Module, dict[str, list[float]], float]:
    """Train one model: returns it, its test accuracies per epoch (clean, attacked), and seconds per epoch."""
    model = make_model(args.seed)
    objective = objective_for(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    x, y = data["train"]
    x_test, y_test = data["test"]
    generator = torch.Generator().manual_seed(args.seed)
    history: dict[str, list[float]] = {"clean": [], "PGD-L2": []}
    seconds = 0.0
    for _ in tqdm(range(args.epochs), desc=f"{name:>8}", leave=False):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(x.shape[0], generator=generator)
        for batch in order.split(args.batch_size):
            optimizer.zero_grad()
            objective(x[batch], y[batch]).backward()
            optimizer.step()
        seconds += time.perf_counter() - start
        model.eval()
        history["clean"].append(accuracy(model, x_test, y_test))
        history["PGD-L2"].append(adversarial_accuracy(model, x_test, y_test, evaluate_attack).robust)
    return model, history, seconds / args.epochs


def zero_one_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return (predict(model, x) != y).numpy().astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--flip", type=float, default=0.1, help="fraction of training labels flipped")
    parser.add_argument("--alpha", type=float, default=0.1, help="HR poisoning fraction α")
    parser.add_argument("--r", type=float, default=0.1, help="HR KL radius r")
    parser.add_argument(
        "--eps", type=float, default=1.0, help="L2 radius of the evasion attack (pixels in [0,1])"
    )
    parser.add_argument("--delta", type=float, default=0.05, help="failure probability of the certificate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("demo.png"))
    parser.add_argument("--quick", action="store_true", help="a few epochs, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 2
    torch.set_num_threads(min(2, torch.get_num_threads()))

    data = load_splits(args.seed, args.flip)
    bounds = (0.0, 1.0)
    # The evaluation attack: PGD-L2, 20 steps, from the clean point (strongest start for a fixed budget).
    attack = functools.partial(
        pgd, eps=args.eps, step_size=args.eps / 8, steps=20, norm="l2", random_start=False, bounds=bounds
    )
    base = nn.CrossEntropyLoss(reduction="none")

    def erm(model: nn.Module) -> LossOf:
        mean = nn.CrossEntropyLoss()
        return lambda x, y: mean(model(x), y)

    def hr(alpha: float, r: float) -> Callable[[nn.Module], LossOf]:
        def objective(model: nn.Module) -> LossOf:
            # The one-line swap: HRLoss around the per-sample loss.
            criterion = HRLoss(base, alpha=alpha, r=r)
            return lambda x, y: criterion(model(x), y)

        return objective

    def hr_eps(model: nn.Module) -> LossOf:
        # HR over the losses at PGD-L2 points of the ε-ball: HR with ε.
        return HRCriterion(
            model, base, args.alpha, args.r, eps=args.eps, norm="l2", attack_steps=10,
            step_size=args.eps / 4, bounds=bounds, generator=args.seed,
        )  # fmt: skip

    # α alone and r alone separate what each buys from their combination.
    runs: dict[str, Callable[[nn.Module], LossOf]] = {
        "ERM": erm,
        "HR α": hr(args.alpha, 0.0),
        "HR r": hr(0.0, args.r),
        "HR": hr(args.alpha, args.r),
        "HR + ε": hr_eps,
    }

    print(
        f"digits: {data['train'][0].shape[0]} train ({args.flip:.0%} labels flipped) / "
        f"{data['certify'][0].shape[0]} certify / {data['test'][0].shape[0]} test; "
        f"α={args.alpha}, r={args.r}, ε={args.eps} (L2), {args.epochs} epochs"
    )
    rows, histories = [], {}
    for name, objective_for in runs.items():
        model, history, seconds = train(name, objective_for, data, args, attack)
        histories[name] = history
        x_test, y_test = data["test"]
        result = adversarial_accuracy(model, x_test, y_test, attack)
        train_accuracy = accuracy(model, *data["train_clean"])
        certificate = certify(
            zero_one_losses(model, *data["certify"]), 0.0, upper_bound=1.0, delta=args.delta
        )
        test_error = float(zero_one_losses(model, x_test, y_test).mean())
        rows.append((name, result, train_accuracy - result.clean, certificate.bound, test_error, seconds))

    header = (
        f"{'run':<8} {'clean':>7} {'adv|ok':>7} {'adv':>7} {'gap':>7} "
        f"{'cert 0-1':>9} {'test 0-1':>9} {'s/epoch':>8}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for name, result, gap, bound, test_error, seconds in rows:
        print(
            f"{name:<8} {result.clean:7.3f} {result.conditional:7.3f} {result.robust:7.3f} {gap:7.3f} "
            f"{bound:9.3f} {test_error:9.3f} {seconds:8.3f}"
        )
    print(
        "\nclean: test accuracy; adv|ok: PGD-L2 accuracy on correctly classified test originals; adv: "
        "unconditional PGD-L2 accuracy;\ngap: accuracy on the training inputs (true labels) minus test "
        f"accuracy; cert 0-1: bound on the test error certified on the held-out split with probability "
        f"{1 - args.delta:.2f}\n(α = 0 there: that split is clean); "
        "test 0-1: error on the untouched test split."
    )
    plotted = {name: histories[name] for name in ("ERM", "HR", "HR + ε")}
    path = plot_accuracy_over_epochs(plotted, args.out, title="digits: test accuracy over epochs")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
