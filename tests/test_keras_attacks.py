"""Keras fgsm / fgv / pgd and adversarial_accuracy against hand-derived gradients and the core's geometry."""

from __future__ import annotations

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import numpy as np
import pytest
from frameworks import require

tf = require("tensorflow")
keras = require("keras")

from hrcore import geometry  # noqa: E402
from hrcore.adapters.keras import adversarial_accuracy, fgsm, fgv, pgd  # noqa: E402
from hrcore.evaluation import adversarial_accuracy_from_predictions  # noqa: E402


def _linear_classifier(seed: int, d: int = 4, classes: int = 3):
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(d, classes))
    model = keras.Sequential(
        [keras.Input((d,), dtype="float64"), keras.layers.Dense(classes, use_bias=False, dtype="float64")]
    )
    model.layers[0].kernel.assign(kernel)
    x = rng.uniform(0.2, 0.8, size=(6, d))
    y = rng.integers(0, classes, 6)
    return model, kernel, x, y


def _ce_gradient(x, y, kernel):
    # ∇ₓ of mean_b CE(softmax(x_b·W), y_b) = (softmax(xW) − onehot(y))·Wᵀ / B.
    logits = x @ kernel
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p @ kernel.T / len(y)


def test_fgsm_and_fgv_match_hand_derived_steps():
    model, kernel, x, y = _linear_classifier(0)
    grad = _ce_gradient(x, y, kernel)
    np.testing.assert_allclose(fgsm(model, x, y, 0.1).numpy(), x + 0.1 * np.sign(grad), atol=1e-12)
    np.testing.assert_allclose(
        fgv(model, x, y, 0.1).numpy(), x + 0.1 * geometry.fgv_direction(grad), atol=1e-12
    )
    clipped = fgsm(model, x, y, 0.5, bounds=(0.0, 1.0)).numpy()
    np.testing.assert_allclose(clipped, np.clip(x + 0.5 * np.sign(grad), 0.0, 1.0), atol=1e-12)


def test_normalization_puts_eps_and_bounds_in_pixel_space():
    model, kernel, pixels, y = _linear_classifier(1)
    mean, std = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.5, 1.0, 2.0, 4.0])
    x = (pixels - mean) / std  # the model consumes normalised inputs
    grad_pixels = _ce_gradient(x, y, kernel) / std  # chain rule through x = (p − mean)/std
    expected = np.clip(pixels + 0.2 * geometry.fgv_direction(grad_pixels), 0.0, 1.0)
    result = fgv(model, x, y, 0.2, bounds=(0.0, 1.0), normalization=(mean, std)).numpy()
    np.testing.assert_allclose(result * std + mean, expected, atol=1e-6)  # Keras's CE runs in float32


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_pgd_without_random_start_matches_the_core_iteration(norm):
    model, kernel, x, y = _linear_classifier(2)
    expected = x.copy()
    for _ in range(5):
        expected = geometry.attack_step(
            expected, x, _ce_gradient(expected, y, kernel), 0.1, 0.25, norm, (0.0, 1.0)
        )
    result = pgd(
        model, x, y, eps=0.25, step_size=0.1, steps=5, norm=norm, random_start=False, bounds=(0.0, 1.0)
    )
    np.testing.assert_allclose(result.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_pgd_random_start_stays_feasible_and_keys_behave(norm):
    model, _, x, y = _linear_classifier(3)
    run = functools.partial(pgd, model, x, y, 0.3, 0.05, steps=2, norm=norm, bounds=(0.0, 1.0))
    first, again = run(key=7).numpy(), run(key=7).numpy()
    np.testing.assert_array_equal(first, again)
    assert np.all(geometry.per_example_norm(first - x, norm) <= 0.3 + 1e-12)
    assert first.min() >= 0.0 and first.max() <= 1.0
    generator = tf.random.Generator.from_seed(0)
    assert not np.array_equal(run(key=generator).numpy(), run(key=generator).numpy())


def test_attacks_run_in_inference_mode_and_return_constants():
    rng = np.random.default_rng(4)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3),
        ]
    )
    x, y = rng.normal(size=(16, 4)).astype("float32"), rng.integers(0, 3, 16)
    statistics = [v.numpy().copy() for v in model.non_trainable_variables]
    adversarial = fgsm(model, x, y, 0.1)
    np.testing.assert_array_equal(adversarial.numpy(), fgsm(model, x, y, 0.1).numpy())  # dropout off
    pgd(model, x, y, 0.1, 0.05, steps=3)
    for before, variable in zip(statistics, model.non_trainable_variables, strict=True):
        np.testing.assert_array_equal(variable.numpy(), before)  # BatchNorm moving statistics untouched
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(fgsm(model, x, y, 0.1))
    assert all(g is None for g in tape.gradient(total, model.trainable_variables))


def test_attacks_inside_tf_function_and_custom_loss():
    model, kernel, x, y = _linear_classifier(5)
    mse = keras.losses.MeanSquaredError()
    target = np.eye(3)[y]
    run = tf.function(lambda a, b: pgd(model, a, b, 0.2, 0.1, steps=3, random_start=False, loss_fn=mse))
    expected = x.copy()
    for _ in range(3):
        grad = 2.0 * (expected @ kernel - target) @ kernel.T / target.size
        expected = geometry.attack_step(expected, x, grad, 0.1, 0.2, "linf")
    np.testing.assert_allclose(run(x, target).numpy(), expected, atol=1e-6)  # Keras MSE computes in float32


def test_adversarial_accuracy_counts_only_correct_originals_for_the_conditional_rate():
    model, _, x, y = _linear_classifier(6)
    attack = functools.partial(fgsm, eps=0.3)
    result = adversarial_accuracy(model, x, y, attack)
    clean = np.argmax(model.predict(x, verbose=0), axis=1)
    attacked = np.argmax(model.predict(attack(model, x, y).numpy(), verbose=0), axis=1)
    assert result == adversarial_accuracy_from_predictions(y, clean, attacked)
    assert adversarial_accuracy(model, x, y, functools.partial(fgsm, eps=0.0)).robust == result.clean


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, x, y: fgsm(m, x, y, -0.1), ValueError, "eps must be a finite number >= 0"),
        (lambda m, x, y: fgv(m, x, y, 0.1, bounds=(0.0,)), TypeError, "bounds must be None or a pair"),
        (lambda m, x, y: pgd(m, x, y, 0.1, 0.01, steps=2.5), TypeError, "steps must be an integer"),
        (lambda m, x, y: pgd(m, x, y, 0.1, 0.01, steps=-1), ValueError, "steps must be >= 0"),
        (lambda m, x, y: pgd(m, x, y, 0.1, -0.01), ValueError, "step_size"),
        (lambda m, x, y: pgd(m, x, y, 0.1, 0.01, norm="l0"), ValueError, "norm must be one of"),
        (lambda m, x, y: pgd(m, x, y, 0.1, 0.01, key="seven"), TypeError, "key must be None, an int seed"),
    ],
)
def test_errors(call, error, match):
    model, _, x, y = _linear_classifier(7)
    with pytest.raises(error, match=match):
        call(model, x, y)
