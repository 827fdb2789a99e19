"""Parameter-mismatch adversarial loss (Büchel et al.) for Keras models, through ``model.stateless_call``.

Computes L = task(f(X, Θ̃), y) + β·mismatch(f(X, Θ*), f(X, Θ)) with Θ̃ = Θ + sg(|Θ|⊙σ_fwd⊙R) and
Θ* = Θ + |Θ|⊙sg(u), u from sign-gradient ascent on the mismatch loss in the box [−ζ, ζ].
The perturbed networks are evaluated on perturbed variable *values* (``stateless_call``), never by assigning
into the variables, so the gradient keeps the (1 + sign(Θ)⊙u) factor of Θ* and the variables stay untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from hrcore.validation import check_nonnegative

from .geometry import (
    RandomKey,
    as_scalar,
    check_steps,
    clip_mismatch,
    mismatch_perturb,
    mismatch_step,
    standard_noise,
)
from .host import require_tensorflow_backend

LossFn = Callable[[Any, Any], Any]


def _forward(model: keras.Model, trainable: Sequence[Any], inputs: Any) -> Any:
    """f(X, Θ): the model on the given trainable values and its current non-trainable ones."""
    outputs, _ = model.stateless_call(
        list(trainable), [v.value for v in model.non_trainable_variables], inputs
    )
    return outputs


def _check_hyper(name: str, value: Any) -> Any:
    return value if tf.is_tensor(value) else check_nonnegative(name, value)


def _relative_attack(
    model: keras.Model,
    theta: Sequence[tf.Tensor],
    inputs: Any,
    nominal_output: Any,
    mismatch_loss: LossFn,
    key: RandomKey,
    attack_steps: int,
    mismatch_level: Any,
    initial_std: Any,
) -> list[tf.Tensor]:
    """The attack's relative perturbation u (no gradient), one tensor per trainable variable.

    Starts at u₀ = clip(σ_init·R, −ζ, ζ) and takes ``attack_steps`` steps
    u ← clip(u + (ζ/steps)·sign(∇_u), −ζ, ζ) on mismatch(f(X, Θ + |Θ|⊙u), nominal_output), with Θ and the
    nominal output held constant.
    """
    theta = [tf.stop_gradient(t) for t in theta]
    nominal_output = tf.nest.map_structure(tf.stop_gradient, nominal_output)
    u = [
        clip_mismatch(
            as_scalar(initial_std, t.dtype) * standard_noise("normal", tf.shape(t), t.dtype, key, 2 * i + 1),
            mismatch_level,
        )
        for i, t in enumerate(theta)
    ]
    for _ in range(attack_steps):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(u)
            attacked = _forward(
                model, [mismatch_perturb(t, v) for t, v in zip(theta, u, strict=True)], inputs
            )
            loss = mismatch_loss(attacked, nominal_output)
        grads = tape.gradient(loss, u)
        u = [
            mismatch_step(v, tf.zeros_like(v) if g is None else g, mismatch_level, attack_steps)
            for v, g in zip(u, grads, strict=True)
        ]
    return [tf.stop_gradient(v) for v in u]


def pga_attack(
    params: Sequence[Any],
    net: keras.Model,
    inputs: Any,
    nominal_output: Any,
    mismatch_loss: LossFn,
    key: RandomKey = None,
    attack_steps: int = 10,
    mismatch_level: float = 0.025,
    initial_std: float = 1e-3,
) -> list[tf.Tensor]:
    """Projected sign-gradient ascent on the mismatch loss inside the relative box Θ ± ζ|Θ|.

    Returns Θ* = Θ + |Θ|⊙u with u maximising mismatch(f(X, Θ + |Θ|⊙u), nominal_output) over [−ζ, ζ] by
    ``attack_steps`` steps of size ζ/steps from u₀ = clip(σ_init·R, −ζ, ζ).

    Args:
        params: Values of ``net.trainable_variables`` (same order), e.g. ``[v.value for v in ...]``.
        net: The Keras model; evaluated with ``stateless_call`` on the perturbed values.
        inputs: Network inputs X.
        nominal_output: f(X, Θ), the target the attacked output is pulled away from.
        mismatch_loss: ``mismatch_loss(attacked_output, nominal_output)``.
        key: None (fresh noise), an int seed (the same start every call), a ``tf.random.Generator`` or a
            ``keras.random.SeedGenerator``.
        attack_steps: Number of ascent steps ≥ 0.
        mismatch_level: ζ ≥ 0, the relative size of the box.
        initial_std: σ_init ≥ 0, the relative standard deviation of the random start.

    Returns:
        Θ*, a list of tensors like ``params`` (no gradient).

    Raises:
        ValueError: For negative hyper-parameters or a params list of the wrong length.
        RuntimeError: On a Keras backend other than TensorFlow.
    """
    require_tensorflow_backend("pga_attack")
    theta = _check_params(params, net)
    steps = check_steps("attack_steps", attack_steps, 0)
    level, initial = _check_hyper("mismatch_level", mismatch_level), _check_hyper("initial_std", initial_std)
    u = _relative_attack(net, theta, inputs, nominal_output, mismatch_loss, key, steps, level, initial)
    return [tf.stop_gradient(mismatch_perturb(t, v)) for t, v in zip(theta, u, strict=True)]


def _check_params(params: Sequence[Any], net: keras.Model) -> list[tf.Tensor]:
    theta = [tf.convert_to_tensor(p) for p in params]
    if len(theta) != len(net.trainable_variables):
        raise ValueError(
            f"params has {len(theta)} entries but the model has {len(net.trainable_variables)} "
            "trainable variables."
        )
    return theta


def mismatch_adversarial_loss(
    model: keras.Model,
    inputs: Any,
    target: Any,
    task_loss: LossFn,
    mismatch_loss: LossFn,
    seed: RandomKey = None,
    noisy_forward_std: float = 0.0,
    initial_std: float = 1e-3,
    mismatch_level: float = 0.025,
    beta_robustness: float = 0.25,
    attack_steps: int = 10,
) -> tf.Tensor:
    """Task loss under forward weight noise plus β times the loss of a worst-case relative weight mismatch.

    Computes task(f(X, Θ̃), y) + β·mismatch(f(X, Θ + |Θ|⊙sg(u*)), f(X, Θ)) over ``model.trainable_variables``
    Θ, Θ̃ = Θ + sg(|Θ|⊙σ_fwd⊙R), u* from ``pga_attack``'s ascent; f(X, Θ) is differentiated too.
    Call it inside a ``tf.GradientTape`` and differentiate with respect to ``model.trainable_variables``.

    Args:
        model: The Keras model (built). Non-trainable variables keep their current values.
        inputs: X.
        target: y.
        task_loss: ``task_loss(output, target)`` (the published API's documented order).
        mismatch_loss: ``mismatch_loss(attacked_output, nominal_output)``.
        seed: None (fresh noise each call), an int (the same noise every call: reproducible evaluation), a
            ``tf.random.Generator`` or ``keras.random.SeedGenerator`` (fresh, reproducible noise per step).
        noisy_forward_std: σ_fwd ≥ 0, relative std of the forward noise (0: none).
        initial_std: σ_init ≥ 0, relative std of the attack's random start.
        mismatch_level: ζ ≥ 0, the box's relative size.
        beta_robustness: β ≥ 0; a Python 0 skips the attack.
        attack_steps: Ascent steps ≥ 0.

    Returns:
        The scalar loss.

    Raises:
        ValueError: For negative hyper-parameters or an unbuilt model.
        TypeError: For a non-integer step count or a bad seed.
        RuntimeError: On a Keras backend other than TensorFlow.
    """
    require_tensorflow_backend("mismatch_adversarial_loss")
    if not model.built or not model.trainable_variables:
        raise ValueError(
            "mismatch_adversarial_loss needs a built model with trainable variables (call it once first)."
        )
    steps = check_steps("attack_steps", attack_steps, 0)
    forward_std = _check_hyper("noisy_forward_std", noisy_forward_std)
    initial, level = _check_hyper("initial_std", initial_std), _check_hyper("mismatch_level", mismatch_level)
    beta = _check_hyper("beta_robustness", beta_robustness)
    # Reading the variables under the caller's tape is what makes the loss differentiable in them.
    theta = [tf.convert_to_tensor(v) for v in model.trainable_variables]
    noisy = theta
    if tf.is_tensor(forward_std) or forward_std > 0:
        noisy = [
            t
            + tf.stop_gradient(
                tf.abs(t)
                * as_scalar(forward_std, t.dtype)
                * standard_noise("normal", tf.shape(t), t.dtype, seed, 2 * i)
            )
            for i, t in enumerate(theta)
        ]
    nominal = _forward(model, theta, inputs)
    task = task_loss(nominal if noisy is theta else _forward(model, noisy, inputs), target)
    if not tf.is_tensor(beta) and beta == 0:
        return task
    u = _relative_attack(model, theta, inputs, nominal, mismatch_loss, seed, steps, level, initial)
    attacked = _forward(model, [mismatch_perturb(t, v) for t, v in zip(theta, u, strict=True)], inputs)
    return task + as_scalar(beta, task.dtype) * mismatch_loss(attacked, nominal)
