"""Parameter-mismatch adversarial training for PyTorch (Büchel et al. 2021).

The model is evaluated at perturbed parameters with ``torch.func.functional_call``; the box and the ascent
step are ``hrcore.geometry.mismatch_perturb``/``clip_mismatch``/``mismatch_step``. Forward passes at perturbed
parameters receive copies of the buffers, so BatchNorm statistics move only in the task forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from hrcore.geometry import clip_mismatch, mismatch_perturb, mismatch_step
from hrcore.validation import check_nonnegative

from .attacks import Key, check_steps, make_generator

PairLoss = Callable[[Any, Any], Tensor]


def trainable_parameters(model: nn.Module) -> dict[str, Tensor]:
    """The parameters the mismatch acts on: every parameter that requires grad, by name.

    Returns {name: Θ_name}.

    Args:
        model: The network.

    Returns:
        Name -> parameter.

    Raises:
        TypeError: If model is not an ``nn.Module``.
        ValueError: If it has no trainable parameter.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be an nn.Module (it is called with functional_call), got {type(model).__name__}."
        )
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no parameter with requires_grad=True to perturb.")
    return params


def _call(model: nn.Module, params: Mapping[str, Tensor], inputs: Any, copy_buffers: bool) -> Any:
    state: dict[str, Tensor] = dict(params)
    if copy_buffers:
        # Train-mode BatchNorm updates its running statistics in place; copies keep the attack's passes out.
        state.update({name: b.clone() for name, b in model.named_buffers()})
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    return functional_call(model, state, args)


