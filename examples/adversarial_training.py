"""FGS/FGV adversarial training (the course exercise) with a small conv net, in PyTorch.

Data: sklearn's 8×8 digits with pixels scaled to [0, 1], as (B, 1, 8, 8); or real MNIST from a file you
supply with ``--mnist PATH`` (an ``.npz`` with x_train, y_train, x_test, y_test, pixels 0–255, as Keras'
mnist.npz; nothing is downloaded). Attacks, clipped to [0, 1]:

* FGS: x̃ = x + α·sign(∇ₓJ), α = 0.3;
* FGV: x̃ = x + α·∇ₓJ / max|∇ₓJ|, α = 0.6.

Three trainings of the same network (SGD, cross-entropy):

* standard: θ ← θ − η∇θJ(x);
* adversarial: θ ← θ − η(∇θJ(x) + ∇θJ(x̃_FGS)), the adversarial batch made from the current weights;
* noise: θ ← θ − η(∇θJ(x) + ∇θJ(x + α·{−1, +1}^D)), random signs instead of the gradient's.

After every epoch: accuracy on the original test images, and accuracy on the FGS and FGV images made from the
originals the network classifies correctly. Printed per epoch and plotted (PNG). Run
``python examples/adversarial_training.py`` (about a minute on 2 CPU cores) or ``--quick`` for a toy run.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from hrcore.adapters.torch import accuracy, adversarial_accuracy, fgsm, fgv
from hrcore.plot import plot_accuracy_over_epochs

BOUNDS = (0.0, 1.0)


def load(mnist: Path | None, seed: int, limit: int | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Images in [0, 1] as (N, 1, H, W), with integer labels.

    Computes x = pixels/16 (digits) or pixels/255 (MNIST).

    Args:
        mnist: Optional path of an MNIST ``.npz``; None uses sklearn's digits (split 70/30).
        seed: Seed of the digits split.
        limit: Keep only this many training and test examples (toy runs).

    Returns:
        x_train, y_train, x_test, y_test.
    """
    if mnist is not None:
        with np.load(mnist) as data:
            arrays = [data[k] for k in ("x_train", "y_train", "x_test", "y_test")]
        x_train, x_test = arrays[0] / 255.0, arrays[2] / 255.0
        y_train, y_test = arrays[1], arrays[3]
    else:
        digits = load_digits()
        x_train, x_test, y_train, y_test = train_test_split(
            digits.images / 16.0, digits.target, test_size=0.3, random_state=seed, stratify=digits.target
        )
    images = functools.partial(torch.tensor, dtype=torch.float32)
    return (
        images(x_train[:limit]).unsqueeze(1),
        torch.tensor(y_train[:limit], dtype=torch.long),
        images(x_test[:limit]).unsqueeze(1),
        torch.tensor(y_test[:limit], dtype=torch.long),
    )


