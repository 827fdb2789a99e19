"""JAX parameter-mismatch loss: hand-derived attack and gradient on a linear model, the box, program size flat
in the attack steps, no recompilation for new ζ/β, β = 0, the parameter filter, Rockpool-style modules."""

from __future__ import annotations

import numpy as np
import pytest
from frameworks import require

jax = require("jax")
jnp = jax.numpy

from jax.tree_util import Partial  # noqa: E402

from hrcore.adapters.jax import mismatch_adversarial_loss, mismatch_curve, pga_attack  # noqa: E402


def mse(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.mean((a - b) ** 2)


def linear(params: dict, x: jax.Array) -> jax.Array:
    return x @ params["w"]


def two_layer(params: dict, x: jax.Array) -> jax.Array:
    return jnp.tanh(x @ params["w1"]) @ params["w2"]


def _linear_problem(seed: int = 0, outputs: int = 3) -> tuple[dict, jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    params = {"w": jnp.asarray(rng.normal(size=(4, outputs)))}
    return params, jnp.asarray(rng.normal(size=(6, 4))), jnp.asarray(rng.normal(size=(6, outputs)))


# A matrix taller than wide is attacked transposed (a CPU speed-up); both orientations give the same attack.
ORIENTATIONS = pytest.mark.parametrize("outputs", [3, 6], ids=["tall", "wide"])


def _attack_slope(w: np.ndarray, x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """∇_u mean((x(|w|⊙u))²): the attack objective's gradient on the linear model, derived by hand."""
    difference = x @ (np.abs(w) * u)
    return np.abs(w) * (x.T @ (2.0 * difference / difference.size))


def _offsets(params: dict, attacked: dict) -> np.ndarray:
    w = np.asarray(params["w"])
    return (np.asarray(attacked["w"]) - w) / np.abs(w)


@ORIENTATIONS
def test_attack_steps_match_hand_derived_sign_ascent(outputs: int) -> None:
    with jax.enable_x64(True):
        params, x, _ = _linear_problem(0, outputs)
        key, zeta, steps = jax.random.key(3), 0.05, 4
        nominal = linear(params, x)
        start = _offsets(params, pga_attack(params, linear, x, nominal, mse, key, 0, zeta, 0.01))
        first = _offsets(params, pga_attack(params, linear, x, nominal, mse, key, 1, zeta, 0.01))
        final = _offsets(params, pga_attack(params, linear, x, nominal, mse, key, steps, zeta, 0.01))
        # Documented: R = normal(key, (n,)) cut into the selected leaves in leaf order.
        documented = np.asarray(jax.random.normal(key, (4 * outputs,), jnp.float64)).reshape(4, outputs)
    w, xs = np.asarray(params["w"]), np.asarray(x)
    assert np.all(np.abs(start) <= zeta) and np.any(start != 0)
    np.testing.assert_allclose(start, np.clip(0.01 * documented, -zeta, zeta), rtol=1e-12, atol=1e-15)
    expected_first = np.clip(start + zeta * np.sign(_attack_slope(w, xs, start)), -zeta, zeta)
    np.testing.assert_allclose(first, expected_first, rtol=1e-12, atol=1e-12)
    u = start
    for _ in range(steps):
        u = np.clip(u + zeta / steps * np.sign(_attack_slope(w, xs, u)), -zeta, zeta)
    np.testing.assert_allclose(final, u, rtol=1e-12, atol=1e-12)


@ORIENTATIONS
@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_loss_value_and_gradient_match_hand_derivation(noise: float, outputs: int) -> None:
    beta, zeta, steps = 0.25, 0.05, 5
    with jax.enable_x64(True):
        params, x, y = _linear_problem(1, outputs)
        key = jax.random.key(7)
        value, grad = jax.jit(jax.value_and_grad(mismatch_adversarial_loss), static_argnums=(1, 4, 5))(
            params, linear, x, y, mse, mse, key, noise, 1e-3, zeta, beta, steps
        )
        # Documented: one draw normal(rng_key, (2, n)); row 0 the forward noise, row 1 the attack's start.
        draws = np.asarray(jax.random.normal(key, (2, 4 * outputs), jnp.float64))
    w, xs, ys = (np.asarray(a) for a in (params["w"], x, y))
    draw = draws[0].reshape(4, outputs)
    u = np.clip(1e-3 * draws[1].reshape(4, outputs), -zeta, zeta)
    for _ in range(steps):
        u = np.clip(u + zeta / steps * np.sign(_attack_slope(w, xs, u)), -zeta, zeta)
    noisy = w + noise * np.abs(w) * draw
    residual = xs @ noisy - ys
    difference = xs @ (np.abs(w) * u)
    expected_value = np.mean(residual**2) + beta * np.mean(difference**2)
    # Forward noise has the identity Jacobian; Θ* = Θ + |Θ|⊙u differentiates through |Θ| only; f(X, Θ) is not
    # stop-gradient'ed, so the regulariser's gradient is (xᵀ ∂L/∂out) ⊙ u ⊙ sign(Θ).
    expected_grad = xs.T @ (2 * residual / residual.size) + beta * (
        xs.T @ (2 * difference / difference.size)
    ) * u * np.sign(w)
    np.testing.assert_allclose(float(value), expected_value, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(grad["w"]), expected_grad, rtol=1e-9, atol=1e-12)


def test_attacked_parameters_stay_in_the_box_and_raise_the_mismatch_loss() -> None:
    rng = np.random.default_rng(2)
    params = {
        "w1": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32),
        "w2": jnp.asarray(rng.normal(size=(4, 2)), jnp.float32),
    }
    x = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
    nominal, zeta = two_layer(params, x), 0.1
    attack = jax.jit(pga_attack, static_argnums=(1, 4))
    attacked = attack(params, two_layer, x, nominal, mse, jax.random.key(0), 20, zeta, 1e-3)
    for name in params:
        offset = np.abs(np.asarray(attacked[name]) - np.asarray(params[name]))
        assert np.all(offset <= zeta * np.abs(np.asarray(params[name])) * (1 + 1e-5) + 1e-7)
        assert np.any(offset >= zeta * np.abs(np.asarray(params[name])) * (1 - 1e-5))
    # Worse than every one of 50 random corners of the box.
    corners = [
        {
            name: p + jnp.abs(p) * zeta * jnp.sign(jax.random.normal(jax.random.key(i), p.shape))
            for name, p in params.items()
        }
        for i in range(50)
    ]
    worst_random = max(float(mse(two_layer(corner, x), nominal)) for corner in corners)
    assert float(mse(two_layer(attacked, x), nominal)) > worst_random


def _two_layer_problem(seed: int) -> tuple[dict, jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    params = {
        "w1": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32),
        "w2": jnp.asarray(rng.normal(size=(4, 2)), jnp.float32),
    }
    return (
        params,
        jnp.asarray(rng.normal(size=(8, 5)), jnp.float32),
        jnp.asarray(rng.normal(size=(8, 2)), jnp.float32),
    )


@jax.custom_vjp
def _host_tanh(z: jax.Array) -> jax.Array:
    """tanh computed on the host: differentiable (custom VJP) but not vmappable (no vmap_method)."""
    return jax.pure_callback(lambda a: np.tanh(a).astype(a.dtype), jax.ShapeDtypeStruct(z.shape, z.dtype), z)


def _host_tanh_forward(z: jax.Array) -> tuple[jax.Array, jax.Array]:
    y = _host_tanh(z)
    return y, y


_host_tanh.defvjp(_host_tanh_forward, lambda y, g: (g * (1 - y**2),))


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_network_that_cannot_be_vmapped_gives_the_same_loss_and_gradient(noise: float) -> None:
    params, x, y = _two_layer_problem(4)

    def host_network(p: dict, inputs: jax.Array) -> jax.Array:
        return _host_tanh(inputs @ p["w1"]) @ p["w2"]

    with pytest.raises(NotImplementedError):  # the premise: this network has no batching rule
        jax.vmap(host_network, in_axes=(0, None))(jax.tree_util.tree_map(lambda a: a[None], params), x)
    key = jax.random.key(1)
    value, grads = jax.value_and_grad(mismatch_adversarial_loss)(
        params, host_network, x, y, mse, mse, key, noise
    )
    expected, expected_grads = jax.value_and_grad(mismatch_adversarial_loss)(
        params, two_layer, x, y, mse, mse, key, noise
    )
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-5)
    for name in params:
        np.testing.assert_allclose(grads[name], expected_grads[name], rtol=1e-4, atol=1e-6)


def _dot_operand_shapes(jaxpr: object) -> list[tuple[tuple[int, ...], ...]]:
    """The operand shapes of every dot_general, nested jaxprs included."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(tuple(tuple(atom.aval.shape) for atom in eqn.invars))
        for value in eqn.params.values():
            for inner in value if isinstance(value, (tuple, list)) else [value]:
                if hasattr(inner, "eqns") or hasattr(inner, "jaxpr"):
                    found += _dot_operand_shapes(getattr(inner, "jaxpr", inner))
    return found


@pytest.mark.parametrize(("noise", "sets"), [(0.1, 3), (0.0, 2)])
def test_loss_evaluates_the_network_once_for_all_parameter_sets(noise: float, sets: int) -> None:
    params, x, y = _two_layer_problem(6)
    jaxpr = jax.make_jaxpr(
        lambda p: mismatch_adversarial_loss(p, two_layer, x, y, mse, mse, jax.random.key(0), noise)
    )(params).jaxpr
    # Θ̃ (with noise), Θ and Θ* go through the first layer as one product with stacked weights.
    assert ((8, 5), (sets, 5, 4)) in _dot_operand_shapes(jaxpr)


def _program_size(steps: int) -> int:
    params, x, y = _linear_problem(3)
    params = {"w1": jnp.ones((4, 6), jnp.float32), "w2": jnp.ones((6, 3), jnp.float32)}
    x, y = x.astype(jnp.float32), y.astype(jnp.float32)

    def loss(p: dict) -> jax.Array:
        return mismatch_adversarial_loss(
            p, two_layer, x, y, mse, mse, jax.random.key(0), 0.1, attack_steps=steps
        )

    return len(jax.jit(jax.value_and_grad(loss)).lower(params).as_text())


def test_lowered_program_does_not_grow_with_attack_steps() -> None:
    one, fifty = _program_size(1), _program_size(50)
    assert fifty <= 1.1 * one, (one, fifty)


def test_new_hyper_parameters_do_not_recompile() -> None:
    traces = []

    def counted(params: dict, x: jax.Array) -> jax.Array:
        traces.append(1)
        return two_layer(params, x)

    rng = np.random.default_rng(4)
    params = {"w1": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32), "w2": jnp.ones((4, 2), jnp.float32)}
    x, y = jnp.ones((3, 5), jnp.float32), jnp.zeros((3, 2), jnp.float32)
    step = jax.jit(jax.value_and_grad(mismatch_adversarial_loss), static_argnums=(1, 4, 5))
    first = step(params, counted, x, y, mse, mse, jax.random.key(0), 0.1, 1e-3, 0.025, 0.25, 10)
    count, cache = len(traces), step._cache_size()
    second = step(params, counted, x, y, mse, mse, jax.random.key(0), 0.1, 1e-3, 0.2, 0.5, 10)
    third = step(params, counted, x, y, mse, mse, jax.random.key(0), 0.2, 1e-3, 0.1, 2.0, 3)
    assert len(traces) == count and step._cache_size() == cache == 1
    assert float(first[0]) != float(second[0]) != float(third[0])


def test_beta_zero_skips_the_attack_static_and_traced() -> None:
    params, x, y = _linear_problem(5)
    key = jax.random.key(1)

    def loss(p: dict, beta: float) -> jax.Array:
        return mismatch_adversarial_loss(p, linear, x, y, mse, mse, key, 0.1, beta_robustness=beta)

    static = jax.make_jaxpr(lambda p: loss(p, 0.0))(params)
    assert "while" not in str(static) and "scan" not in str(static)
    traced_zero = jax.jit(jax.value_and_grad(loss))(params, 0.0)
    static_zero = jax.value_and_grad(lambda p: loss(p, 0.0))(params)
    np.testing.assert_allclose(float(traced_zero[0]), float(static_zero[0]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(traced_zero[1]["w"]), np.asarray(static_zero[1]["w"]), rtol=1e-5)
    traced_some = jax.jit(loss)(params, 0.5)
    assert float(traced_some) > float(traced_zero[0])


def test_parameter_filter_leaves_excluded_leaves_untouched() -> None:
    rng = np.random.default_rng(6)
    params = {"w1": jnp.asarray(rng.normal(size=(5, 4))), "w2": jnp.asarray(rng.normal(size=(4, 2)))}
    x = jnp.asarray(rng.normal(size=(8, 5)))
    nominal = two_layer(params, x)
    for parameter_filter in ({"w1": True, "w2": False}, lambda path, leaf: path[0].key == "w1"):
        attacked = pga_attack(
            params, two_layer, x, nominal, mse, jax.random.key(0), 5, 0.1, parameter_filter=parameter_filter
        )
        np.testing.assert_array_equal(np.asarray(attacked["w2"]), np.asarray(params["w2"]))
        assert np.any(np.asarray(attacked["w1"]) != np.asarray(params["w1"]))
    # Without attack (β = 0), the only effect left is the forward noise: excluded leaves see none.
    y = jnp.zeros((8, 2))
    frozen = {"w1": False, "w2": False}
    noisy = mismatch_adversarial_loss(
        params, two_layer, x, y, mse, mse, jax.random.key(0), 0.5, 0.0, 0.1, 0.0, 1, parameter_filter=frozen
    )
    np.testing.assert_allclose(float(noisy), float(mse(nominal, y)), rtol=1e-12)


class FakeRockpoolModule:
    """A stand-in that follows the Rockpool module protocol (functional set_attributes/reset_state)."""

    def __init__(self, weights: dict, state: jax.Array | None = None) -> None:
        self.weights = weights
        self.state = jnp.zeros(()) if state is None else state

    def parameters(self) -> dict:
        return self.weights

    def set_attributes(self, params: dict) -> FakeRockpoolModule:
        return FakeRockpoolModule(params, self.state)

    def reset_state(self) -> FakeRockpoolModule:
        return FakeRockpoolModule(self.weights, jnp.zeros(()))

    def __call__(self, inputs: jax.Array) -> tuple[jax.Array, dict, dict]:
        output = jnp.tanh(inputs @ self.weights["w1"]) @ self.weights["w2"] + self.state
        return output, {"state": self.state + 1.0}, {}

    def tree_flatten(self) -> tuple[tuple, None]:
        return (self.weights, self.state), None

    @classmethod
    def tree_unflatten(cls, _: None, children: tuple) -> FakeRockpoolModule:
        return cls(*children)


jax.tree_util.register_pytree_node_class(FakeRockpoolModule)


def test_rockpool_style_module_runs_the_tutorial_calls() -> None:
    rng = np.random.default_rng(8)
    net = FakeRockpoolModule(
        {"w1": jnp.asarray(rng.normal(size=(6, 3)), jnp.float32), "w2": jnp.asarray(rng.normal(size=(3, 2)))}
    )
    net.weights["w2"] = net.weights["w2"].astype(jnp.float32)
    params = net.parameters()
    x, y = jnp.asarray(rng.normal(size=(10, 6)), jnp.float32), jnp.zeros((10, 2), jnp.float32)
    key = jax.random.PRNGKey(2)  # the tutorial's raw uint32 key
    # The tutorial's call: value_and_grad of the loss, every argument positional, Partial-wrapped losses.
    loss_vgf = jax.value_and_grad(mismatch_adversarial_loss)
    value, grads = loss_vgf(params, net, x, y, Partial(mse), Partial(mse), key, 0.1, 0.001, 0.025, 0.25, 10)
    pure = jax.value_and_grad(mismatch_adversarial_loss)(
        params, two_layer, x, y, mse, mse, key, 0.1, 0.001, 0.025, 0.25, 10
    )
    np.testing.assert_allclose(float(value), float(pure[0]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grads["w1"]), np.asarray(pure[1]["w1"]), rtol=1e-5, atol=1e-7)
    jitted = jax.jit(loss_vgf)(
        params, net, x, y, Partial(mse), Partial(mse), key, 0.1, 0.001, 0.025, 0.25, 10
    )
    np.testing.assert_allclose(float(jitted[0]), float(value), rtol=1e-5)


def test_mismatch_curve_is_exact_at_zero_and_spreads_with_the_level() -> None:
    params, x, y = _linear_problem(9)

    def loss_of(p: dict) -> jax.Array:
        return mse(linear(p, x), y)

    curve = mismatch_curve(loss_of, params, [0.0, 0.2, 0.5], draws=30, key=jax.random.key(0))
    again = mismatch_curve(loss_of, params, [0.0, 0.2, 0.5], draws=30, key=jax.random.key(0), batch_size=7)
    np.testing.assert_allclose(curve.mean[0], float(loss_of(params)), rtol=1e-6)
    assert curve.std[0] == 0.0 and 0 < curve.std[1] < curve.std[2]
    np.testing.assert_allclose(curve.mean, again.mean, rtol=1e-6)
    with pytest.raises(ValueError, match="levels"):
        mismatch_curve(loss_of, params, [-0.1])
    with pytest.raises(ValueError, match="draws"):
        mismatch_curve(loss_of, params, [0.1], draws=0)


def test_bad_arguments_raise_clear_errors() -> None:
    params, x, y = _linear_problem(10)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="mismatch_level"):
        mismatch_adversarial_loss(params, linear, x, y, mse, mse, key, mismatch_level=-0.1)
    with pytest.raises(ValueError, match="noisy_forward_std"):
        mismatch_adversarial_loss(params, linear, x, y, mse, mse, key, noisy_forward_std=float("nan"))
    with pytest.raises(TypeError, match="attack_steps must be an integer"):
        mismatch_adversarial_loss(params, linear, x, y, mse, mse, key, attack_steps=2.5)
    with pytest.raises(ValueError, match="attack_steps must be >= 0"):
        mismatch_adversarial_loss(params, linear, x, y, mse, mse, key, attack_steps=-1)
    with pytest.raises(TypeError, match="PRNG key"):
        mismatch_adversarial_loss(params, linear, x, y, mse, mse, None)
    with pytest.raises(TypeError, match="net must be a callable"):
        mismatch_adversarial_loss(params, "net", x, y, mse, mse, key)
    with pytest.raises(ValueError, match="parameter_filter"):
        pga_attack(params, linear, x, y, mse, key, parameter_filter={"v": True})
    with pytest.raises(TypeError, match="one Python bool per parameter leaf"):
        pga_attack(params, linear, x, y, mse, key, parameter_filter={"w": 1.0})
    with pytest.raises(TypeError, match="attack_steps must be an integer"):
        jax.jit(lambda s: mismatch_adversarial_loss(params, linear, x, y, mse, mse, key, attack_steps=s))(2.0)
