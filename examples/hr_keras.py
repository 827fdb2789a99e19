"""HR training in Keras 3 on sklearn's digits: ``fit`` with ``HRLoss``; ``hr_weights`` as ``sample_weight``.

Three runs of the same MLP (64→64→10) on the 8×8 digits (pixels scaled to [0, 1]), with a fraction of the
training labels flipped at random (corrupted data, the setting α is about):

* ERM: ``model.compile(loss=SparseCategoricalCrossentropy(from_logits=True))``;
* HRLoss: the one-line swap ``loss=HRLoss(SparseCategoricalCrossentropy(from_logits=True, reduction=None),
  alpha, r)``;
* a custom training loop that passes ``hr_weights(per_sample_losses)`` as ``sample_weight`` to a summing
  loss: the "importance weights for TensorFlow" route. It sees the same batches as the HRLoss run and
  computes the same loss, so the two runs coincide.

Each epoch prints the test accuracy; the end prints how the trained HR model's weights treat the training set
(the α easiest examples get weight 0, hard ones, flipped labels among them, more than 1/N) and writes the
accuracy curves to ``--out``.
Run ``python examples/hr_keras.py`` (about a minute on 2 CPU cores) or ``--quick`` for a toy run.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's INFO banner; warnings still show

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from hrcore.adapters.keras import HRLoss, hr_weights
from hrcore.plot import plot_accuracy_over_epochs

BATCH = 64


def load(label_noise: float, seed: int, limit: int | None) -> tuple[np.ndarray, ...]:
    """Digits in [0, 1]; a fraction of the training labels replaced by a different random class.

    Computes x = pixels/16 and, for a random subset of size ⌊noise·N⌋, y ← (y + U{1..9}) mod 10.

    Args:
        label_noise: Fraction of training labels to corrupt.
        seed: Seed of the split and of the corruption.
        limit: Use only the first ``limit`` examples (toy runs).

    Returns:
        x_train, y_train, x_test, y_test, and the boolean mask of flipped training labels.
    """
    digits = load_digits()
    x, y = (digits.data[:limit] / 16.0).astype("float32"), digits.target[:limit]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(y_train), dtype=bool)
    flipped[rng.choice(len(y_train), size=int(label_noise * len(y_train)), replace=False)] = True
    y_train = y_train.copy()
    y_train[flipped] = (y_train[flipped] + rng.integers(1, 10, size=flipped.sum())) % 10
    return x_train, y_train, x_test, y_test, flipped


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


def fit(
    model: keras.Model, loss: keras.losses.Loss, data: tuple[np.ndarray, ...], epochs: int, seed: int
) -> list[float]:
    """``compile`` + ``fit`` with Adam (lr 1e-2), returning the test accuracy after each epoch."""
    x_train, y_train, x_test, y_test = data
    model.compile(keras.optimizers.Adam(1e-2), loss=loss, metrics=["accuracy"])
    history = model.fit(
        batches(x_train, y_train, seed),
        epochs=epochs,
        validation_data=(x_test, y_test),
        shuffle=False,
        verbose=0,
    ).history
    for epoch, accuracy in enumerate(history["val_accuracy"], start=1):
        print(
            f"  epoch {epoch:3d}  train loss {history['loss'][epoch - 1]:.4f}  test accuracy {accuracy:.3f}"
        )
    return history["val_accuracy"]


def custom_loop(
    model: keras.Model, alpha: float, r: float, data: tuple[np.ndarray, ...], epochs: int, seed: int
) -> list[float]:
    """A hand-written training loop weighting each example by its HR weight.

    Minimises Σᵢ wᵢ ℓᵢ per batch, w = hr_weights(ℓ) held constant (a ``sample_weight``), with Adam (lr 1e-2).
    """
    x_train, y_train, x_test, y_test = data
    per_sample = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    weighted_sum = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            weights = hr_weights(per_sample(y, logits), alpha=alpha, r=r)  # constant: no gradient through it
            loss = weighted_sum(y, logits, sample_weight=weights)
        optimizer.apply_gradients(
            zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=True)
        )
        return loss

    history = []
    for epoch in range(1, epochs + 1):
        losses = [float(step(x, y)) for x, y in batches(x_train, y_train, seed)]
        history.append(float(np.mean(np.argmax(model.predict(x_test, verbose=0), axis=1) == y_test)))
        print(f"  epoch {epoch:3d}  train loss {np.mean(losses):.4f}  test accuracy {history[-1]:.3f}")
    return history


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the three trainings, print the comparison and the trimmed examples, and plot the curves.

    Args:
        argv: Command-line arguments (default: sys.argv).

    Returns:
        Run name -> final test accuracy.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy size: 400 examples, 2 epochs")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 20)")
    parser.add_argument("--alpha", type=float, default=0.1, help="HR poisoning fraction α")
    parser.add_argument("--r", type=float, default=0.1, help="HR KL radius r")
    parser.add_argument("--label-noise", type=float, default=0.1, help="fraction of training labels flipped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="hr_keras.png", help="PNG of test accuracy per epoch")
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else 20)

    *data, flipped = load(args.label_noise, args.seed, 400 if args.quick else None)
    x_train, y_train, _, y_test = data
    noise = f"{args.label_noise:.0%} labels flipped"
    print(f"digits: {len(y_train)} training examples ({noise}), {len(y_test)} test")
    histories: dict[str, list[float]] = {}

    print("\nERM: SparseCategoricalCrossentropy(from_logits=True)")
    erm = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    histories["ERM"] = fit(make_model(args.seed), erm, data, epochs, args.seed)

    print(f"\nHRLoss (one-line swap), α = {args.alpha:g}, r = {args.r:g}")
    hr_model = make_model(args.seed)
    base = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    histories["HRLoss"] = fit(hr_model, HRLoss(base, alpha=args.alpha, r=args.r), data, epochs, args.seed)

    print("\ncustom loop, hr_weights as sample_weight")
    histories["hr_weights loop"] = custom_loop(
        make_model(args.seed), args.alpha, args.r, data, epochs, args.seed
    )

    print(f"\ntest accuracy after {epochs} epochs")
    for name, history in histories.items():
        print(f"  {name:<16} {history[-1]:.3f}")

    # How the trained HR model weights the training set: N·w = 1 is ERM's weight.
    losses = base(y_train, hr_model.predict(x_train, verbose=0))
    scaled = len(y_train) * hr_weights(losses, alpha=args.alpha, r=args.r).numpy()
    print(
        f"\nHR weights of the trained HR model on the training set (N·w, ERM = 1): "
        f"{np.sum(scaled == 0)} easiest examples at 0; mean {scaled[flipped].mean():.2f} on flipped labels, "
        f"{scaled[~flipped].mean():.2f} on the others"
    )
    path = plot_accuracy_over_epochs({name: {"test": h} for name, h in histories.items()}, args.out)
    print(f"wrote {path}")
    return {name: history[-1] for name, history in histories.items()}


if __name__ == "__main__":
    main()