def make_model(seed: int, batch_norm: bool) -> nn.Module:
    """A small conv net for any image size: two 3×3 convolutions, a 4×4 adaptive pool, a linear layer.

    Computes logits = W·pool(relu(conv(relu(conv(x))))) + b (BatchNorm after each convolution if asked).

    Args:
        seed: Initialisation seed (every training starts from the same weights).
        batch_norm: Insert BatchNorm2d after the convolutions.

    Returns:
        The model.
    """
    torch.manual_seed(seed)

    def norm(channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        norm(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        norm(32),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(4),
        nn.Flatten(),
        nn.Linear(32 * 16, 10),
    )


def sign_noise(x: Tensor, alpha: float, generator: torch.Generator) -> Tensor:
    """Random-sign noise of the attack's size, clipped to the pixel range.

    Computes clip(x + α·s, 0, 1) with s uniform on {−1, +1}^D.

    Args:
        x: Images.
        alpha: Noise size α.
        generator: Random generator.

    Returns:
        The noisy images.
    """
    signs = torch.randint(0, 2, x.shape, generator=generator).to(x.dtype) * 2.0 - 1.0
    return (x + alpha * signs).clamp(*BOUNDS)


def train(
    mode: str,
    data: tuple[Tensor, Tensor, Tensor, Tensor],
    epochs: int,
    fgs_alpha: float,
    fgv_alpha: float,
    batch_norm: bool,
    seed: int,
) -> dict[str, list[float]]:
    """Train one network and evaluate it after every epoch.

    Minimises J(x) (standard), J(x) + J(x̃_FGS) (adversarial) or J(x) + J(x + α·signs) (noise) with SGD.

    Args:
        mode: "standard", "adversarial" or "noise".
        data: x_train, y_train, x_test, y_test.
        epochs: Number of epochs.
        fgs_alpha: FGS step α (also the noise size).
        fgv_alpha: FGV step α.
        batch_norm: Use BatchNorm.
        seed: Seed of the initialisation, the batches and the noise.

    Returns:
        Metric -> value per epoch: "original", "FGS", "FGV" accuracies.
    """
    x_train, y_train, x_test, y_test = data
    model = make_model(seed, batch_norm)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True, generator=generator)
    fgs_attack = functools.partial(fgsm, eps=fgs_alpha, bounds=BOUNDS)
    fgv_attack = functools.partial(fgv, eps=fgv_alpha, bounds=BOUNDS)
    history: dict[str, list[float]] = {"original": [], "FGS": [], "FGV": []}
    for epoch in range(1, epochs + 1):
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            if mode == "adversarial":
                # The attack leaves parameter .grad and the train/eval flags alone, so the two gradients add.
                loss = loss + loss_fn(model(fgs_attack(model, x, y)), y)
            elif mode == "noise":
                loss = loss + loss_fn(model(sign_noise(x, fgs_alpha, generator)), y)
            loss.backward()
            optimizer.step()
        history["original"].append(accuracy(model, x_test, y_test))
        history["FGS"].append(adversarial_accuracy(model, x_test, y_test, fgs_attack).conditional)
        history["FGV"].append(adversarial_accuracy(model, x_test, y_test, fgv_attack).conditional)
        print(
            f"  {mode:<11} epoch {epoch:3d}  original {history['original'][-1]:.3f}  "
            f"FGS {history['FGS'][-1]:.3f}  FGV {history['FGV'][-1]:.3f}",
            flush=True,
        )
    return history


def main(argv: list[str] | None = None) -> dict[str, dict[str, list[float]]]:
    """Run the three trainings, print the accuracies per epoch and plot them.

    Computes, per epoch and training mode, accuracy on originals and on FGS/FGV images of correct originals.

    Args:
        argv: Command-line arguments (default: sys.argv).

    Returns:
        Mode -> metric -> accuracy per epoch.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy size: 300 examples, 2 epochs")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per training (default 30)")
    parser.add_argument(
        "--mnist", type=Path, default=None, help="MNIST .npz (x_train, y_train, x_test, y_test)"
    )
    parser.add_argument("--fgs-alpha", type=float, default=0.3)
    parser.add_argument("--fgv-alpha", type=float, default=0.6)
    parser.add_argument("--batchnorm", action="store_true", help="BatchNorm after each convolution")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("adversarial_training.png"), help="PNG plot path")
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else 30)
    torch.set_num_threads(1)  # 8×8 images in batches of 64: threads only add contention
    data = load(args.mnist, args.seed, 300 if args.quick else None)
    print(f"{len(data[1])} training and {len(data[3])} test images of shape {tuple(data[0].shape[1:])}")

    histories = {}
    for mode in ("standard", "adversarial", "noise"):
        print(f"\n{mode} training")
        histories[mode] = train(mode, data, epochs, args.fgs_alpha, args.fgv_alpha, args.batchnorm, args.seed)

    print(f"\nafter {epochs} epochs (adversarial accuracy over correctly classified originals)")
    print(f"{'training':<12} {'original':>9} {'FGS':>7} {'FGV':>7}")
    for mode, history in histories.items():
        print(
            f"{mode:<12} {history['original'][-1]:9.3f} {history['FGS'][-1]:7.3f} {history['FGV'][-1]:7.3f}"
        )
    path = plot_accuracy_over_epochs(
        histories,
        args.out,
        title=f"FGS (α={args.fgs_alpha:g}) / FGV (α={args.fgv_alpha:g}) adversarial training",
    )
    print(f"plot written to {path}")
    return histories


if __name__ == "__main__":
    main()
