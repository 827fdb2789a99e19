"""Keras mismatch_adversarial_loss / pga_attack / mismatch_curve: hand-derived linear case, box, semantics."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import numpy as np
import pytest
from frameworks import require

tf = require("tensorflow")
keras = require("keras")

from hrcore.adapters.keras import mismatch_adversarial_loss, mismatch_curve, pga_attack  # noqa: E402
from hrcore.adapters.keras.geometry import standard_noise  # noqa: E402


def _linear(seed: int, d: int = 4, k: int = 2):
    rng = np.random.default_rng(seed)
    model = keras.Sequential(
        [keras.Input((d,), dtype="float64"), keras.layers.Dense(k, use_bias=False, dtype="float64")]
    )
    kernel = rng.normal(size=(d, k))
    model.layers[0].kernel.assign(kernel)
    x = rng.normal(size=(5, d))
    y = rng.normal(size=(5, k))
    return model, kernel, x, y


def _mse(output, target):
    return tf.reduce_mean((output - target) ** 2)


def _mean_output(attacked, nominal):
    # Linear in the perturbation, so its u-gradient at u = 0 is not zero and the first step is hand-derivable.
    return tf.reduce_mean(attacked)


def test_linear_model_first_step_and_gradient_match_hand_derivation():
    model, kernel, x, y = _linear(0)
    zeta, beta = 0.05, 0.5
    batch, outputs = y.shape
    # ∂/∂u_ij mean(X(W + |W|⊙u)) = |W_ij|·s_i/(B·k), s = Σ_b X_b: one ζ-step from u₀ = 0 gives ζ·sign(s_i).
    s = x.sum(axis=0)
    u = zeta * np.sign(s)[:, None] * np.ones_like(kernel)
    theta_star = pga_attack(
        [kernel], model, x, x @ kernel, _mean_output, attack_steps=1, mismatch_level=zeta, initial_std=0.0
    )
    np.testing.assert_allclose(theta_star[0].numpy(), kernel + np.abs(kernel) * u, atol=1e-12)

    with tf.GradientTape() as tape:
        loss = mismatch_adversarial_loss(
            model,
            x,
            y,
            _mse,
            _mean_output,
            initial_std=0.0,
            mismatch_level=zeta,
            beta_robustness=beta,
            attack_steps=1,
        )
    grad = tape.gradient(loss, model.trainable_variables)[0].numpy()
    expected_value = np.mean((x @ kernel - y) ** 2) + beta * np.mean(x @ (kernel + np.abs(kernel) * u))
    task_grad = 2.0 * x.T @ (x @ kernel - y) / (batch * outputs)
    # Θ* = Θ + |Θ|⊙u is differentiated through |Θ|: the factor (1 + sign(Θ)⊙u) that assignment would lose.
    mismatch_grad = beta * s[:, None] / (batch * outputs) * (1.0 + np.sign(kernel) * u)
    assert float(loss) == pytest.approx(expected_value, rel=1e-12)
    np.testing.assert_allclose(grad, task_grad + mismatch_grad, atol=1e-12)
    np.testing.assert_array_equal(
        model.layers[0].kernel.numpy(), kernel
    )  # nothing assigned into the variables


def test_attack_stays_in_the_relative_box_and_increases_the_mismatch():
    rng = np.random.default_rng(1)
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(2)]
    )
    x = rng.normal(size=(32, 3)).astype("float32")
    params = [v.value for v in model.trainable_variables]
    nominal = model(x)
    theta_star = pga_attack(
        params, model, x, nominal, _mse, key=0, attack_steps=10, mismatch_level=0.1, initial_std=0.01
    )
    for theta, star in zip(params, theta_star, strict=True):
        assert np.all(np.abs(star.numpy() - theta.numpy()) <= 0.1 * np.abs(theta.numpy()) + 1e-7)
    attacked, _ = model.stateless_call(theta_star, [], x)
    random = [t + 0.1 * tf.abs(t) * tf.sign(tf.random.normal(t.shape, seed=2)) for t in params]
    noisy, _ = model.stateless_call(random, [], x)
    assert float(_mse(attacked, nominal)) > float(_mse(noisy, nominal))  # the ascent beats a random corner


def test_beta_zero_is_the_task_loss_and_forward_noise_has_identity_jacobian():
    model, kernel, x, y = _linear(2)
    plain = mismatch_adversarial_loss(model, x, y, _mse, _mean_output, beta_robustness=0.0)
    assert float(plain) == pytest.approx(np.mean((x @ kernel - y) ** 2), rel=1e-12)
    with tf.GradientTape() as tape:
        noisy = mismatch_adversarial_loss(
            model, x, y, _mse, _mean_output, seed=3, noisy_forward_std=0.1, beta_robustness=0.0
        )
    grad = tape.gradient(noisy, model.trainable_variables)[0].numpy()
    # Θ̃ = Θ + sg(|Θ|·σ·R) with the adapter's draw for (seed 3, variable 0): d Θ̃/dΘ = I.
    r = standard_noise("normal", kernel.shape, tf.float64, 3, 0).numpy()
    noisy_kernel = kernel + np.abs(kernel) * 0.1 * r
    assert float(noisy) == pytest.approx(np.mean((x @ noisy_kernel - y) ** 2), rel=1e-12)
    np.testing.assert_allclose(grad, 2.0 * x.T @ (x @ noisy_kernel - y) / y.size, atol=1e-12)


def test_seeds_and_tf_function():
    model, _, x, y = _linear(4)
    kwargs = {"noisy_forward_std": 0.1, "initial_std": 0.01}
    same = [float(mismatch_adversarial_loss(model, x, y, _mse, _mse, seed=5, **kwargs)) for _ in range(2)]
    assert same[0] == same[1]
    generator = tf.random.Generator.from_seed(5)
    step = tf.function(
        lambda a, b: mismatch_adversarial_loss(model, a, b, _mse, _mse, seed=generator, **kwargs)
    )
    fresh = [float(step(x, y)) for _ in range(2)]
    assert fresh[0] != fresh[1]
    with tf.GradientTape() as tape:
        value = step(x, y)
    assert all(g is not None for g in tape.gradient(value, model.trainable_variables))


def test_mismatch_curve_summarises_draws_per_level():
    model, kernel, x, y = _linear(5)

    def loss_of_params(params):
        output, _ = model.stateless_call(params, [], x)
        return _mse(output, y)

    curve = mismatch_curve(loss_of_params, [kernel], levels=[0.0, 0.2, 0.6], draws=30, key=0)
    nominal = np.mean((x @ kernel - y) ** 2)
    np.testing.assert_allclose(curve.levels, [0.0, 0.2, 0.6])
    assert curve.mean[0] == pytest.approx(nominal) and curve.std[0] == pytest.approx(0.0, abs=1e-12)
    assert curve.std[1] > 0 and curve.mean[2] > curve.mean[1]
    again = mismatch_curve(loss_of_params, [kernel], levels=[0.0, 0.2, 0.6], draws=30, key=0)
    np.testing.assert_array_equal(again.mean, curve.mean)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mismatch_level": -0.1}, ValueError, "mismatch_level must be a finite number >= 0"),
        ({"beta_robustness": float("inf")}, ValueError, "beta_robustness"),
        ({"attack_steps": -1}, ValueError, "attack_steps must be >= 0"),
        ({"attack_steps": 2.0}, TypeError, "attack_steps must be an integer"),
        ({"seed": "abc", "noisy_forward_std": 0.1}, TypeError, "key must be None, an int seed"),
    ],
)
def test_errors(kwargs, error, match):
    model, _, x, y = _linear(6)
    with pytest.raises(error, match=match):
        mismatch_adversarial_loss(model, x, y, _mse, _mse, **kwargs)


def test_structural_errors():
    model, kernel, x, _ = _linear(7)
    with pytest.raises(ValueError, match="params has 2 entries but the model has 1"):
        pga_attack([kernel, kernel], model, x, x @ kernel, _mse)
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="built model"):
        mismatch_adversarial_loss(unbuilt, x, None, _mse, _mse)
    with pytest.raises(ValueError, match="draws must be a positive integer"):
        mismatch_curve(lambda p: 0.0, [kernel], [0.1], draws=0)
    with pytest.raises(ValueError, match="level must be a finite number >= 0"):
        mismatch_curve(lambda p: 0.0, [kernel], [-0.1])
