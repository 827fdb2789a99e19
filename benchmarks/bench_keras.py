"""Keras/TensorFlow adapter benchmark: the cost of one input-adversarial training step, and of the HR loss.

On a compute-bound MLP (784→1024→1024→10 ReLU, batch 256, float32) it reports, as medians of interleaved
repetitions, each against a baseline measured in the same run:
- NSL-style custom loop: a ``tf.function`` training step with ``input_adversarial_loss`` (one L∞ step, reusing
  the caller's tape and labeled loss) ÷ the same step without it, with Adam (target ≤ 2.0×; NSL measured
  1.8–2.0×) and with plain SGD (pure compute, no target: the work itself is a second forward and backward
  plus the first layer's input gradient, slightly over 2× in floating-point operations).
- Keras ``train_on_batch`` with Adam: ``AdversarialRegularization`` ÷ the plain base model (target ≤ 2.0×).
- A step with ``HRLoss`` ÷ the step with the mean loss (no target: one exact host solve per batch).

Run: ``python benchmarks/bench_keras.py`` (``--repeats`` to trade precision for time).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import keras
import numpy as np
import tensorflow as tf
from timing import interleaved_medians

from hrcore.adapters.keras import AdvConfig, AdversarialRegularization, HRLoss, input_adversarial_loss

TARGET_ADVERSARIAL = 2.0
CONFIG = AdvConfig(multiplier=0.2, adv_step_size=0.05, adv_grad_norm="linf")


def mlp(seed: int) -> keras.Model:
    """784→1024→1024→10 ReLU: matrix products dominate, so the ratio measures work, not dispatch."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def data(batch: int) -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(0)
    return tf.constant(rng.uniform(size=(batch, 784)).astype("float32")), tf.constant(
        rng.integers(0, 10, batch)
    )


def custom_loop_steps(
    model: keras.Model, optimizer: keras.optimizers.Optimizer
) -> dict[str, Callable[[tf.Tensor, tf.Tensor], Any]]:
    """The plain and the NSL-style adversarial training step, each one ``tf.function``."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer.build(model.trainable_variables)

    @tf.function
    def plain(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(
            zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=True)
        )
        return loss

    @tf.function
    def adversarial(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape_w:
            with tf.GradientTape() as tape_x:
                tape_x.watch(x)
                labeled = loss_fn(y, model(x, training=True))
            adv = input_adversarial_loss(
                x, y, model, loss_fn, adv_config=CONFIG, labeled_loss=labeled, gradient_tape=tape_x
            )
            total = labeled + CONFIG.multiplier * adv
        grads = tape_w.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return total

    return {"plain": plain, "adversarial": adversarial}


def bench_custom_loop(repeats: int, batch: int) -> None:
    x, y = data(batch)
    print(f"custom training loop (tf.function), MLP 784-1024-1024-10, batch {batch}, median of {repeats}:")
    for name, optimizer, target in (
        ("Adam", keras.optimizers.Adam(1e-4), f"target <= {TARGET_ADVERSARIAL}x; NSL measured 1.8-2.0x"),
        ("SGD", keras.optimizers.SGD(1e-3), "no target: pure compute, slightly over 2x in FLOPs"),
    ):
        steps = custom_loop_steps(mlp(0), optimizer)
        medians = interleaved_medians({k: (lambda f=f: f(x, y).numpy()) for k, f in steps.items()}, repeats)
        ratio = medians["adversarial"] / medians["plain"]
        print(
            f"  {name:4s}: plain {medians['plain'] * 1e3:7.2f} ms, "
            f"adversarial {medians['adversarial'] * 1e3:7.2f} ms: {ratio:5.2f}x plain ({target})"
        )


def bench_wrapper(repeats: int, batch: int) -> None:
    x, y = data(batch)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    plain = mlp(1)
    plain.compile(keras.optimizers.Adam(1e-4), loss=loss, jit_compile=False)
    wrapper = AdversarialRegularization(mlp(1), adv_config=CONFIG)
    wrapper.compile(keras.optimizers.Adam(1e-4), loss=loss, jit_compile=False)
    medians = interleaved_medians(
        {"plain": lambda: plain.train_on_batch(x, y), "wrapper": lambda: wrapper.train_on_batch(x, y)},
        repeats,
    )
    ratio = medians["wrapper"] / medians["plain"]
    print(
        f"Keras train_on_batch (Adam): plain {medians['plain'] * 1e3:.2f} ms, AdversarialRegularization "
        f"{medians['wrapper'] * 1e3:.2f} ms: {ratio:5.2f}x (target <= {TARGET_ADVERSARIAL}x)"
    )


def bench_hr_loss(repeats: int, batch: int) -> None:
    x, y = data(batch)
    mean_model, hr_model = mlp(2), mlp(2)
    mean_model.compile(
        keras.optimizers.SGD(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    hr_model.compile(
        keras.optimizers.SGD(1e-3),
        loss=HRLoss(keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)),
        jit_compile=False,
    )
    medians = interleaved_medians(
        {"mean": lambda: mean_model.train_on_batch(x, y), "hr": lambda: hr_model.train_on_batch(x, y)},
        repeats,
    )
    print(
        f"Keras train_on_batch (SGD): mean loss {medians['mean'] * 1e3:.2f} ms, "
        f"HRLoss {medians['hr'] * 1e3:.2f} ms: {medians['hr'] / medians['mean']:5.2f}x "
        "(no target: one exact host solve per batch)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    devices = ", ".join(d.device_type for d in tf.config.list_physical_devices())
    print(f"tensorflow {tf.__version__}, keras {keras.__version__} on {devices}")
    bench_custom_loop(args.repeats, args.batch)
    bench_wrapper(args.repeats, args.batch)
    bench_hr_loss(args.repeats, args.batch)


if __name__ == "__main__":
    main()
