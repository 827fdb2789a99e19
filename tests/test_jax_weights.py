"""JAX hr_weights / hr_loss against the core: value and gradient (= folded weights) under jit and vmap."""

from __future__ import annotations

import numpy as np
import pytest
from frameworks import require

jax = require("jax")
jnp = jax.numpy

import hrcore  # noqa: E402
from hrcore.adapters.jax import hr_loss, hr_weights  # noqa: E402

SETTINGS = [
    {"alpha": 0.1, "r": 0.2, "ambiguity": "HD"},
    {"alpha": 0.2, "r": 0.5, "ambiguity": "HR"},
    {"alpha": 0.0, "r": 0.0, "ambiguity": "HD"},
]


def _losses(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(size=shape)


@pytest.mark.parametrize("options", SETTINGS)
@pytest.mark.parametrize("x64", [False, True])
def test_value_and_gradient_match_the_core_under_jit(options: dict, x64: bool) -> None:
    losses = _losses(1, (17,))
    solution = hrcore.solve(losses, **options)
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        array = jnp.asarray(losses, dtype)
        value, grad = jax.jit(jax.value_and_grad(lambda ell: hr_loss(ell, **options)))(array)
        eager_weights = hr_weights(array, **options)
    tolerance = 1e-10 if x64 else 1e-5
    assert value.dtype == dtype and grad.dtype == dtype and eager_weights.dtype == dtype
    np.testing.assert_allclose(float(value), solution.value, rtol=tolerance)
    np.testing.assert_allclose(np.asarray(grad), solution.weights, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(np.asarray(eager_weights), solution.weights, rtol=tolerance, atol=tolerance)


def test_vmap_solves_each_row_like_the_core() -> None:
    batch = _losses(2, (4, 9))
    grads = jax.jit(jax.vmap(jax.grad(lambda ell: hr_loss(ell, alpha=0.1, r=0.3))))(jnp.asarray(batch))
    values = jax.vmap(lambda ell: hr_loss(ell, alpha=0.1, r=0.3))(jnp.asarray(batch))
    for row, grad, value in zip(batch, np.asarray(grads), np.asarray(values), strict=True):
        solution = hrcore.solve(row, alpha=0.1, r=0.3)
        np.testing.assert_allclose(grad, solution.weights, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(value, solution.value, rtol=1e-5)


def test_vmap_over_masks_with_shared_losses() -> None:
    losses = _losses(3, (8,))
    masks = np.array([[True] * 8, [True] * 5 + [False] * 3])
    weights = jax.vmap(lambda mask: hr_weights(jnp.asarray(losses), mask=mask))(jnp.asarray(masks))
    for mask, row in zip(masks, np.asarray(weights), strict=True):
        np.testing.assert_allclose(row, hrcore.solve(losses, mask=mask).weights, rtol=1e-5, atol=1e-7)
    assert np.all(np.asarray(weights)[1, 5:] == 0.0)


def test_upper_bound_adds_the_worst_atom_and_gradient_stays_the_weights() -> None:
    losses = _losses(4, (10,))
    bound = float(losses.max()) + 1.0
    solution = hrcore.solve(losses, alpha=0.05, r=0.1, upper_bound=bound)
    with jax.enable_x64(True):
        value, grad = jax.jit(jax.value_and_grad(lambda ell: hr_loss(ell, upper_bound=bound)))(
            jnp.asarray(losses)
        )
    np.testing.assert_allclose(float(value), solution.value, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(grad), solution.weights, rtol=1e-10, atol=1e-12)
    assert solution.worst_weight > 0


def test_gradient_flows_to_model_parameters_through_the_losses_only() -> None:
    x = jnp.asarray(np.random.default_rng(5).normal(size=(12, 3)), jnp.float32)
    y = jnp.asarray(np.random.default_rng(6).normal(size=12), jnp.float32)

    def objective(w: jax.Array) -> jax.Array:
        return hr_loss((x @ w - y) ** 2, alpha=0.1, r=0.2)

    w = jnp.asarray([0.3, -0.2, 0.5], jnp.float32)
    weights = hrcore.solve(np.asarray((x @ w - y) ** 2), alpha=0.1, r=0.2).weights
    expected = np.asarray(x).T @ (weights * 2 * np.asarray(x @ w - y))
    np.testing.assert_allclose(np.asarray(jax.jit(jax.grad(objective))(w)), expected, rtol=1e-4, atol=1e-6)


def test_shape_and_hyper_parameter_errors_surface_at_trace_time() -> None:
    with pytest.raises(ValueError, match="reduction"):
        jax.jit(hr_loss)(jnp.float32(1.0))
    with pytest.raises(ValueError, match="1-D"):
        jax.jit(hr_loss)(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="empty"):
        hr_loss(jnp.ones((0,)))
    with pytest.raises(ValueError, match="alpha"):
        jax.jit(lambda ell: hr_loss(ell, alpha=1.5))(jnp.ones(3))
    with pytest.raises(ValueError, match="KL radius"):
        hr_weights(jnp.ones(3), r=-0.1)
    with pytest.raises(ValueError, match="ambiguity"):
        hr_weights(jnp.ones(3), ambiguity="KL")
    with pytest.raises(TypeError, match="traced value"):
        jax.jit(lambda ell, a: hr_loss(ell, alpha=a))(jnp.ones(3), 0.1)
    with pytest.raises(TypeError, match="real numbers"):
        hr_weights(jnp.ones(3, dtype=jnp.complex64))
    with pytest.raises(ValueError, match="mask must have"):
        hr_weights(jnp.ones(3), mask=jnp.ones(4, bool))
    with pytest.raises(TypeError, match="boolean"):
        hr_weights(jnp.ones(3), mask=jnp.ones(3))


def test_data_errors_keep_the_core_message_eager_and_under_jit() -> None:
    bad = jnp.asarray([1.0, jnp.nan, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        hr_loss(bad)
    with pytest.raises(jax.errors.JaxRuntimeError, match="NaN"):
        jax.jit(hr_loss)(bad)
    with pytest.raises(ValueError, match="lies below the largest loss"):
        hr_weights(jnp.asarray([1.0, 3.0]), upper_bound=2.0)
    with pytest.raises(ValueError, match="excludes every loss"):
        hr_weights(jnp.ones(3), mask=jnp.zeros(3, bool))
