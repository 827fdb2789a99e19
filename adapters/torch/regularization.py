"""Adversarial regularisation with the Neural Structured Learning contract, for PyTorch.

``input_adversarial_loss`` returns the loss on adversarially perturbed features; the caller adds
``adv_config.multiplier`` times it to the labeled loss. Features may be one tensor, a list/tuple or a dict
of tensors; only floating-point ones are perturbed, and the L2 (or L1) norm of a perturbation is taken
jointly over all of an example's feature tensors (concatenated per example, then handed to
``hrcore.geometry``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from hrcore.adversarial import AdvConfig
from hrcore.geometry import canonical_norm, clip_to_bounds, project, steepest_ascent

from .attacks import ball_start
from .modes import attack_mode

Features = Tensor | Sequence[Tensor] | Mapping[str, Tensor]


class _Structure:
    """Flatten one tensor, a list/tuple or a dict of tensors to a list of leaves, and rebuild it."""

    def __init__(self, features: Features) -> None:
        if isinstance(features, Tensor):
            self.keys: list[Any] = [None]
            self.leaves = [features]
            self.kind = "tensor"
        elif isinstance(features, Mapping):
            self.keys = list(features.keys())
            self.leaves = [features[k] for k in self.keys]
            self.kind = "dict"
        elif isinstance(features, (list, tuple)):
            self.keys = list(range(len(features)))
            self.leaves = list(features)
            self.kind = type(features).__name__
        else:
            raise TypeError(
                "features must be a tensor, a list/tuple or a dict of tensors, "
                f"got {type(features).__name__}."
            )
        if not self.leaves or not all(isinstance(leaf, Tensor) for leaf in self.leaves):
            raise TypeError("features must contain at least one tensor, and only tensors.")
        batch = {leaf.shape[0] if leaf.ndim else None for leaf in self.leaves}
        if len(batch) != 1 or None in batch:
            raise ValueError(
                f"every feature tensor needs the same leading batch size, got sizes {sorted(batch)}."
            )
        self.batch = batch.pop()
        self.perturbed = [i for i, leaf in enumerate(self.leaves) if leaf.is_floating_point()]
        if not self.perturbed:
            raise TypeError(
                "no floating-point feature to perturb: adversarial regularisation moves float inputs."
            )

    def rebuild(self, leaves: Sequence[Tensor]) -> Features:
        if self.kind == "tensor":
            return leaves[0]
        if self.kind == "dict":
            return dict(zip(self.keys, leaves, strict=True))
        return tuple(leaves) if self.kind == "tuple" else list(leaves)

    def per_leaf(self, value: Any, name: str) -> list[Any]:
        """A clip bound for each leaf: a scalar applies to all (NSL ignored scalars for dict features)."""
        if (
            value is None
            or isinstance(value, (int, float))
            or (isinstance(value, Tensor) and value.ndim == 0)
        ):
            return [value] * len(self.leaves)
        if self.kind == "tensor":
            return [value]
        if self.kind == "dict" and isinstance(value, Mapping):
            return [value.get(k) for k in self.keys]
        if self.kind != "dict" and isinstance(value, (list, tuple)) and len(value) == len(self.leaves):
            return list(value)
        raise ValueError(f"{name} must be a number or have the features' structure ({self.kind}).")


def _concat(leaves: Sequence[Tensor]) -> Tensor:
    return torch.cat([leaf.reshape(leaf.shape[0], -1) for leaf in leaves], dim=1)


def _split(flat: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    sizes = [math.prod(leaf.shape[1:]) for leaf in like]
    return [part.reshape(leaf.shape) for part, leaf in zip(flat.split(sizes, dim=1), like, strict=True)]


def _reduce(losses: Tensor, sample_weights: Tensor | None, batch: int) -> Tensor:
    """Mean loss, or Σ_i s_i ℓ_i / B with sample weights (Keras' sum-over-batch-size reduction)."""
    if sample_weights is None:
        return losses.mean() if losses.ndim else losses
    if losses.shape != (batch,):
        raise ValueError(
            'sample_weights need one loss per example: construct loss_fn with reduction="none" '
            f"(got losses of shape {tuple(losses.shape)} for a batch of {batch})."
        )
    return (sample_weights.to(losses.dtype) * losses).sum() / batch


def _check_weights(sample_weights: Any, batch: int, device: torch.device) -> Tensor | None:
    if sample_weights is None:
        return None
    weights = torch.as_tensor(sample_weights, device=device)
    if weights.shape != (batch,):
        # NSL broadcast a (B,) weight against (B, 1) losses into a (B, B) matrix; require the exact shape.
        raise ValueError(f"sample_weights must have shape ({batch},), got {tuple(weights.shape)}.")
    return weights


def input_adversarial_loss(
    features: Features,
    labels: Any,
    model: Callable[..., Tensor],
    loss_fn: Callable[[Tensor, Any], Tensor],
    sample_weights: Tensor | None = None,
    adv_config: AdvConfig | None = None,
    predictions: Tensor | None = None,
    labeled_loss: Tensor | None = None,
    gradient_tape: None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> Tensor:
    """The loss on adversarially perturbed features (NSL's ``adversarial_loss`` contract).

    Computes loss(f(x + δ), y), δ ← Π_{‖δ‖≤ε}(δ + step·d(∇ₓ loss)) ``pgd_iterations`` times, x + δ clipped.

    Reuse: pass ``labeled_loss`` (or ``predictions``) computed from features that have ``requires_grad=True``
    and the first gradient comes from the caller's graph (kept for the caller's backward) instead of a new
    forward pass. Extra gradient passes run in eval mode; the returned loss runs in the model's own mode.

    Args:
        features: A tensor, a list/tuple or a dict of tensors, each with the batch axis first.
        labels: Targets.
        model: Callable features -> predictions (the structure is passed as one argument).
        loss_fn: (predictions, labels) -> per-sample losses or a scalar (the PyTorch argument order).
        sample_weights: Optional (B,) weights: the loss becomes Σ_i s_i ℓ_i / B.
        adv_config: ``AdvConfig``; default ``AdvConfig()``.
        predictions: Optional precomputed model(features).
        labeled_loss: Optional precomputed loss on the clean features.
        gradient_tape: Must be None: PyTorch records the graph on the tensors themselves.
        model_kwargs: Extra keyword arguments for model.

    Returns:
        The scalar adversarial loss (differentiable in the model's parameters, not in the perturbation).

    Raises:
        ValueError: For a gradient tape, reused losses without a graph to the features, or bad shapes.
    """
    if gradient_tape is not None:
        raise ValueError(
            "gradient_tape is TensorFlow's; in PyTorch pass labeled_loss computed from features with "
            "requires_grad=True instead."
        )
    config = adv_config or AdvConfig()
    structure = _Structure(features)
    kwargs = dict(model_kwargs or {})
    weights = _check_weights(sample_weights, structure.batch, structure.leaves[0].device)
    norm = canonical_norm(config.adv_grad_norm)
    floats = [structure.leaves[i] for i in structure.perturbed]
    lows = structure.per_leaf(config.clip_value_min, "clip_value_min")
    highs = structure.per_leaf(config.clip_value_max, "clip_value_max")

    def place(perturbation: Tensor | None) -> list[Tensor]:
        """The full leaf list with x + δ (clipped) in the float slots."""
        leaves = [leaf.detach() for leaf in structure.leaves]
        if perturbation is not None:
            for index, moved in zip(
                structure.perturbed, _split(_concat(floats).detach() + perturbation, floats), strict=True
            ):
                leaves[index] = clip_to_bounds(moved, (lows[index], highs[index]))
        return leaves

    def gradient(perturbation: Tensor | None) -> Tensor:
        leaves = place(perturbation)
        for index in structure.perturbed:
            leaves[index] = leaves[index].requires_grad_(True)
        with attack_mode(model), torch.enable_grad():
            loss = _reduce(
                loss_fn(model(structure.rebuild(leaves), **kwargs), labels), weights, structure.batch
            )
            grads = torch.autograd.grad(loss, [leaves[i] for i in structure.perturbed], allow_unused=True)
        return _concat([torch.zeros_like(f) if g is None else g for g, f in zip(grads, floats, strict=True)])

    reused = None
    if not config.random_init and (labeled_loss is not None or predictions is not None):
        if not all(leaf.requires_grad for leaf in floats):
            raise ValueError(
                "labeled_loss/predictions can be reused only if they were computed from features with "
                "requires_grad=True (call features.requires_grad_() before the forward pass)."
            )
        if labeled_loss is None:
            labeled_loss = _reduce(loss_fn(predictions, labels), weights, structure.batch)
        grads = torch.autograd.grad(labeled_loss.sum(), floats, retain_graph=True, allow_unused=True)
        reused = _concat(
            [torch.zeros_like(f) if g is None else g for g, f in zip(grads, floats, strict=True)]
        )

    flat = _concat(floats).detach()
    delta = torch.zeros_like(flat)
    if config.random_init:
        delta = ball_start(torch.zeros_like(flat), float(config.pgd_epsilon), norm, None)
    for step in range(config.pgd_iterations):
        grad = reused if (step == 0 and reused is not None) else gradient(delta)
        with torch.no_grad():
            delta = delta + config.adv_step_size * steepest_ascent(grad, norm)
            if config.pgd_epsilon is not None:
                delta = project(delta, torch.zeros_like(delta), config.pgd_epsilon, norm)
    adversarial = structure.rebuild(place(delta))
    return _reduce(loss_fn(model(adversarial, **kwargs), labels), weights, structure.batch)
