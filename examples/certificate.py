"""Certify a trained model's test error: train with HR, certify on held-out data, check on a third split.

The certificate bounds E_test[0-1 loss] from the losses on a held-out split that the model never saw, for a
loss bounded by B = 1, with probability ≥ 1 − δ, even if a fraction α of that split was corrupted. It is then
compared with the error on a third split that neither training nor certification touched.

Run: ``python examples/certificate.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from hrcore.adapters.torch import HRLoss, predict
from hrcore.certificate import certify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--alpha", type=float, default=0.05, help="HR poisoning fraction used in training")
    parser.add_argument("--r", type=float, default=0.1, help="HR KL radius used in training")
    parser.add_argument("--delta", type=float, default=0.05, help="failure probability of the certificate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 2

    digits = load_digits()
    x = torch.from_numpy(digits.data.astype(np.float32) / 16.0)
    y = torch.from_numpy(digits.target.astype(np.int64))
    index = np.arange(len(y))
    train, rest = train_test_split(index, test_size=0.5, stratify=digits.target, random_state=args.seed)
    held_out, test = train_test_split(
        rest, test_size=0.5, stratify=digits.target[rest], random_state=args.seed
    )

    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    criterion = HRLoss(nn.CrossEntropyLoss(reduction="none"), alpha=args.alpha, r=args.r)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(args.epochs):
        for batch in torch.from_numpy(train)[torch.randperm(len(train))].split(64):
            optimizer.zero_grad()
            criterion(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()

    def zero_one(split: np.ndarray) -> np.ndarray:
        return (predict(model, x[split]) != y[split]).numpy().astype(np.float64)

    test_error = zero_one(test).mean()
    print(
        f"trained with HR (alpha={args.alpha}, r={args.r}) on {len(train)} digits for {args.epochs} epochs\n"
    )
    for alpha in (0.0, 0.02):
        certificate = certify(zero_one(held_out), alpha, upper_bound=1.0, delta=args.delta)
        print(f"certified on {len(held_out)} held-out digits, allowing {alpha:.0%} of them to be corrupted:")
        print(certificate)
        verdict = "holds" if test_error <= certificate.bound else "FAILS"
        print(f"error on {len(test)} untouched test digits: {test_error:.4f} -> the bound {verdict}\n")


if __name__ == "__main__":
    main()
