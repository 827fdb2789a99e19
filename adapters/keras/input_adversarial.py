"""Input-adversarial loss with NSL's ``adversarial_loss`` contract, on TensorFlow ≥ 2.16 and Keras 3.

Computes loss_fn(y, f(x_adv)) with x_adv = clip_bounds(Π_ε(x + η·d(∇ₓℓ))) iterated ``pgd_iterations`` times,
d the steepest-ascent direction of the configured norm taken per example jointly over every float feature
tensor, and x_adv held constant (no gradient flows through the perturbation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from hrcore.adversarial import AdvConfig

from .geometry import as_scalar, attack_step, clip_to_bounds, project, random_ball_point
from .host import require_tensorflow_backend

ClipValue = float | Mapping[str, Any] | None


def _leaf_keys(features: Any) -> list[Any]:
    """The top-level dict key of each leaf, in ``tf.nest.flatten`` order (None for non-dict features)."""
    if isinstance(features, Mapping):
        return [key for key in sorted(features) for _ in tf.nest.flatten(features[key])]
    return [None] * len(tf.nest.flatten(features))


def _leaf_bounds(value: ClipValue, features: Any, keys: list[Any], name: str) -> list[Any]:
    """The bound of each leaf: a scalar applies to every leaf, a dict to the leaves under its keys."""
    if value is None:
        return [None] * len(keys)
    if not isinstance(value, Mapping):
        if np.ndim(value) != 0:
            raise TypeError(
                f"{name} must be None, a number or a dict of per-feature bounds for Keras features, "
                f"got {value!r}."
            )
        return [value] * len(keys)
    if not isinstance(features, Mapping):
        raise ValueError(f"{name} is a dict of per-feature bounds, but the features are not a dict.")
    unknown = sorted(set(value) - set(features))
    if unknown:
        raise ValueError(
            f"{name} names features that do not exist: {unknown}; the features are {sorted(features)}."
        )
    return [value.get(key) for key in keys]


def _flat_bound(bounds: list[Any], leaves: list[tf.Tensor], dtype: tf.DType, fill: float) -> tf.Tensor | None:
    if all(bound is None for bound in bounds):
        return None
    parts = []
    for bound, leaf in zip(bounds, leaves, strict=True):
        value = (
            tf.fill(tf.shape(leaf), tf.constant(fill, dtype)) if bound is None else as_scalar(bound, dtype)
        )
        parts.append(tf.reshape(tf.broadcast_to(value, tf.shape(leaf)), tf.stack([tf.shape(leaf)[0], -1])))
    return tf.concat(parts, axis=1)


def _check_sample_weights(sample_weights: Any) -> tf.Tensor | None:
    if sample_weights is None:
        return None
    sample_weights = tf.convert_to_tensor(sample_weights)
    if sample_weights.shape.rank is not None and sample_weights.shape.rank != 1:
        raise ValueError(
            f"sample_weights must be a 1-D tensor of shape [batch_size], got shape {sample_weights.shape}."
        )
    return sample_weights


def _labeled_loss(loss_fn: Callable[..., Any], labels: Any, predictions: Any, sample_weights: Any) -> Any:
    if sample_weights is None:
        return loss_fn(labels, predictions)
    return loss_fn(labels, predictions, sample_weights)


class _FloatFeatures:
    """The float leaves of the features as one (B, D) matrix, so per-example norms are joint across them."""

    def __init__(self, features: Any) -> None:
        self.structure = features
        self.leaves = [
            leaf if tf.is_tensor(leaf) else tf.convert_to_tensor(leaf) for leaf in tf.nest.flatten(features)
        ]
        self.float_index = [i for i, leaf in enumerate(self.leaves) if leaf.dtype.is_floating]
        if not self.float_index:
            raise ValueError(
                "input_adversarial_loss found no float feature to perturb (only float tensors are)."
            )
        self.floats = [self.leaves[i] for i in self.float_index]
        kinds = {leaf.dtype for leaf in self.floats}
        self.dtype = kinds.pop() if len(kinds) == 1 else (tf.float64 if tf.float64 in kinds else tf.float32)
        self.sizes = [tf.reduce_prod(tf.shape(leaf)[1:]) for leaf in self.floats]

    def flat(self, tensors: list[tf.Tensor]) -> tf.Tensor:
        rows = tf.shape(self.floats[0])[0]
        return tf.concat([tf.reshape(tf.cast(t, self.dtype), tf.stack([rows, -1])) for t in tensors], axis=1)

    def unflat(self, matrix: tf.Tensor) -> Any:
        leaves = list(self.leaves)
        pieces = tf.split(matrix, tf.stack(self.sizes), axis=1, num=len(self.sizes))
        for i, piece, original in zip(self.float_index, pieces, self.floats, strict=True):
            restored = tf.cast(tf.reshape(piece, tf.shape(original)), original.dtype)
            restored.set_shape(original.shape)
            leaves[i] = restored
        return tf.nest.pack_sequence_as(self.structure, leaves)


def input_adversarial_loss(
    features: Any,
    labels: Any,
    model: Callable[..., Any],
    loss_fn: Callable[..., Any],
    sample_weights: Any = None,
    adv_config: AdvConfig | None = None,
    predictions: Any = None,
    labeled_loss: Any = None,
    gradient_tape: tf.GradientTape | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> tf.Tensor:
    """The labeled loss on adversarially perturbed features (NSL's ``adversarial_loss`` contract).

    Computes loss_fn(labels, model(x_adv), sample_weights) with x_adv from ``pgd_iterations`` projected
    steepest-ascent steps on loss_fn(labels, model(x)), started at x (or uniformly in the ε-ball).

    The first step reuses the caller's ``labeled_loss``/``predictions`` and ``gradient_tape`` (which must
    watch the float features) instead of a second forward pass; later steps and random starts run their own.

    Args:
        features: A tensor, or a list/tuple/dict of tensors sharing the batch axis. Only float tensors are
            perturbed; integer features (ids, indices) pass through unchanged.
        labels: Targets, passed to ``loss_fn``.
        model: Callable ``model(features, **model_kwargs)`` (e.g. a Keras model).
        loss_fn: ``loss_fn(labels, predictions[, sample_weights])``, e.g. a ``keras.losses.Loss``
            (``HRLoss`` included: HR over the adversarial losses).
        sample_weights: Optional 1-D weights of shape [batch_size].
        adv_config: ``AdvConfig``; None for the defaults.
        predictions: Precomputed model(features), reused for the first gradient.
        labeled_loss: Precomputed loss_fn(labels, model(features)), reused for the first gradient.
        gradient_tape: The ``tf.GradientTape`` that recorded ``predictions``/``labeled_loss`` while watching
            the features (required eagerly when either is given; it is consumed).
        model_kwargs: Extra keyword arguments for every model call (e.g. ``{"training": True}``).

    Returns:
        The scalar adversarial loss (not multiplied by ``adv_config.multiplier``).

    Raises:
        ValueError: For sample weights that are not 1-D, dict bounds with unknown names or non-dict features,
            features without float tensors, or precomputed losses without a tape in eager mode / a tape that
            did not watch the features.
        TypeError: For an ``adv_config`` that is not an ``AdvConfig``.
        RuntimeError: On a Keras backend other than TensorFlow.
    """
    require_tensorflow_backend("input_adversarial_loss")
    config = AdvConfig() if adv_config is None else adv_config
    if not isinstance(config, AdvConfig):
        raise TypeError(f"adv_config must be an hrcore AdvConfig, got {type(config).__name__}.")
    kwargs = dict(model_kwargs or {})
    sample_weights = _check_sample_weights(sample_weights)
    packed = _FloatFeatures(features)
    keys = [_leaf_keys(features)[i] for i in packed.float_index]
    low = _flat_bound(
        _leaf_bounds(config.clip_value_min, features, keys, "clip_value_min"),
        packed.floats,
        packed.dtype,
        -np.inf,
    )
    high = _flat_bound(
        _leaf_bounds(config.clip_value_max, features, keys, "clip_value_max"),
        packed.floats,
        packed.dtype,
        np.inf,
    )
    bounds = None if low is None and high is None else (low, high)
    norm, eps = config.adv_grad_norm, config.pgd_epsilon

    def own_gradient(matrix: tf.Tensor) -> tf.Tensor:
        inputs = packed.unflat(matrix)
        floats = [tf.nest.flatten(inputs)[i] for i in packed.float_index]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(floats)
            loss = _labeled_loss(loss_fn, labels, model(inputs, **kwargs), sample_weights)
        return packed.flat(_zeros_for_none(tape.gradient(loss, floats), floats))

    clean = packed.flat(packed.floats)
    if config.random_init:
        current = clip_to_bounds(project(random_ball_point(clean, eps, norm, None), clean, eps, norm), bounds)
        grad = None
    else:
        current = clean
        grad = _caller_gradient(
            packed, labels, model, loss_fn, sample_weights, predictions, labeled_loss, gradient_tape, kwargs
        )
    for _ in range(config.pgd_iterations):
        grad = own_gradient(current) if grad is None else grad
        current = attack_step(current, clean, grad, config.adv_step_size, eps, norm, bounds)
        grad = None
    adversarial = packed.unflat(tf.stop_gradient(current))
    return _labeled_loss(loss_fn, labels, model(adversarial, **kwargs), sample_weights)


def _zeros_for_none(grads: list[Any], leaves: list[tf.Tensor]) -> list[tf.Tensor]:
    # A feature the loss does not depend on has no gradient: its steepest-ascent component is zero.
    return [tf.zeros_like(leaf) if grad is None else grad for grad, leaf in zip(grads, leaves, strict=True)]


def _caller_gradient(
    packed: _FloatFeatures,
    labels: Any,
    model: Callable[..., Any],
    loss_fn: Callable[..., Any],
    sample_weights: Any,
    predictions: Any,
    labeled_loss: Any,
    gradient_tape: tf.GradientTape | None,
    kwargs: dict[str, Any],
) -> tf.Tensor:
    """∇ₓ of the labeled loss at the clean features, reusing what the caller already computed."""
    floats = packed.floats
    if predictions is None and labeled_loss is None:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(floats)
            loss = _labeled_loss(loss_fn, labels, model(packed.structure, **kwargs), sample_weights)
        return packed.flat(_zeros_for_none(tape.gradient(loss, floats), floats))
    if labeled_loss is None:
        if gradient_tape is not None and not getattr(gradient_tape, "_recording", True):
            with gradient_tape:  # resume recording so the loss joins the caller's forward pass
                labeled_loss = _labeled_loss(loss_fn, labels, predictions, sample_weights)
        else:
            labeled_loss = _labeled_loss(loss_fn, labels, predictions, sample_weights)
    if gradient_tape is not None:
        grads = gradient_tape.gradient(labeled_loss, floats)
    elif tf.executing_eagerly():
        raise ValueError(
            "input_adversarial_loss got precomputed predictions/labeled_loss in eager mode without the "
            "gradient_tape that recorded them; pass gradient_tape=<the tape that watched the features>, or "
            "leave predictions and labeled_loss out to let it run its own forward pass."
        )
    else:
        grads = tf.gradients(labeled_loss, floats)
    if all(grad is None for grad in grads):
        raise ValueError(
            "the labeled loss does not depend on the float features through gradient_tape: call "
            "gradient_tape.watch(features) before the forward pass (and pass the same tensor objects here)."
        )
    return packed.flat(_zeros_for_none(grads, floats))
