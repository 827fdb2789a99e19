"""Input-adversarial training in Keras 3 on sklearn's digits: the NSL-style custom loop and the Keras wrapper.

Three runs of the same MLP (64→64→10) on the 8×8 digits (pixels scaled to [0, 1]):

* standard: ``compile/fit`` with the plain loss;
* custom loop: the Neural Structured Learning documentation's loop (a tape watching the inputs, the labeled
  loss, then ``input_adversarial_loss(..., labeled_loss=..., gradient_tape=...)``) with hrcore's function,
  minimising L(x) + m·L(x_adv), x_adv one L∞ step of size ε clipped to [0, 1];
* wrapper: ``AdversarialRegularization(model, AdvConfig(...))`` trained with plain ``fit(x, y)``.

Both adversarial runs use the same configuration, batches and initialisation, so they compute the same steps.
After each epoch every model is evaluated on the test set: clean accuracy, and accuracy under an FGSM attack
of the same ε counted over the originals it classified correctly (as the course exercise defines it). The
curves go to ``--out``. Run ``python examples/input_adversarial_keras.py`` (about a minute on 2 CPU cores) or
``--quick`` for a toy run.
"""

from __future__ import annotations

import argparse
import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's INFO banner; warnings still show

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from hrcore.adapters.keras import (
    AdvConfig,
    AdversarialRegularization,
    adversarial_accuracy,
    fgsm,
    input_adversarial_loss,
)
from hrcore.plot import plot_accuracy_over_epochs

BATCH = 64


def load(seed: int, limit: int | None) -> tuple[np.ndarray, ...]:
    """Digits in [0, 1]: x = pixels/16, a stratified 70/30 split."""
    digits = load_digits()
    x, y = (digits.data[:limit] / 16.0).astype("float32"), digits.target[:limit]
    return tuple(train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y))


def make_model(seed: int) -> keras.Model:
    """The MLP, initialised identically for every run: logits = W₂ relu(W₁x + b₁) + b₂."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
    )


def batches(x: np.ndarray, y: np.ndarray, seed: int) -> tf.data.Dataset:
    """Batches of 64 in one fixed shuffled order, so that every run sees exactly the same batches."""
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    return dataset.shuffle(len(y), seed=seed, reshuffle_each_iteration=False).batch(BATCH)


class Evaluation:
    """Clean and FGSM test accuracy after each epoch: mean[ŷ = y] and mean[ŷ_adv = y | ŷ = y]."""

    def __init__(self, x: np.ndarray, y: np.ndarray, eps: float) -> None:
        self.x, self.y = x, y
        self.attack = functools.partial(fgsm, eps=eps, bounds=(0.0, 1.0))
        self.history: dict[str, list[float]] = {"clean": [], "adversarial": []}

    def __call__(self, model: keras.Model, epoch: int, loss: float) -> None:
        result = adversarial_accuracy(model, self.x, self.y, self.attack)
        self.history["clean"].append(result.clean)
        self.history["adversarial"].append(result.conditional)
        print(
            f"  epoch {epoch:3d}  train loss {loss:.4f}  clean {result.clean:.3f}  "
            f"FGSM|correct {result.conditional:.3f}  robust {result.robust:.3f}",
            flush=True,
        )


def fit_with_evaluation(
    model: keras.Model, train: tf.data.Dataset, epochs: int, evaluation: Evaluation
) -> None:
    """``fit`` one epoch at a time, evaluating after each."""
    for epoch in range(1, epochs + 1):
        loss = model.fit(train, epochs=1, shuffle=False, verbose=0).history["loss"][0]
        evaluation(getattr(model, "base_model", model), epoch, loss)


def nsl_style_loop(
    model: keras.Model, config: AdvConfig, train: tf.data.Dataset, epochs: int, evaluation: Evaluation
) -> None:
    """The NSL documentation's custom loop with hrcore's ``input_adversarial_loss``.

    Minimises L(y, f(x)) + m·L(y, f(x_adv)) with Adam (lr 1e-2), reusing the tape and labeled loss.
    """
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape_w:
            with tf.GradientTape() as tape_x:  # a separate tape watching the inputs
                tape_x.watch(x)
                labeled_loss = loss_fn(y, model(x, training=True))
            adv_loss = input_adversarial_loss(
                x, y, model, loss_fn, adv_config=config, labeled_loss=labeled_loss, gradient_tape=tape_x
            )
            total_loss = labeled_loss + config.multiplier * adv_loss
        gradients = tape_w.gradient(total_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return total_loss

    for epoch in range(1, epochs + 1):
        totals, sizes = [], []
        for x, y in train:
            totals.append(float(step(x, y)))
            sizes.append(len(y))
        evaluation(model, epoch, float(np.average(totals, weights=sizes)))


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Run the three trainings, print per-epoch accuracies and plot them.

    Args:
        argv: Command-line arguments (default: sys.argv).

    Returns:
        Run name -> final {"clean", "adversarial"} accuracies.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy size: 400 examples, 2 epochs")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 15)")
    parser.add_argument("--eps", type=float, default=0.1, help="L∞ step of training and of the FGSM attack")
    parser.add_argument("--multiplier", type=float, default=1.0, help="weight m of the adversarial loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="input_adversarial_keras.png", help="PNG of accuracies per epoch")
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else 15)

    x_train, x_test, y_train, y_test = load(args.seed, 400 if args.quick else None)
    print(f"digits: {len(y_train)} training, {len(y_test)} test examples; FGSM ε = {args.eps:g}")
    config = AdvConfig(
        multiplier=args.multiplier,
        adv_step_size=args.eps,
        adv_grad_norm="linf",
        clip_value_min=0.0,
        clip_value_max=1.0,
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    histories = {}

    print("\nstandard training")
    model, evaluation = make_model(args.seed), Evaluation(x_test, y_test, args.eps)
    model.compile(keras.optimizers.Adam(1e-2), loss=loss)
    fit_with_evaluation(model, batches(x_train, y_train, args.seed), epochs, evaluation)
    histories["standard"] = evaluation.history

    print("\nNSL-style custom loop with input_adversarial_loss")
    evaluation = Evaluation(x_test, y_test, args.eps)
    nsl_style_loop(make_model(args.seed), config, batches(x_train, y_train, args.seed), epochs, evaluation)
    histories["custom loop"] = evaluation.history

    print("\nAdversarialRegularization wrapper, fit(x, y)")
    wrapper, evaluation = (
        AdversarialRegularization(make_model(args.seed), adv_config=config),
        Evaluation(x_test, y_test, args.eps),
    )
    wrapper.compile(keras.optimizers.Adam(1e-2), loss=loss)
    fit_with_evaluation(wrapper, batches(x_train, y_train, args.seed), epochs, evaluation)
    histories["wrapper"] = evaluation.history

    print(f"\nafter {epochs} epochs\n  {'run':<12} {'clean':>7} {'FGSM|correct':>13}")
    for name, history in histories.items():
        print(f"  {name:<12} {history['clean'][-1]:7.3f} {history['adversarial'][-1]:13.3f}")
    path = plot_accuracy_over_epochs(histories, args.out, title=f"digits, FGSM ε = {args.eps:g}")
    print(f"wrote {path}")
    return {name: {k: v[-1] for k, v in history.items()} for name, history in histories.items()}


if __name__ == "__main__":
    main()
