"""Training a network to tolerate weight mismatch, in PyTorch: the published frozen-noise-to-sine experiment.

A 2000→8→2 tanh network (no biases; ``--biases`` adds them; Kaiming-uniform weights, as Rockpool initialises
them) maps each of 3 frozen noise inputs (T = 100 steps, inputs N(0, 1) + 1) to two sines sin(2π ω t + φ) with
random ω and φ. It is trained twice with Adam (1e-4, single samples, 100 repeats per class per epoch): once on
the MSE (standard), once on ``mismatch_adversarial_loss`` (σ_fwd 0.1, σ_init 1e-3, ζ 0.025, β 0.25, 10 attack
steps, MSE for both losses). Both are then evaluated under simulated mismatch Θ + |Θ|·ζ·N(0, 1) for ζ = 0,
0.1, …, 0.6 (mean ± std over draws), printed as a table and plotted.

The default is the published length, 300 epochs: about 15 minutes on 2 shared CPU cores (eager PyTorch takes a
few milliseconds per adversarial step); ``--epochs`` shortens it, ``--quick`` is a toy run. One such run (seed
0, 200 draws) gave standard/robust MSE ratios 1.10, 1.34, 1.48 at ζ = 0.2, 0.3, 0.6, with the robust network
paying ~1800× in nominal MSE (published, on another draw of the task: 2–3× and 100–240×; the JAX example,
``examples/mismatch_jax.py``, reports five seeds).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from hrcore.adapters.torch import MismatchCurve, mismatch_adversarial_loss, mismatch_curve
from hrcore.evaluation import robustness_table
from hrcore.plot import plot_robustness_curves

LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
PUBLISHED = {"robust": (0.0133, 0.1025, 0.4278), "standard": (5.5e-5, 0.2684, 0.9868)}  # ζ = 0 / 0.3 / 0.6


def make_task(
    rng: np.random.Generator, classes: int, length: int, channels: int, outputs: int
) -> tuple[Tensor, Tensor]:
    """Frozen-noise inputs and sine targets, one pair per class.

    Computes X_c ~ N(0, 1) + 1 of shape (T, channels) and Y_c[t, k] = sin(2π ω_ck t/T + φ_ck), ω ~ U(0, T/50),
    φ ~ U(0, 2π).

    Args:
        rng: Random generator.
        classes: Number of classes.
        length: Time steps T.
        channels: Input channels.
        outputs: Output channels.

    Returns:
        Inputs (classes, T, channels) and targets (classes, T, outputs), float32.
    """
    inputs = rng.standard_normal((classes, length, channels)) + 1.0
    phase = rng.uniform(0.0, 2.0 * np.pi, (classes, 1, outputs))
    omega = rng.uniform(0.0, length / 50.0, (classes, 1, outputs))
    time_base = (np.arange(length) / length)[None, :, None]
    targets = np.sin(2.0 * np.pi * omega * time_base + phase)
    return torch.tensor(inputs, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32)


def make_network(
    rng: np.random.Generator, channels: int, hidden: int, outputs: int, biases: bool = False
) -> nn.Module:
    """The tanh network: Kaiming-uniform weights U(±√(6/fan_in)), optional biases U(±√(1/fan_in)).

    Computes f(X) = tanh(X W_inᵀ + b_in) W_outᵀ + b_out (b = 0 without biases), applied at every time step;
    the initialisations are Rockpool's (as in ``examples/mismatch_jax.py``).

    Args:
        rng: Random generator.
        channels: Inputs.
        hidden: Hidden units.
        outputs: Outputs.
        biases: Add a bias to each layer (attacked and perturbed like the weights).

    Returns:
        The network.
    """
    net = nn.Sequential(
        nn.Linear(channels, hidden, bias=biases), nn.Tanh(), nn.Linear(hidden, outputs, bias=biases)
    )
    with torch.no_grad():
        for layer in (net[0], net[2]):
            limit = np.sqrt(6.0 / layer.in_features)
            layer.weight.copy_(
                torch.tensor(rng.uniform(-limit, limit, layer.weight.shape), dtype=torch.float32)
            )
            if biases:
                bias_limit = np.sqrt(1.0 / layer.in_features)
                layer.bias.copy_(
                    torch.tensor(rng.uniform(-bias_limit, bias_limit, layer.bias.shape), dtype=torch.float32)
                )
    return net


def mse(output: Tensor, target: Tensor) -> Tensor:
    """Mean squared error.

    Computes mean((output − target)²).

    Args:
        output: Prediction.
        target: Target.

    Returns:
        Scalar.
    """
    return ((output - target) ** 2).mean()


def train(
    net: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    order: list[int],
    epochs: int,
    robust: bool,
    seed: int,
    attack: dict[str, Any],
    lr: float = 1e-4,
) -> list[float]:
    """Single-sample Adam training.

    Minimises MSE(f(X, Θ), y) (standard) or ``mismatch_adversarial_loss`` (robust), one sample per update.

    Args:
        net: The network (trained in place).
        inputs: Per-class inputs (classes, T, channels).
        targets: Per-class targets (classes, T, outputs).
        order: Class index of each sample of an epoch, in training order.
        epochs: Passes over ``order``.
        robust: Train on the adversarial loss.
        seed: Seed of the attack's random draws.
        attack: Keyword arguments of ``mismatch_adversarial_loss`` (σ_fwd, σ_init, ζ, β, steps).
        lr: Adam's learning rate.

    Returns:
        The mean loss of each epoch.
    """
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        total = 0.0
        for index in order:
            x, y = inputs[index], targets[index]
            optimizer.zero_grad(set_to_none=True)
            if robust:
                loss = mismatch_adversarial_loss(net, x, y, mse, mse, generator, **attack)
            else:
                loss = mse(net(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.append(total / len(order))
        if (epoch + 1) % max(1, epochs // 10) == 0:
            print(f"  epoch {epoch + 1:4d}/{epochs}  loss {history[-1]:.5f}", flush=True)
    return history


def main(argv: list[str] | None = None) -> dict[str, MismatchCurve]:
    """Train both networks, evaluate them under mismatch, print the table and write the plot.

    Computes the mean ± std of the test MSE under Θ + |Θ|ζR for each ζ, for standard and robust training.

    Args:
        argv: Command-line arguments (default: sys.argv).

    Returns:
        The two curves, keyed "robust" and "standard".
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy size: 200 channels, 2 epochs, 20 draws")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 300)")
    parser.add_argument("--draws", type=int, default=None, help="mismatch draws per level (default 200)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (published: 1e-4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--biases",
        action="store_true",
        help="add a bias to each layer, attacked too (Rockpool's linear layers have one by default)",
    )
    parser.add_argument("--out", type=Path, default=Path("mismatch_torch.png"), help="PNG plot path")
    args = parser.parse_args(argv)
    channels, repeats = (200, 10) if args.quick else (2000, 100)
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else 300)
    draws = args.draws if args.draws is not None else (20 if args.quick else 200)
    classes, length, hidden, outputs = 3, 100, 8, 2
    torch.set_num_threads(1)  # a (100 × 2000)·(2000 × 8) product per step: threads only add contention

    rng = np.random.default_rng(args.seed)
    inputs, targets = make_task(rng, classes, length, channels, outputs)
    initial = make_network(rng, channels, hidden, outputs, args.biases)
    order = [
        c for c in range(classes) for _ in range(repeats)
    ]  # class 0 ×repeats, then 1, then 2 (published)
    attack = {
        "noisy_forward_std": 0.1,
        "initial_std": 1e-3,
        "mismatch_level": 0.025,
        "beta_robustness": 0.25,
        "attack_steps": 10,
    }
    print(f"{classes} classes, {channels} channels, {len(order)} samples per epoch, {epochs} epochs")

    trained: dict[str, nn.Module] = {}
    for name, robust in (("robust", True), ("standard", False)):
        print(f"training {name} network", flush=True)
        start = time.perf_counter()
        trained[name] = make_network(np.random.default_rng(0), channels, hidden, outputs, args.biases)
        trained[name].load_state_dict(initial.state_dict())
        train(trained[name], inputs, targets, order, epochs, robust, args.seed, attack, args.lr)
        print(f"  {name} training took {time.perf_counter() - start:.1f} s", flush=True)

    curves = {}
    for name, net in trained.items():

        def test_loss(params: dict[str, Tensor], net: nn.Module = net) -> float:
            # The published test set repeats each class equally often, so its mean is the mean over classes.
            return mse(functional_call(net, params, (inputs,)), targets).item()

        # The same seed for both networks: both are evaluated on the same mismatch draws.
        curves[name] = mismatch_curve(test_loss, net, LEVELS, draws=draws, key=args.seed + 1)

    print(f"\ntest MSE under mismatch Θ + |Θ|ζN(0,1), mean ± std over {draws} draws")
    print(robustness_table(curves, ratio=("standard", "robust")))
    print(
        "published (300 epochs, 20 draws) at ζ = 0 / 0.3 / 0.6: robust "
        + " / ".join(f"{v:.4g}" for v in PUBLISHED["robust"])
        + ", standard "
        + " / ".join(f"{v:.4g}" for v in PUBLISHED["standard"])
    )
    path = plot_robustness_curves(
        curves,
        args.out,
        xlabel="mismatch level ζ",
        ylabel="test MSE",
        title="PyTorch: robust vs standard training",
    )
    print(f"plot written to {path}")
    return curves


if __name__ == "__main__":
    main()
