"""JAX input attacks, NSL-style adversarial loss and adversarial accuracy against hand-derived values."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from frameworks import require

jax = require("jax")
jnp = jax.numpy

from hrcore.adapters.jax import (  # noqa: E402
    AdvConfig,
    adversarial_accuracy,
    fgsm,
    fgv,
    input_adversarial_loss,
    pgd,
    softmax_cross_entropy,
)
from hrcore.evaluation import adversarial_accuracy_from_predictions  # noqa: E402
from hrcore.geometry import per_example_norm  # noqa: E402


@pytest.fixture
def problem() -> tuple[jax.Array, jax.Array, jax.Array]:
    rng = np.random.default_rng(0)
    weights = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    x = jnp.asarray(rng.uniform(0.2, 0.8, size=(6, 5)), jnp.float32)
    return weights, x, jnp.asarray(rng.integers(0, 3, size=6))


def _input_gradient(weights: jax.Array, x: jax.Array, y: jax.Array) -> np.ndarray:
    """∇ₓ of the summed cross-entropy of logits xW: (softmax(xW) − onehot(y)) Wᵀ, derived by hand."""
    logits = np.asarray(x @ weights, np.float64)
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    return (probabilities - np.eye(3)[np.asarray(y)]) @ np.asarray(weights, np.float64).T


def test_fgsm_and_fgv_match_hand_derived_steps(problem) -> None:
    weights, x, y = problem
    model = functools.partial(jnp.matmul, b=weights)
    g = _input_gradient(weights, x, y)
    np.testing.assert_allclose(
        np.asarray(fgsm(model, x, y, 0.1)), np.asarray(x) + 0.1 * np.sign(g), atol=1e-6
    )
    expected = np.asarray(x) + 0.1 * g / np.abs(g).max(1, keepdims=True)
    np.testing.assert_allclose(
        np.asarray(jax.jit(fgv, static_argnums=0)(model, x, y, 0.1)), expected, atol=1e-6
    )
    clipped = fgsm(model, x, y, 0.5, bounds=(0.0, 1.0))
    assert float(clipped.min()) >= 0.0 and float(clipped.max()) <= 1.0


def test_fgsm_with_normalization_moves_pixels_by_eps(problem) -> None:
    weights, x, y = problem
    mean, std = 0.5, 0.25
    model = functools.partial(jnp.matmul, b=weights)
    normalised = (x - mean) / std
    adversarial = fgsm(model, normalised, y, 0.05, normalization=(mean, std))
    pixel_step = np.asarray(adversarial * std + mean) - np.asarray(x)
    g = _input_gradient(weights, normalised, y)
    np.testing.assert_allclose(pixel_step, 0.05 * np.sign(g), atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_pgd_stays_in_the_ball_and_increases_the_loss(problem, norm: str) -> None:
    weights, x, y = problem
    model = functools.partial(jnp.matmul, b=weights)
    eps = {"linf": 0.05, "l2": 0.2, "l1": 0.4}[norm]
    attack = jax.jit(pgd, static_argnames=("model", "norm", "random_start"))
    adversarial = attack(
        model, x, y, eps, eps / 4, steps=8, norm=norm, key=jax.random.key(1), bounds=(0.0, 1.0)
    )
    assert np.all(np.asarray(per_example_norm(adversarial - x, norm)) <= eps * (1 + 1e-5))
    assert float(adversarial.min()) >= 0.0 and float(adversarial.max()) <= 1.0

    def total(inputs: jax.Array) -> float:
        return float(jnp.sum(softmax_cross_entropy(model(inputs), y)))

    assert total(adversarial) > total(x)


def test_pgd_single_step_from_the_origin_is_fgsm(problem) -> None:
    weights, x, y = problem
    model = functools.partial(jnp.matmul, b=weights)
    one = pgd(model, x, y, 0.1, 0.1, steps=1, random_start=False)
    np.testing.assert_allclose(np.asarray(one), np.asarray(fgsm(model, x, y, 0.1)), atol=1e-6)


def test_attack_errors(problem) -> None:
    weights, x, y = problem
    model = functools.partial(jnp.matmul, b=weights)
    with pytest.raises(TypeError, match="PRNG key"):
        pgd(model, x, y, 0.1, 0.01)
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, -0.1)
    with pytest.raises(ValueError, match="norm"):
        pgd(model, x, y, 0.1, 0.01, norm="l3", random_start=False)
    with pytest.raises(TypeError, match="float array"):
        fgsm(model, jnp.ones((2, 5), jnp.int32), y, 0.1)
    with pytest.raises(ValueError, match="batch axis"):
        fgv(model, jnp.float32(1.0), y, 0.1)
    with pytest.raises(ValueError, match="integer labels"):
        fgsm(model, x, jnp.ones((6, 2)), 0.1)


def test_input_adversarial_loss_perturbs_float_features_jointly() -> None:
    rng = np.random.default_rng(1)
    features = {
        "a": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=(4, 2, 2)), jnp.float32),
        "ids": jnp.asarray([0, 1, 2, 1]),
    }
    labels = jnp.asarray(rng.normal(size=4), jnp.float32)
    table = jnp.asarray([1.0, -1.0, 0.5], jnp.float32)
    seen = []

    def model(inputs: dict) -> jax.Array:
        seen.append(inputs)
        return inputs["a"].sum(1) * table[inputs["ids"]] + jnp.sin(inputs["b"]).sum((1, 2))

    def loss_fn(outputs: jax.Array, targets: jax.Array) -> jax.Array:
        return (outputs - targets) ** 2

    config = AdvConfig(adv_step_size=0.3, adv_grad_norm="l2")
    value = input_adversarial_loss(features, labels, model, loss_fn, adv_config=config)
    # By hand: one L2 step of length 0.3 along the joint gradient of (a, b) per example.
    grads = jax.grad(lambda a, b: jnp.mean(loss_fn(model({"a": a, "b": b, "ids": features["ids"]}), labels)),
                     argnums=(0, 1))(features["a"], features["b"])  # fmt: skip
    flat = np.concatenate([np.asarray(g).reshape(4, -1) for g in grads], axis=1)
    step = 0.3 * flat / np.linalg.norm(flat, axis=1, keepdims=True)
    moved = {
        "a": features["a"] + step[:, :3],
        "b": features["b"] + step[:, 3:].reshape(4, 2, 2),
        "ids": features["ids"],
    }
    np.testing.assert_allclose(float(value), float(jnp.mean(loss_fn(model(moved), labels))), rtol=1e-5)
    assert seen[-1]["ids"].dtype == features["ids"].dtype


def test_input_adversarial_loss_weights_bounds_and_projection() -> None:
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.uniform(0.0, 1.0, size=(5, 4)), jnp.float32)
    w = jnp.asarray(np.abs(rng.normal(size=4)) + 0.1, jnp.float32)  # x·w > 0 throughout: a fixed ascent sign
    labels = jnp.zeros(5, jnp.float32)

    def model(inputs: jax.Array) -> jax.Array:
        return inputs @ w

    def loss_fn(outputs: jax.Array, targets: jax.Array) -> jax.Array:
        return (outputs - targets) ** 2

    weights = jnp.asarray([1.0, 0.0, 2.0, 1.0, 0.5], jnp.float32)
    config = AdvConfig(adv_step_size=0.05, adv_grad_norm="linf", pgd_iterations=5, pgd_epsilon=0.1,
                       clip_value_min=0.0, clip_value_max=1.0)  # fmt: skip
    value = jax.jit(input_adversarial_loss, static_argnums=(2, 3), static_argnames="adv_config")(
        x, labels, model, loss_fn, weights, adv_config=config
    )
    # Each coordinate moves against its gradient's sign until the ball (0.1) or the bounds stop it; the
    # zero-weight example does not move.
    target = np.minimum(np.asarray(x) + 0.1, 1.0)
    target[1] = np.asarray(x[1])
    expected = np.sum(np.asarray(weights) * (target @ np.asarray(w)) ** 2) / 5
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    randomised = input_adversarial_loss(
        x,
        labels,
        model,
        loss_fn,
        adv_config=AdvConfig(random_init=True, pgd_epsilon=0.1),
        key=jax.random.key(0),
    )
    assert np.isfinite(float(randomised))


def test_input_adversarial_loss_errors() -> None:
    x = jnp.ones((3, 2), jnp.float32)

    def model(inputs: jax.Array) -> jax.Array:
        return inputs.sum(1)

    def loss_fn(outputs: jax.Array, targets: jax.Array) -> jax.Array:
        return (outputs - targets) ** 2

    y = jnp.zeros(3)
    with pytest.raises(TypeError, match="gradient tape"):
        input_adversarial_loss(x, y, model, loss_fn, gradient_tape=object())
    with pytest.raises(ValueError, match=r"sample_weights must have shape \(3,\)"):
        input_adversarial_loss(x, y, model, loss_fn, sample_weights=jnp.ones(4))
    with pytest.raises(ValueError, match="per-example losses"):
        input_adversarial_loss(x, y, model, lambda o, t: jnp.mean(o), sample_weights=jnp.ones(3))
    with pytest.raises(TypeError, match="PRNG key"):
        input_adversarial_loss(x, y, model, loss_fn, adv_config=AdvConfig(random_init=True, pgd_epsilon=0.1))
    with pytest.raises(ValueError, match="needs pgd_epsilon"):
        AdvConfig(random_init=True)
    with pytest.raises(ValueError, match="no float feature"):
        input_adversarial_loss(jnp.ones((3, 2), jnp.int32), y, model, loss_fn)
    with pytest.raises(ValueError, match="do not exist"):
        input_adversarial_loss({"a": x}, y, lambda f: f["a"].sum(1), loss_fn,
                               adv_config=AdvConfig(clip_value_min={"b": 0.0}))  # fmt: skip
    with pytest.raises(ValueError, match="pgd_iterations"):
        AdvConfig(pgd_iterations=0)
    with pytest.raises(ValueError, match="norm"):
        AdvConfig(adv_grad_norm="l7")


def test_adversarial_accuracy_counts_only_correct_originals(problem) -> None:
    weights, x, _ = problem
    model = functools.partial(jnp.matmul, b=weights)
    clean = np.asarray(jnp.argmax(model(x), 1))
    y = jnp.asarray(np.where(np.arange(6) < 4, clean, (clean + 1) % 3))  # 4 of 6 correct
    attack = functools.partial(fgsm, eps=0.5)
    result = adversarial_accuracy(model, x, y, attack)
    adversarial = np.asarray(jnp.argmax(model(attack(model, x, y)), 1))
    assert result == adversarial_accuracy_from_predictions(np.asarray(y), clean, adversarial)
    assert result.clean == pytest.approx(4 / 6)