def _normal_like(p: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else p.device
    return torch.randn(p.shape, dtype=p.dtype, device=device, generator=generator).to(p.device)


def _attack(
    model: nn.Module,
    theta: Mapping[str, Tensor],
    inputs: Any,
    nominal_output: Any,
    mismatch_loss: PairLoss,
    generator: torch.Generator | None,
    attack_steps: int,
    mismatch_level: float,
    initial_std: float,
) -> dict[str, Tensor]:
    """Sign-gradient ascent on the relative perturbation u (Θ and the nominal output held constant)."""
    fixed = {name: p.detach() for name, p in theta.items()}
    u = {
        name: clip_mismatch(initial_std * _normal_like(p, generator), mismatch_level)
        for name, p in fixed.items()
    }
    for _ in range(attack_steps):
        leaves = {name: value.detach().requires_grad_(True) for name, value in u.items()}
        with torch.enable_grad():
            attacked = {name: mismatch_perturb(fixed[name], leaves[name]) for name in fixed}
            loss = mismatch_loss(_call(model, attacked, inputs, copy_buffers=True), nominal_output)
            grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        with torch.no_grad():
            u = {
                name: mismatch_step(
                    u[name], torch.zeros_like(u[name]) if g is None else g, mismatch_level, attack_steps
                )
                for name, g in zip(leaves, grads, strict=True)
            }
    return u


def _check(
    noisy_forward_std: float, initial_std: float, mismatch_level: float, beta: float, steps: int
) -> None:
    check_nonnegative("noisy_forward_std", noisy_forward_std)
    check_nonnegative("initial_std", initial_std)
    check_nonnegative("mismatch_level", mismatch_level)
    check_nonnegative("beta_robustness", beta)
    check_steps(steps)


def pga_attack(
    model: nn.Module,
    inputs: Any,
    nominal_output: Any,
    mismatch_loss: PairLoss,
    generator: Key = None,
    attack_steps: int = 10,
    mismatch_level: float = 0.025,
    initial_std: float = 1e-3,
) -> dict[str, Tensor]:
    """The adversarial parameters Θ* of the relative mismatch box.

    Computes Θ* = Θ + |Θ|⊙u, u ← clip(u + (ζ/steps)·sign(∇ᵤ L_rob(f(X, Θ+|Θ|⊙u), f(X, Θ))), −ζ, ζ).

    The start is u0 = clip(σ_init·R, −ζ, ζ), R ~ N(0, I).

    Θ* is differentiable in Θ through |Θ| (u is a constant), as in the loss.

    Args:
        model: The network (its trainable parameters are Θ).
        inputs: Model inputs (a tuple is unpacked as positional arguments).
        nominal_output: f(X, Θ) (used as a constant target of the attack).
        mismatch_loss: (attacked output, nominal output) -> scalar.
        generator: Seed or ``torch.Generator`` for u0 (None: torch's global RNG).
        attack_steps: Number of ascent steps.
        mismatch_level: ζ, the box's relative half-width.
        initial_std: σ_init of u0 = σ_init·R, R ~ N(0, I).

    Returns:
        Parameter name -> Θ* tensor.
    """
    _check(0.0, initial_std, mismatch_level, 0.0, attack_steps)
    theta = trainable_parameters(model)
    rng = make_generator(generator, next(iter(theta.values())).device)
    nominal = _detached(nominal_output)
    u = _attack(model, theta, inputs, nominal, mismatch_loss, rng, attack_steps, mismatch_level, initial_std)
    return {name: mismatch_perturb(p, u[name]) for name, p in theta.items()}


def _detached(output: Any) -> Any:
    if isinstance(output, Tensor):
        return output.detach()
    if isinstance(output, (tuple, list)):
        return type(output)(_detached(o) for o in output)
    if isinstance(output, Mapping):
        return {k: _detached(v) for k, v in output.items()}
    return output


def mismatch_adversarial_loss(
    model: nn.Module,
    inputs: Any,
    target: Any,
    task_loss: PairLoss,
    mismatch_loss: PairLoss,
    generator: Key = None,
    noisy_forward_std: float = 0.0,
    initial_std: float = 1e-3,
    mismatch_level: float = 0.025,
    beta_robustness: float = 0.25,
    attack_steps: int = 10,
) -> Tensor:
    """Task loss under forward noise plus β times the loss of the worst mismatch in the relative box.

    Computes L = task_loss(f(X, Θ̃), y) + β·mismatch_loss(f(X, Θ*), f(X, Θ)), with
    Θ̃ = Θ + sg(|Θ|⊙σ_fwd R) and Θ* = Θ + |Θ|⊙sg(u) (``pga_attack``); f(X, Θ) is not stop-gradient'ed.

    Random draws, in order: R for the forward noise (only when σ_fwd > 0), then R for u0. β = 0 skips the
    attack (no extra forward passes).

    Args:
        model: The network.
        inputs: Model inputs (a tuple is unpacked as positional arguments).
        target: Targets for the task loss.
        task_loss: (output, target) -> scalar.
        mismatch_loss: (attacked output, nominal output) -> scalar.
        generator: Seed or ``torch.Generator`` (None: torch's global RNG).
        noisy_forward_std: σ_fwd of the forward-pass noise (0: none).
        initial_std: σ_init of the attack's start.
        mismatch_level: ζ, the box's relative half-width.
        beta_robustness: β ≥ 0.
        attack_steps: Number of ascent steps.

    Returns:
        The scalar loss.
    """
    _check(noisy_forward_std, initial_std, mismatch_level, beta_robustness, attack_steps)
    theta = trainable_parameters(model)
    rng = make_generator(generator, next(iter(theta.values())).device)
    if noisy_forward_std > 0.0:
        noisy = {
            name: p + (p.detach().abs() * noisy_forward_std * _normal_like(p, rng))
            for name, p in theta.items()
        }
        task_output = _call(model, noisy, inputs, copy_buffers=False)
    else:
        task_output = _call(model, theta, inputs, copy_buffers=False)
    loss = task_loss(task_output, target)
    if beta_robustness == 0.0:
        return loss
    nominal = task_output if noisy_forward_std == 0.0 else _call(model, theta, inputs, copy_buffers=True)
    u = _attack(
        model,
        theta,
        inputs,
        _detached(nominal),
        mismatch_loss,
        rng,
        attack_steps,
        mismatch_level,
        initial_std,
    )
    attacked = _call(model, {name: mismatch_perturb(p, u[name]) for name, p in theta.items()}, inputs, True)
    return loss + beta_robustness * mismatch_loss(attacked, nominal)
