"""HR training in PyTorch on sklearn's digits: the one-line swap and the original HR_Neural_Networks loop.

Four runs of the same MLP (64→64→10) on the 8×8 digits (pixels scaled to [0, 1], flattened), with a fraction
of the training labels flipped at random to give α something to do:

* ERM: ``nn.CrossEntropyLoss()``;
* HRLoss: the one-line swap ``HRLoss(nn.CrossEntropyLoss(reduction="none"), alpha, r)``;
* HR_Neural_Networks ε = 0 and ε = 0.5 (L2 PGD): the original package's README loop, import line changed.

Each epoch prints the mean training loss and the test accuracy; the end prints clean test accuracy and the
accuracy under an L2 PGD attack of radius ε (on the correctly classified originals, and unconditionally).
Every run sees the same initialisation and the same batches, so the HRLoss and ε = 0 runs coincide: the swap
and the original API compute the same loss.
Run ``python examples/hr_torch.py`` (about a minute on 2 CPU cores) or ``--quick`` for a toy run.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from hrcore.adapters.torch import HR_Neural_Networks, HRLoss, accuracy, adversarial_accuracy, pgd


def load(label_noise: float, seed: int, limit: int | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Digits in [0, 1], flattened; a fraction of the training labels replaced by random classes.

    Computes x = pixels/16 and, for a random subset of size ⌊noise·N⌋, y ← a uniformly drawn other class.

    Args:
        label_noise: Fraction of training labels to corrupt.
        seed: Seed of the split and the corruption.
        limit: Use only the first ``limit`` examples (toy runs).

    Returns:
        x_train, y_train, x_test, y_test.
    """
    digits = load_digits()
    x, y = digits.data[:limit] / 16.0, digits.target[:limit]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(y_train), size=int(label_noise * len(y_train)), replace=False)
    y_train = y_train.copy()
    y_train[flipped] = (y_train[flipped] + rng.integers(1, 10, size=flipped.size)) % 10
    as_float = functools.partial(torch.tensor, dtype=torch.float32)
    return as_float(x_train), torch.tensor(y_train), as_float(x_test), torch.tensor(y_test)


def make_model(seed: int) -> nn.Module:
    """The MLP, initialised identically for every run.

    Computes logits = W₂ relu(W₁x + b₁) + b₂.

    Args:
        seed: Initialisation seed.

    Returns:
        The model.
    """
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def run(
    name: str,
    model: nn.Module,
    make_loss: Callable[[Tensor, Tensor], Tensor],
    dataset: TensorDataset,
    test: tuple[Tensor, Tensor],
    epochs: int,
) -> list[float]:
    """Train with a loss built from (data, target) and print the loss and test accuracy per epoch.

    Minimises the given batch loss with Adam (lr 1e-2).

    Args:
        name: Label of the run.
        model: The model (trained in place).
        make_loss: (data, target) -> scalar loss of the batch.
        dataset: Training examples (batches of 64, shuffled identically in every run).
        test: Test inputs and labels.
        epochs: Number of epochs.

    Returns:
        Test accuracy per epoch.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = DataLoader(dataset, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    history = []
    print(f"\n{name}")
    for epoch in range(1, epochs + 1):
        model.train()
        total, batches = 0.0, 0
        for data, target in loader:
            optimizer.zero_grad()
            loss = make_loss(data, target)
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        history.append(accuracy(model, *test))
        print(
            f"  epoch {epoch:3d}  train loss {total / batches:.4f}  test accuracy {history[-1]:.3f}",
            flush=True,
        )
    return history


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Run the four trainings and print the final comparison.

    Computes clean and PGD-L2(ε) test accuracies of ERM, HRLoss and HR_Neural_Networks (ε = 0, ε > 0).

    Args:
        argv: Command-line arguments (default: sys.argv).

    Returns:
        Run name -> {"clean", "conditional", "robust"} accuracies.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy size: 400 examples, 2 epochs")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 15)")
    parser.add_argument("--alpha", type=float, default=0.1, help="HR poisoning fraction α")
    parser.add_argument("--r", type=float, default=0.1, help="HR KL radius r")
    parser.add_argument("--eps", type=float, default=0.5, help="L2 attack radius ε")
    parser.add_argument("--label-noise", type=float, default=0.1, help="fraction of training labels flipped")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else 15)
    torch.set_num_threads(1)  # batches of 64 × 64 features: threads only add contention

    x_train, y_train, x_test, y_test = load(args.label_noise, args.seed, 400 if args.quick else None)
    dataset = TensorDataset(x_train, y_train)
    flipped = f"{args.label_noise:.0%} labels flipped"
    print(f"digits: {len(y_train)} training examples ({flipped}), {len(y_test)} test")
    histories = {}
    models = {}

    model = models["ERM"] = make_model(args.seed)
    erm = nn.CrossEntropyLoss()
    histories["ERM"] = run(
        "ERM", model, lambda x, y, m=model: erm(m(x), y), dataset, (x_test, y_test), epochs
    )

    model = models["HRLoss"] = make_model(args.seed)
    criterion = HRLoss(nn.CrossEntropyLoss(reduction="none"), alpha=args.alpha, r=args.r)  # the one-line swap
    histories["HRLoss"] = run(
        "HRLoss (one-line swap)",
        model,
        lambda x, y, m=model: criterion(m(x), y),
        dataset,
        (x_test, y_test),
        epochs,
    )

    for eps in (0.0, args.eps):
        name = f"HR_Neural_Networks ε={eps:g}"
        model = models[name] = make_model(args.seed)
        HR = HR_Neural_Networks(
            NN_model=model,
            train_batch_size=64,
            loss_fn=nn.CrossEntropyLoss(reduction="none"),
            normalisation_used=None,
            α_choice=args.alpha,
            r_choice=args.r,
            ϵ_choice=eps,
            noise_set="l-2",
        )
        histories[name] = run(
            name,
            model,
            lambda x, y, HR=HR: HR.HR_criterion(inputs=x, targets=y, device=x.device),
            dataset,
            (x_test, y_test),
            epochs,
        )

    attack = functools.partial(pgd, eps=args.eps, step_size=args.eps / 4, steps=10, norm="l2", key=args.seed)
    print(f"\ntest accuracy after {epochs} epochs; attack: L2 PGD, ε = {args.eps:g}, 10 steps")
    print(f"{'run':<26} {'clean':>7} {'attacked|correct':>17} {'robust':>7}")
    results = {}
    for name, model in models.items():
        result = adversarial_accuracy(model, x_test, y_test, attack)
        results[name] = result._asdict()
        print(f"{name:<26} {result.clean:7.3f} {result.conditional:17.3f} {result.robust:7.3f}")
    return results


if __name__ == "__main__":
    main()
