"""JAX adapter benchmark: the cost of parameter-mismatch adversarial training, and of the HR loss.

On the published tutorial's network (2000→8→2 tanh, one sample of T = 100 steps, float32, 10 attack steps) it
reports, as medians of interleaved repetitions:
- adversarial training step ÷ standard training step, both one jitted function (value_and_grad + Adam update);
- the same, called the way the published tutorial calls it (un-jitted ``value_and_grad`` of the adversarial
  loss, key split and optimiser update outside);
- for reference, an unrolled re-implementation of the published attack structure (a Python loop of attack
  steps, differentiated through), measured in the same run;
- compile time and lowered program size at 1, 10 and 50 attack steps (flat for hrcore's ``lax`` loop);
- an MLP step with ``hr_loss`` ÷ the same step with the mean loss.

Run: ``python benchmarks/bench_jax.py`` (``--repeats`` to trade precision for time).
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from timing import interleaved_medians

from hrcore.adapters.jax import hr_loss, mismatch_adversarial_loss

Params = dict[str, jax.Array]
TARGET_JITTED = 4.9  # the published implementation's adversarial/standard ratio, jitted
TARGET_TUTORIAL = 7.7  # the same, called as the published tutorial calls it
HYPER = (0.1, 1e-3, 0.025, 0.25)  # σ_fwd, σ_init, ζ, β of the tutorial


def network(params: Params, x: jax.Array) -> jax.Array:
    """The tutorial network: tanh(X W_in) W_out."""
    return jnp.tanh(x @ params["w_in"]) @ params["w_out"]


def mse(output: jax.Array, target: jax.Array) -> jax.Array:
    """mean((output − target)²)."""
    return jnp.mean((output - target) ** 2)


def unrolled_loss(
    params: Params, x: jax.Array, y: jax.Array, key: jax.Array, steps: int, hyper: tuple[float, ...] = HYPER
) -> jax.Array:
    """The published attack's structure, re-derived from its documentation, for comparison only.

    Computes task(f(X, Θ̃), y) + β·mismatch(f(X, Θ*), f(X, Θ)) with Θ* built by ``steps`` Python-unrolled
    sign steps Θ* ← Θ* + (ζ|Θ|/steps)·sign(∇Θ*), differentiated through (no stop-gradient, no box projection).
    """
    noisy_std, initial_std, level, beta = hyper
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, 2 * len(leaves))
    noisy = [
        p + jax.lax.stop_gradient(noisy_std * jnp.abs(p) * jax.random.normal(k, p.shape))
        for p, k in zip(leaves, keys[: len(leaves)], strict=True)
    ]
    nominal = network(params, x)
    star = [
        p + jnp.abs(p) * initial_std * jax.random.normal(k, p.shape)
        for p, k in zip(leaves, keys[len(leaves) :], strict=True)
    ]

    def attacked_loss(theta: list[jax.Array]) -> jax.Array:
        return mse(network(jax.tree_util.tree_unflatten(treedef, theta), x), nominal)

    for _ in range(steps):
        slopes = jax.grad(attacked_loss)(star)
        star = [
            s + level * jnp.abs(p) / steps * jnp.sign(g) for s, p, g in zip(star, leaves, slopes, strict=True)
        ]
    task = mse(network(jax.tree_util.tree_unflatten(treedef, noisy), x), y)
    return task + beta * attacked_loss(star)


def tutorial_problem(seed: int = 0) -> tuple[Params, jax.Array, jax.Array]:
    """Kaiming-uniform weights and one frozen-noise sample with a sine target."""
    rng = np.random.default_rng(seed)
    params = {
        "w_in": jnp.asarray(rng.uniform(-1, 1, (2000, 8)) * np.sqrt(6 / 2000), jnp.float32),
        "w_out": jnp.asarray(rng.uniform(-1, 1, (8, 2)) * np.sqrt(6 / 8), jnp.float32),
    }
    x = jnp.asarray(rng.standard_normal((100, 2000)) + 1.0, jnp.float32)
    y = jnp.asarray(np.sin(2 * np.pi * np.outer(np.arange(100) / 100, [1.3, 0.7]) + 0.4), jnp.float32)
    return params, x, y


def training_steps(params: Params) -> dict[str, Callable[..., Any]]:
    """Jitted training steps (loss, gradient, Adam update) for standard, hrcore-adversarial and unrolled."""
    optimizer = optax.adam(1e-4)

    def make(loss: Callable[..., jax.Array]) -> Callable[..., Any]:
        @jax.jit
        def step(p: Params, state: Any, key: jax.Array, x: jax.Array, y: jax.Array) -> tuple[Any, ...]:
            key, sub = jax.random.split(key)
            value, grads = jax.value_and_grad(loss)(p, x, y, sub)
            updates, state = optimizer.update(grads, state, p)
            return optax.apply_updates(p, updates), state, key, value

        return step

    def adversarial(p: Params, x: jax.Array, y: jax.Array, key: jax.Array) -> jax.Array:
        return mismatch_adversarial_loss(p, network, x, y, mse, mse, key, *HYPER, 10)

    return {
        "standard": make(lambda p, x, y, key: mse(network(p, x), y)),
        "adversarial": make(adversarial),
        "unrolled": make(functools.partial(unrolled_loss, steps=10)),
        "init": optimizer.init,
        "update": jax.jit(lambda grads, state, p: optimizer.update(grads, state, p)),
    }


def bench_training(repeats: int) -> None:
    params, x, y = tutorial_problem()
    steps = training_steps(params)
    state = steps["init"](params)
    key = jax.random.key(0)

    def fused(name: str) -> Callable[[], object]:
        return lambda: jax.block_until_ready(steps[name](params, state, key, x, y))

    medians = interleaved_medians(
        {name: fused(name) for name in ("standard", "adversarial", "unrolled")}, repeats
    )
    base = medians["standard"]
    print(f"jitted training step (value_and_grad + Adam), tutorial network, median of {repeats}:")
    print(f"  standard     {base * 1e3:7.3f} ms")
    for name, label in (("adversarial", "hrcore     "), ("unrolled", "unrolled ref")):
        target = f"(target <= {TARGET_JITTED}x)" if name == "adversarial" else "(same-run reference)"
        print(f"  {label} {medians[name] * 1e3:7.3f} ms  {medians[name] / base:5.2f}x standard {target}")

    # The published tutorial's loop: key split and update outside; the adversarial loss's value_and_grad is
    # not jitted (only the standard one is).
    standard_vgf = jax.jit(jax.value_and_grad(lambda p, x, y: mse(network(p, x), y)))
    adversarial_vgf = jax.value_and_grad(mismatch_adversarial_loss)
    update = steps["update"]

    def tutorial_standard() -> object:
        jax.random.split(key)  # the tutorial's loop splits the key for both trainings
        _, grads = standard_vgf(params, x, y)
        return jax.block_until_ready(update(grads, state, params))

    def tutorial_adversarial() -> object:
        _, sub = jax.random.split(key)
        _, grads = adversarial_vgf(params, network, x, y, mse, mse, sub, *HYPER, 10)
        return jax.block_until_ready(update(grads, state, params))

    loop = interleaved_medians({"standard": tutorial_standard, "adversarial": tutorial_adversarial}, repeats)
    print("called as the published tutorial does (un-jitted adversarial value_and_grad):")
    print(
        f"  standard {loop['standard'] * 1e3:7.3f} ms, "
        f"hrcore adversarial {loop['adversarial'] * 1e3:7.3f} ms: "
        f"{loop['adversarial'] / loop['standard']:5.2f}x (published: {TARGET_TUTORIAL}x)"
    )


def bench_compilation() -> None:
    params, x, y = tutorial_problem()
    key = jax.random.key(0)
    print("compile time and lowered program size of jit(value_and_grad(loss)) by attack steps:")
    sizes: dict[str, dict[int, int]] = {"hrcore": {}, "unrolled": {}}
    for steps in (1, 10, 50):
        for name in sizes:
            if name == "hrcore":

                def loss(
                    p: Params, x: jax.Array, y: jax.Array, key: jax.Array, steps: int = steps
                ) -> jax.Array:
                    return mismatch_adversarial_loss(p, network, x, y, mse, mse, key, *HYPER, steps)
            else:
                loss = functools.partial(unrolled_loss, steps=steps)
            start = time.perf_counter()
            # Data and key are arguments, so the program text holds the computation, not 800 kB of constants.
            lowered = jax.jit(jax.value_and_grad(loss)).lower(params, x, y, key)
            lowered.compile()
            seconds = time.perf_counter() - start
            sizes[name][steps] = len(lowered.as_text())
            print(f"  {name:8s} {steps:3d} steps: {seconds:6.2f} s, {sizes[name][steps]:8d} characters")
    for name, by_steps in sizes.items():
        target = "(target <= 1.10x)" if name == "hrcore" else "(reference)"
        print(f"  {name}: program at 50 steps / at 1 step = {by_steps[50] / by_steps[1]:5.2f}x {target}")


def bench_hr_loss(repeats: int) -> None:
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(128, 64)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, 128))
    params = {
        "w0": jnp.asarray(rng.normal(size=(64, 64)) / 8, jnp.float32),
        "w1": jnp.asarray(rng.normal(size=(64, 10)) / 8, jnp.float32),
    }

    def make(reduce: Callable[[jax.Array], jax.Array]) -> Callable[[], object]:
        @jax.jit
        def step(p: Params) -> Params:
            def loss(q: Params) -> jax.Array:
                logits = jnp.tanh(x @ q["w0"]) @ q["w1"]
                return reduce(optax.softmax_cross_entropy_with_integer_labels(logits, y))

            return jax.tree_util.tree_map(lambda a, g: a - 0.1 * g, p, jax.grad(loss)(p))

        return lambda: jax.block_until_ready(step(params))

    medians = interleaved_medians({"mean": make(jnp.mean), "hr": make(hr_loss)}, repeats)
    print(
        f"MLP step, batch 128: mean loss {medians['mean'] * 1e3:.3f} ms, "
        f"hr_loss {medians['hr'] * 1e3:.3f} ms: {medians['hr'] / medians['mean']:5.2f}x "
        "(no target: one exact solve on the host per batch)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    bench_training(args.repeats)
    bench_compilation()
    bench_hr_loss(args.repeats)


if __name__ == "__main__":
    main()
