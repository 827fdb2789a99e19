"""ε-bounded input attacks for PyTorch: FGSM ("FGS"), FGV, PGD (L∞/L2/L1) and fast FGSM.

The adapter only computes input gradients with ``torch.autograd.grad`` (so parameter ``.grad`` is never
written) and draws the random start with torch's RNG; every direction, projection and clip is
``hrcore.geometry``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hrcore.geometry import (
    attack_step,
    ball_noise_kind,
    canonical_norm,
    clip_to_bounds,
    fgv_direction,
    from_pixels,
    perturbation_from_noise,
    steepest_ascent,
    to_pixels,
)
from hrcore.validation import check_count, check_nonnegative

from .modes import attack_mode

Model = nn.Module | Callable[[Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
Key = int | torch.Generator | None
Bounds = tuple[Any, Any] | None
Normalization = tuple[Any, Any] | None


def cross_entropy_per_sample(outputs: Tensor, targets: Tensor) -> Tensor:
    """The default attacked loss.

    Computes ℓ_i = −log softmax(outputs_i)[y_i].

    Args:
        outputs: Logits (B, classes, ...).
        targets: Class indices (B, ...) or class probabilities.

    Returns:
        Per-sample losses.
    """
    return F.cross_entropy(outputs, targets, reduction="none")


def check_steps(steps: object) -> int:
    """Validate a number of attack steps: an integer ≥ 0 (the core's ``check_count``)."""
    return check_count("steps", steps)


def check_inputs(x: object) -> Tensor:
    """Validate attacked inputs.

    Requires a floating-point tensor with a non-empty leading batch axis.

    Args:
        x: The inputs.

    Returns:
        x.

    Raises:
        TypeError: For a non-tensor or integer inputs (token ids cannot be moved by a gradient step).
        ValueError: For a scalar or an empty batch.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"attacked inputs must be a torch.Tensor, got {type(x).__name__}.")
    if not x.is_floating_point():
        raise TypeError(
            f"attacks perturb floating-point inputs, got dtype {x.dtype}; embed integer inputs first and "
            "attack the embeddings."
        )
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"attacked inputs need a non-empty leading batch axis, got shape {tuple(x.shape)}.")
    return x


def make_generator(key: Key, device: torch.device) -> torch.Generator | None:
    """A torch generator from a seed, a generator, or None (torch's global RNG).

    Returns Generator(device).manual_seed(key) for an integer key.

    Args:
        key: None, an integer seed, or a ``torch.Generator``.
        device: Where a seeded generator should draw.

    Returns:
        The generator, or None.

    Raises:
        TypeError: For any other key.
    """
    if key is None or isinstance(key, torch.Generator):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        generator = torch.Generator(device=device)
        generator.manual_seed(key)
        return generator
    raise TypeError(f"key must be None, an integer seed or a torch.Generator, got {type(key).__name__}.")


def ball_start(x0: Tensor, eps: float, norm: str, key: Key) -> Tensor:
    """A random point uniform in the ε-ball around each example.

    Returns x0 + δ with δ from ``hrcore.geometry.perturbation_from_noise`` fed with torch draws.

    Args:
        x0: Centres (B, ...).
        eps: The radius.
        norm: The ball's norm.
        key: Seed, generator or None.

    Returns:
        The random points, shaped like x0.
    """
    generator = make_generator(key, x0.device)
    device = generator.device if generator is not None else x0.device
    draw = {"dtype": x0.dtype, "device": device, "generator": generator}
    kind = ball_noise_kind(norm)
    if kind == "uniform":
        noise = torch.rand(x0.shape, **draw) * 2.0 - 1.0
    elif kind == "normal":
        noise = torch.randn(x0.shape, **draw)
    else:
        # Laplace(0, 1) is the difference of two Exp(1) draws; torch.distributions cannot take a generator.
        empty = {"dtype": x0.dtype, "device": device}
        noise = torch.empty(x0.shape, **empty).exponential_(generator=generator) - torch.empty(
            x0.shape, **empty
        ).exponential_(generator=generator)
    radius_u = torch.rand(x0.shape[0], **draw)
    return x0 + perturbation_from_noise(noise.to(x0.device), radius_u.to(x0.device), eps, norm)


def input_gradient(forward: Callable[[Tensor], Any], x: Tensor, y: Any, loss_fn: LossFn) -> Tensor:
    """The gradient of the summed loss with respect to the inputs only.

    Computes ∇ₓ Σ_i ℓ(f(x)_i, y_i); per-sample losses make each example's gradient its own loss's gradient.

    Args:
        forward: x -> model outputs.
        x: Inputs (B, ...).
        y: Targets.
        loss_fn: (outputs, targets) -> per-sample losses or a scalar.

    Returns:
        The gradient, shaped like x (no graph attached).
    """
    leaf = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(forward(leaf), y)
        (grad,) = torch.autograd.grad(loss.sum(), leaf)
    return grad


def _pixel_forward(model: Model, normalization: Normalization) -> Callable[[Tensor], Any]:
    if normalization is None:
        return model
    return lambda pixels: model(from_pixels(pixels, normalization))


def _one_step(
    model: Model,
    x: Tensor,
    y: Any,
    eps: float,
    direction: Callable[[Tensor], Tensor],
    loss_fn: LossFn | None,
    bounds: Bounds,
    normalization: Normalization,
    train_mode: bool,
) -> Tensor:
    x = check_inputs(x)
    eps = check_nonnegative("eps", eps)
    if eps == 0.0:
        return x.detach()
    x0 = to_pixels(x.detach(), normalization)
    with attack_mode(model, train_mode):
        grad = input_gradient(
            _pixel_forward(model, normalization), x0, y, loss_fn or cross_entropy_per_sample
        )
    with torch.no_grad():
        adversarial = clip_to_bounds(x0 + eps * direction(grad), bounds)
        return from_pixels(adversarial, normalization)


def fgsm(
    model: Model,
    x: Tensor,
    y: Any,
    eps: float,
    loss_fn: LossFn | None = None,
    bounds: Bounds = None,
    normalization: Normalization = None,
    *,
    train_mode: bool = False,
) -> Tensor:
    """Fast gradient sign ("FGS"): one signed step of size ε.

    Computes x̃ = clip(x + ε·sign(∇ₓ ℓ(f(x), y)), bounds).

    Args:
        model: The model (an ``nn.Module`` or any callable).
        x: Inputs with a leading batch axis, any shape.
        y: Targets.
        eps: Step size ε ≥ 0 (the L∞ radius).
        loss_fn: (outputs, targets) -> per-sample losses; default cross-entropy.
        bounds: Optional (lo, hi) input range.
        normalization: Optional (mean, std) of the model's inputs: ε and bounds apply to x·std + mean.
        train_mode: Attack in train mode (BatchNorm buffers are restored); default eval mode.

    Returns:
        The adversarial inputs, detached.
    """
    return _one_step(
        model, x, y, eps, lambda g: steepest_ascent(g, "linf"), loss_fn, bounds, normalization, train_mode
    )


def fgv(
    model: Model,
    x: Tensor,
    y: Any,
    eps: float,
    loss_fn: LossFn | None = None,
    bounds: Bounds = None,
    normalization: Normalization = None,
    *,
    train_mode: bool = False,
) -> Tensor:
    """Fast gradient value: one step along the gradient scaled so its largest coordinate moves by ε.

    Computes x̃ = clip(x + ε·∇ₓℓ / max|∇ₓℓ|, bounds), per example.

    Args:
        model: The model.
        x: Inputs with a leading batch axis.
        y: Targets.
        eps: Step size ε ≥ 0.
        loss_fn: (outputs, targets) -> per-sample losses; default cross-entropy.
        bounds: Optional (lo, hi) input range.
        normalization: Optional (mean, std) of the model's inputs.
        train_mode: Attack in train mode; default eval mode.

    Returns:
        The adversarial inputs, detached.
    """
    return _one_step(model, x, y, eps, fgv_direction, loss_fn, bounds, normalization, train_mode)


def pgd(
    model: Model,
    x: Tensor,
    y: Any,
    eps: float,
    step_size: float,
    steps: int = 10,
    norm: str | float = "linf",
    random_start: bool = True,
    loss_fn: LossFn | None = None,
    bounds: Bounds = None,
    normalization: Normalization = None,
    key: Key = None,
    *,
    train_mode: bool = False,
) -> Tensor:
    """Projected gradient ascent on the loss inside the ε-ball (L∞, L2 or L1).

    Iterates x ← clip(Π_{‖·−x0‖≤ε}(x + step·d(∇ₓℓ)), bounds) with d the norm's steepest-ascent direction,
    from x0 or a uniform random point of the ball.

    Args:
        model: The model.
        x: Inputs with a leading batch axis.
        y: Targets.
        eps: Radius ε ≥ 0.
        step_size: Length of each step in the ball's norm.
        steps: Number of steps.
        norm: "linf" (default), "l2" or "l1" (also "l-inf", "l-2", inf, 2, 1).
        random_start: Start uniformly in the ball.
        loss_fn: (outputs, targets) -> per-sample losses; default cross-entropy.
        bounds: Optional (lo, hi) input range.
        normalization: Optional (mean, std) of the model's inputs: ε and bounds apply to x·std + mean.
        key: Seed or ``torch.Generator`` for the random start (None: torch's global RNG).
        train_mode: Attack in train mode; default eval mode.

    Returns:
        The adversarial inputs, detached.
    """
    x = check_inputs(x)
    eps = check_nonnegative("eps", eps)
    step_size = check_nonnegative("step_size", step_size)
    steps = check_steps(steps)
    kind = canonical_norm(norm)
    if eps == 0.0:
        return x.detach()
    loss_fn = loss_fn or cross_entropy_per_sample
    x0 = to_pixels(x.detach(), normalization)
    forward = _pixel_forward(model, normalization)
    with torch.no_grad():
        adversarial = clip_to_bounds(ball_start(x0, eps, kind, key), bounds) if random_start else x0
    with attack_mode(model, train_mode):
        for _ in range(steps):
            grad = input_gradient(forward, adversarial, y, loss_fn)
            with torch.no_grad():
                adversarial = attack_step(adversarial, x0, grad, step_size, eps, kind, bounds)
    with torch.no_grad():
        return from_pixels(adversarial, normalization)


def ffgsm(
    model: Model,
    x: Tensor,
    y: Any,
    eps: float,
    step_size: float,
    norm: str | float = "linf",
    loss_fn: LossFn | None = None,
    bounds: Bounds = None,
    normalization: Normalization = None,
    key: Key = None,
    *,
    train_mode: bool = False,
) -> Tensor:
    """Fast FGSM: a uniform random start in the ε-ball, then one steepest-ascent step, projected back.

    Computes x̃ = clip(Π_{‖·−x‖≤ε}(x + δ + step·d(∇ℓ(x + δ))), bounds), δ uniform in the ball.

    Args:
        model: The model.
        x: Inputs with a leading batch axis.
        y: Targets.
        eps: Radius ε ≥ 0.
        step_size: Length of the step.
        norm: The ball's norm; "linf" is the classic FFGSM.
        loss_fn: (outputs, targets) -> per-sample losses; default cross-entropy.
        bounds: Optional (lo, hi) input range.
        normalization: Optional (mean, std) of the model's inputs.
        key: Seed or ``torch.Generator`` for the random start.
        train_mode: Attack in train mode; default eval mode.

    Returns:
        The adversarial inputs, detached.
    """
    return pgd(
        model,
        x,
        y,
        eps,
        step_size,
        steps=1,
        norm=norm,
        random_start=True,
        loss_fn=loss_fn,
        bounds=bounds,
        normalization=normalization,
        key=key,
        train_mode=train_mode,
    )
