"""Parameter-mismatch adversarial training in JAX (Büchel, Faber, Muir 2021).

The attack runs on stop_gradient(Θ) inside one ``lax`` loop, so reverse mode never differentiates it and the
compiled program does not grow with the number of attack steps. The work happens in a module-level ``jax.jit``
whose hyper-parameters (σ, ζ, β, steps) are traced and whose callables are passed as ``Partial`` pytrees: a
schedule never recompiles, and the published tutorial's un-jitted ``value_and_grad`` calls hit the compilation
cache instead of re-tracing the loop on every step.

Three choices keep a training step cheap (measured on the tutorial network, on CPU, by
``benchmarks/bench_jax.py``): all Gaussian numbers of a step come from one draw (a draw costs mostly per
call); the network runs once, mapped over Θ̃, Θ and Θ*, after the attack (each layer's products share one
read of the inputs); and a matrix taller than wide is attacked transposed, which puts its weight gradient in
the orientation XLA on CPU computes fastest.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.tree_util import Partial

from hrcore.geometry import clip_mismatch, mismatch_perturb, mismatch_step

from .arguments import check_key, check_sizes, check_steps, is_static_zero
from .modules import as_jit_callable, pure_forward
from .parameters import ParameterFilter, pick_selected, replace_selected, selected_leaves, standard_normals

Loss = Callable[[Any, Any], Any]


def mismatch_adversarial_loss(
    parameters: Any,
    net: Any,
    inputs: Any,
    target: Any,
    task_loss: Loss,
    mismatch_loss: Loss,
    rng_key: jax.Array,
    noisy_forward_std: float = 0.0,
    initial_std: float = 1e-3,
    mismatch_level: float = 0.025,
    beta_robustness: float = 0.25,
    attack_steps: int = 10,
    *,
    parameter_filter: ParameterFilter = None,
) -> jax.Array:
    """Task loss under forward noise plus β times the loss of the network under a worst-case weight mismatch.

    Computes L = task_loss(f(X, Θ̃), y) + β·mismatch_loss(f(X, Θ*), f(X, Θ)), Θ̃ = Θ + sg(σ_fwd|Θ|⊙R),
    Θ* = Θ + |Θ|⊙sg(u) with u from ``pga_attack`` (|u| ≤ ζ); f(X, Θ) is differentiated, as in the published
    implementation.

    The positional order is the published one: ``jax.value_and_grad(mismatch_adversarial_loss)`` replaces the
    published ``adversarial_loss`` in existing code. ``rng_key`` draws once,
    ``jax.random.normal(rng_key, (2, n))`` with n the selected leaves' total size: row 0 is the forward
    noise R and row 1 the attack's start R, each cut into the selected leaves in leaf order.

    Args:
        parameters: Θ, any pytree of arrays.
        net: ``net(params, inputs) -> outputs`` (see ``pure_forward``) or a Rockpool-style module.
        inputs: X, passed to the network as is.
        target: y, passed to ``task_loss`` as is.
        task_loss: ``task_loss(output, target) -> scalar``.
        mismatch_loss: ``mismatch_loss(attacked_output, nominal_output) -> scalar``.
        rng_key: A JAX PRNG key.
        noisy_forward_std: σ_fwd ≥ 0 (may be traced).
        initial_std: σ_init ≥ 0, the attack's random start u0 = σ_init·R (may be traced).
        mismatch_level: ζ ≥ 0, the relative size of the mismatch box (may be traced).
        beta_robustness: β ≥ 0 (may be traced); β = 0 skips the attack.
        attack_steps: Number of sign-gradient ascent steps (an int, may be traced).
        parameter_filter: Which leaves the attack and the noise touch: a pytree of booleans or a predicate
            ``(path, leaf) -> bool``. Non-float leaves are never touched. Default: every float leaf.

    Returns:
        The scalar loss.

    Raises:
        ValueError: For a negative or non-finite hyper-parameter, a negative step count, or a filter that does
            not match the parameters.
        TypeError: For a non-integer step count, a missing key, or a net that is not callable.
    """
    forward = pure_forward(net)
    check_sizes(
        noisy_forward_std=noisy_forward_std,
        initial_std=initial_std,
        mismatch_level=mismatch_level,
        beta_robustness=beta_robustness,
    )
    check_steps("attack_steps", attack_steps)
    return _adversarial_loss(
        parameters, as_jit_callable(forward), inputs, target, as_jit_callable(task_loss),
        as_jit_callable(mismatch_loss), check_key(rng_key, "mismatch_adversarial_loss"),
        noisy_forward_std, initial_std, mismatch_level, beta_robustness, attack_steps,
        selected=tuple(selected_leaves(parameters, parameter_filter)),
        noise=not is_static_zero(noisy_forward_std),
        robustness=not is_static_zero(beta_robustness),
    )  # fmt: skip


@functools.partial(jax.jit, static_argnames=("selected", "noise", "robustness"))
def _adversarial_loss(
    parameters: Any,
    forward: Partial,
    inputs: Any,
    target: Any,
    task_loss: Partial,
    mismatch_loss: Partial,
    rng_key: jax.Array,
    noisy_forward_std: Any,
    initial_std: Any,
    mismatch_level: Any,
    beta_robustness: Any,
    attack_steps: Any,
    *,
    selected: tuple[bool, ...],
    noise: bool,
    robustness: bool,
) -> jax.Array:
    leaves, treedef = jax.tree_util.tree_flatten(parameters)
    noisy_leaves = leaves
    # One draw for the step: row 0 the forward noise, row 1 the attack's start (the same rows whatever is on).
    noise_draws, start_draws = standard_normals(rng_key, leaves, selected, sets=2)
    if noise:
        chosen = pick_selected(leaves, selected)
        # The noise is a constant offset: Θ̃ has the identity Jacobian in Θ.
        noisy = [
            leaf + jax.lax.stop_gradient(noisy_forward_std * jnp.abs(leaf) * draw)
            for leaf, draw in zip(chosen, noise_draws, strict=True)
        ]
        noisy_leaves = replace_selected(leaves, selected, noisy)
    if not robustness:
        return task_loss(forward(jax.tree_util.tree_unflatten(treedef, noisy_leaves), inputs), target)
    # The attack's reference f(X, sg(Θ)); the differentiated f(X, Θ) is evaluated with the other sets below.
    reference = forward(
        jax.tree_util.tree_unflatten(treedef, [jax.lax.stop_gradient(x) for x in leaves]), inputs
    )
    # β = 0 at run time takes no attack step, without recompiling: the loss is then the task loss alone.
    offsets = _attack_offsets(
        leaves, treedef, selected, forward, inputs, reference, mismatch_loss, start_draws,
        attack_steps, mismatch_level, initial_std, trips=jnp.where(beta_robustness == 0, 0, attack_steps),
    )  # fmt: skip
    attacked_leaves = _perturbed_leaves(leaves, selected, offsets)
    if noise:
        noisy_output, nominal, attacked = _forward_each(
            forward, treedef, [noisy_leaves, leaves, attacked_leaves], inputs
        )
    else:
        nominal, attacked = _forward_each(forward, treedef, [leaves, attacked_leaves], inputs)
        noisy_output = nominal
    return task_loss(noisy_output, target) + beta_robustness * mismatch_loss(attacked, nominal)


def _forward_each(
    forward: Callable[[Any, Any], Any], treedef: Any, leaf_sets: Sequence[Sequence[Any]], inputs: Any
) -> list[Any]:
    """f(X, Θ_k) for parameter sets Θ_k that share the inputs, as one evaluation mapped over k.

    Mapping over the parameter sets turns each layer's products X·W_k into one product with the W_k side by
    side: X is read once, and narrow products cost little more than one. A network that cannot be mapped
    (e.g. a callback without a vmap rule) is evaluated once per set instead, with the same result.
    """
    stacked = [jnp.stack(group) for group in zip(*leaf_sets, strict=True)]
    try:
        outputs = jax.vmap(lambda ls: forward(jax.tree_util.tree_unflatten(treedef, ls), inputs))(stacked)
    except Exception:  # the plain evaluations below re-raise any error that is not about mapping
        return [forward(jax.tree_util.tree_unflatten(treedef, list(ls)), inputs) for ls in leaf_sets]
    return [jax.tree_util.tree_map(lambda out, k=k: out[k], outputs) for k in range(len(leaf_sets))]


def pga_attack(
    params: Any,
    net: Any,
    inputs: Any,
    nominal_output: Any,
    mismatch_loss: Loss,
    key: jax.Array,
    attack_steps: int = 10,
    mismatch_level: float = 0.025,
    initial_std: float = 1e-3,
    *,
    parameter_filter: ParameterFilter = None,
) -> Any:
    """Worst-case parameters in the relative mismatch box, by projected sign-gradient ascent.

    Computes Θ* = Θ + |Θ|⊙sg(u), with u0 = clip(σ_init·R, ±ζ) and u ← clip(u + (ζ/steps)·sign(∇_u), ±ζ)
    maximising mismatch_loss(f(X, Θ + |Θ|⊙u), sg(nominal_output)) at Θ = sg(Θ).

    Args:
        params: Θ, any pytree of arrays.
        net: ``net(params, inputs)`` or a Rockpool-style module.
        inputs: X.
        nominal_output: f(X, Θ), the output the attack moves away from.
        mismatch_loss: ``mismatch_loss(attacked_output, nominal_output) -> scalar``.
        key: A JAX PRNG key; R is ``jax.random.normal(key, (n,))`` cut into the selected leaves in leaf order.
        attack_steps: Number of ascent steps (may be traced).
        mismatch_level: ζ ≥ 0 (may be traced).
        initial_std: σ_init ≥ 0 (may be traced).
        parameter_filter: As in ``mismatch_adversarial_loss``; unselected leaves come back unchanged.

    Returns:
        Θ*, with the structure of ``params``; differentiable in Θ through |Θ| only.

    Raises:
        ValueError: As ``mismatch_adversarial_loss``.
        TypeError: As ``mismatch_adversarial_loss``.
    """
    forward = pure_forward(net)
    check_sizes(mismatch_level=mismatch_level, initial_std=initial_std)
    check_steps("attack_steps", attack_steps)
    return _attacked_parameters(
        params, as_jit_callable(forward), inputs, nominal_output, as_jit_callable(mismatch_loss),
        check_key(key, "pga_attack"), attack_steps, mismatch_level, initial_std,
        selected=tuple(selected_leaves(params, parameter_filter)),
    )  # fmt: skip


@functools.partial(jax.jit, static_argnames=("selected",))
def _attacked_parameters(
    params: Any,
    forward: Partial,
    inputs: Any,
    nominal_output: Any,
    mismatch_loss: Partial,
    key: jax.Array,
    attack_steps: Any,
    mismatch_level: Any,
    initial_std: Any,
    *,
    selected: tuple[bool, ...],
) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(params)
    offsets = _attack_offsets(
        leaves, treedef, selected, forward, inputs, nominal_output, mismatch_loss,
        standard_normals(key, leaves, selected)[0], attack_steps, mismatch_level, initial_std,
    )  # fmt: skip
    return jax.tree_util.tree_unflatten(treedef, _perturbed_leaves(leaves, selected, offsets))


def _perturbed_leaves(leaves: Sequence[Any], selected: Sequence[bool], offsets: Sequence[Any]) -> list[Any]:
    """Θ* = Θ + |Θ|⊙u on the selected leaves, the others unchanged."""
    chosen = pick_selected(leaves, selected)
    moved = [mismatch_perturb(leaf, u) for leaf, u in zip(chosen, offsets, strict=True)]
    return replace_selected(leaves, selected, moved)


def _attack_offsets(
    leaves: Sequence[Any],
    treedef: Any,
    selected: Sequence[bool],
    forward: Callable[[Any, Any], Any],
    inputs: Any,
    nominal_output: Any,
    mismatch_loss: Loss,
    start_draws: Sequence[jax.Array],
    attack_steps: Any,
    mismatch_level: Any,
    initial_std: Any,
    trips: Any = None,
) -> list[jax.Array]:
    """The attack's offsets u (one per selected leaf), computed at sg(Θ) and returned without gradient.

    ``start_draws`` are R, one per selected leaf (u0 = clip(σ_init·R, ±ζ)); ``trips`` (default
    ``attack_steps``) is how many of the steps of length ζ/attack_steps are taken.
    """
    frozen = [jax.lax.stop_gradient(leaf) for leaf in leaves]
    nominal = jax.lax.stop_gradient(nominal_output)
    # A matrix is attacked with its longer axis last. A dense layer's weight gradient is Xᵀδ, which XLA on CPU
    # computes about 2.5× faster with the short side of the result first (34 against 88 µs for 2000×8 from
    # 100 rows); differentiating with respect to the transposed Θ* asks for exactly that orientation.
    flipped = [jnp.ndim(draw) == 2 and draw.shape[0] > draw.shape[1] for draw in start_draws]

    def reorient(arrays: Sequence[jax.Array]) -> list[jax.Array]:
        return [array.T if flip else array for array, flip in zip(arrays, flipped, strict=True)]

    chosen = reorient(pick_selected(frozen, selected))

    def objective(stars: list[jax.Array]) -> jax.Array:
        moved = jax.tree_util.tree_unflatten(treedef, replace_selected(frozen, selected, reorient(stars)))
        return mismatch_loss(forward(moved, inputs), nominal)

    def ascend(_: Any, offsets: list[jax.Array]) -> list[jax.Array]:
        slopes = jax.grad(objective)([mismatch_perturb(t, u) for t, u in zip(chosen, offsets, strict=True)])
        # ∇_u = |Θ|⊙∇_Θ*, the chain rule through Θ* = Θ + |Θ|⊙u.
        return [
            mismatch_step(u, jnp.abs(t) * g, mismatch_level, attack_steps)
            for t, u, g in zip(chosen, offsets, slopes, strict=True)
        ]

    start = reorient([clip_mismatch(initial_std * draw, mismatch_level) for draw in start_draws])
    final = jax.lax.fori_loop(0, attack_steps if trips is None else trips, ascend, start)
    return [jax.lax.stop_gradient(u) for u in reorient(final)]
