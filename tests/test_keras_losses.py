"""Keras HRLoss and hr_weights: parity with the core, compile/fit, serialisation, masks and errors."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # hide TensorFlow's INFO banner; warnings still show

import numpy as np
import pytest
from frameworks import require

tf = require("tensorflow")
keras = require("keras")

import hrcore  # noqa: E402
from hrcore.adapters.keras import HRLoss, hr_weights  # noqa: E402


def _identity_loss(y_true, y_pred):
    # The "predictions" are the per-sample losses themselves: HRLoss's gradient w.r.t. them is ∂V/∂ℓ.
    return y_pred


def _losses(n: int, seed: int, dtype: str) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(size=n).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ambiguity", ["HD", "HR"])
@pytest.mark.parametrize("compiled", [False, True])
def test_value_and_gradient_are_the_core_value_and_weights(dtype, ambiguity, compiled):
    values = _losses(40, 1, dtype)
    expected = hrcore.solve(values, alpha=0.1, r=0.3, ambiguity=ambiguity)
    loss = HRLoss(_identity_loss, alpha=0.1, r=0.3, ambiguity=ambiguity)

    def value_and_grad(ell):
        with tf.GradientTape() as tape:
            tape.watch(ell)
            value = loss(None, ell)
        return value, tape.gradient(value, ell), hr_weights(ell, alpha=0.1, r=0.3, ambiguity=ambiguity)

    run = tf.function(value_and_grad) if compiled else value_and_grad
    value, grad, weights = run(tf.constant(values))
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    assert value.dtype == tf.as_dtype(dtype) and grad.dtype == tf.as_dtype(dtype)
    np.testing.assert_allclose(float(value), expected.value, rtol=tolerance)
    np.testing.assert_allclose(grad.numpy(), expected.weights, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(weights.numpy(), expected.weights, rtol=tolerance, atol=tolerance)


def test_hr_weights_carry_no_gradient():
    ell = tf.constant(_losses(8, 2, "float32"))
    with tf.GradientTape() as tape:
        tape.watch(ell)
        weights = hr_weights(ell)
    assert tape.gradient(weights, ell) is None


def test_upper_bound_value_includes_the_worst_atom_and_gradient_is_the_weights():
    values = np.linspace(0.0, 0.5, 12)
    expected = hrcore.solve(values, alpha=0.05, r=0.2, upper_bound=1.0)
    ell = tf.constant(values)
    with tf.GradientTape() as tape:
        tape.watch(ell)
        value = HRLoss(_identity_loss, alpha=0.05, r=0.2, upper_bound=1.0)(None, ell)
    np.testing.assert_allclose(float(value), expected.value, rtol=1e-12)
    np.testing.assert_allclose(tape.gradient(value, ell).numpy(), expected.weights, atol=1e-12)
    assert float(value) > float(np.sum(expected.weights * values))  # the atom at B adds mass·B


def test_unknown_batch_size_in_tf_function():
    run = tf.function(
        lambda ell: hr_weights(ell, alpha=0.1), input_signature=[tf.TensorSpec([None], tf.float32)]
    )
    for n in (3, 17):
        values = _losses(n, n, "float32")
        np.testing.assert_allclose(run(values).numpy(), hrcore.hr_weights(values, alpha=0.1), atol=1e-6)


def test_sample_weight_is_a_mask_that_excludes_rows():
    values = _losses(10, 3, "float64")
    mask = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 1], dtype="float32")
    expected = hrcore.solve(values, alpha=0.2, r=0.1, mask=mask.astype(bool))
    value = HRLoss(_identity_loss, alpha=0.2, r=0.1)(None, tf.constant(values), sample_weight=mask)
    np.testing.assert_allclose(float(value), expected.value, rtol=1e-12)
    weights = hr_weights(tf.constant(values), alpha=0.2, r=0.1, mask=mask.astype(bool)).numpy()
    np.testing.assert_allclose(weights, expected.weights, atol=1e-12)
    assert weights[2] == 0.0 and weights[6] == 0.0


def test_graded_sample_weights_are_refused():
    loss = HRLoss(_identity_loss)
    with pytest.raises(ValueError, match="0/1 mask"):
        loss(None, tf.constant(_losses(4, 0, "float32")), sample_weight=np.array([1.0, 0.5, 1.0, 1.0]))


def test_reducing_base_loss_raises_the_reduction_message():
    with pytest.raises(ValueError, match="reduction=None"):
        HRLoss(keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="reduction=None \\(Keras\\)"):
        HRLoss(lambda y_true, y_pred: keras.ops.mean(y_pred))(None, tf.ones(4))
    with pytest.raises(ValueError, match="reduction=None"):
        hr_weights(tf.constant(1.0))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"alpha": 1.0}, ValueError, "alpha"),
        ({"r": -0.1}, ValueError, "r \\(the KL radius\\)"),
        ({"ambiguity": "KL"}, ValueError, "ambiguity"),
        ({"upper_bound": float("inf")}, ValueError, "upper_bound"),
        ({"alpha": "0.1"}, TypeError, "alpha must be a real number"),
    ],
)
def test_bad_hyper_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        HRLoss(_identity_loss, **kwargs)
    with pytest.raises(error, match=match):
        hr_weights(tf.ones(3), **kwargs)


def test_bad_inputs_and_assignments():
    with pytest.raises(TypeError, match="base_loss must be"):
        HRLoss(3)
    loss = HRLoss(_identity_loss)
    with pytest.raises(ValueError, match="alpha"):
        loss.alpha = -0.5
    with pytest.raises(ValueError, match="NaN"):
        loss(None, tf.constant([1.0, float("nan")]))
    with pytest.raises(ValueError, match="below the largest loss"):
        HRLoss(_identity_loss, upper_bound=1.0)(None, tf.constant([0.5, 2.0]))
    with pytest.raises(ValueError, match="1-D"):
        hr_weights(tf.ones((3, 2)))


def test_jit_compile_true_gets_a_clear_error():
    run = tf.function(lambda ell: hr_weights(ell), jit_compile=True)
    with pytest.raises(ValueError, match=r'jit_compile=False.*jit_compile="auto"'):
        run(tf.ones(4))


def test_errors_inside_a_compiled_graph_keep_the_core_message():
    run = tf.function(lambda ell: hr_weights(ell))
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        run(tf.constant([1.0, float("nan")]))


def _digits(n: int | None = None):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return (x, y) if n is None else (x[:n], y[:n])


def _mlp(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )


def _sparse_ce(reduction="sum_over_batch_size"):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)


def test_fit_at_alpha_r_zero_follows_the_plain_loss_trajectory():
    x, y = _digits(256)
    plain, robust = _mlp(0), _mlp(0)
    robust.set_weights(plain.get_weights())
    plain.compile(keras.optimizers.SGD(0.1), loss=_sparse_ce())
    robust.compile(keras.optimizers.SGD(0.1), loss=HRLoss(_sparse_ce(None), alpha=0.0, r=0.0))
    history_plain = plain.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0).history["loss"]
    history_robust = robust.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(history_robust, history_plain, rtol=1e-6)
    for a, b in zip(plain.get_weights(), robust.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-6)
    assert history_plain[-1] < history_plain[0]


# Keras's own weight saving calls np.array on TF tensors (a numpy-2 deprecation inside Keras, not hrcore).
@pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
def test_fit_trains_on_digits_and_alpha_changes_between_epochs(tmp_path):
    x, y = _digits()
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1400], order[1400:]
    model = _mlp(1)
    loss = HRLoss(_sparse_ce(None), alpha=0.05, r=0.1)
    model.compile(keras.optimizers.Adam(0.01), loss=loss, metrics=["accuracy"])
    seen: list[float] = []

    class Schedule(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            loss.alpha = 0.05 * (1 + epoch % 2)
            seen.append(loss.alpha)

    model.fit(x[train], y[train], batch_size=64, epochs=5, verbose=0, callbacks=[Schedule()])
    assert seen == pytest.approx([0.05, 0.1, 0.05, 0.1, 0.05])
    _, accuracy = model.evaluate(x[test], y[test], verbose=0)
    assert accuracy > 0.85

    # The traced test step reads α when it runs: evaluate agrees with the core at each new value.
    logits = model.predict(x[test][:128], verbose=0)
    per_sample = _sparse_ce(None)(y[test][:128], logits).numpy().astype(np.float64)
    for alpha in (0.0, 0.3):
        loss.alpha = alpha
        value, _ = model.evaluate(x[test][:128], y[test][:128], batch_size=128, verbose=0)
        assert value == pytest.approx(hrcore.solve(per_sample, alpha=alpha, r=0.1).value, rel=1e-5)

    path = tmp_path / "hr.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored.loss, HRLoss)
    assert (restored.loss.alpha, restored.loss.r, restored.loss.ambiguity) == (0.3, 0.1, "HD")
    np.testing.assert_allclose(
        restored.predict(x[test], verbose=0), model.predict(x[test], verbose=0), atol=1e-6
    )
    assert restored.evaluate(x[test], y[test], verbose=0)[0] == pytest.approx(
        model.evaluate(x[test], y[test], verbose=0)[0], rel=1e-6
    )


def test_config_round_trip_with_string_base_loss():
    loss = HRLoss("sparse_categorical_crossentropy", alpha=0.2, r=0.05, ambiguity="hr", upper_bound=5.0)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, HRLoss)
    assert (clone.alpha, clone.r, clone.ambiguity, clone.upper_bound) == (0.2, 0.05, "HR", 5.0)
    y, p = np.array([0, 1, 2]), np.full((3, 3), 1 / 3, dtype="float32")
    assert float(clone(y, p)) == pytest.approx(float(loss(y, p)))


def test_hr_weights_as_sample_weight_in_a_custom_step():
    x, y = _digits(128)
    model = _mlp(2)
    per_sample = _sparse_ce(None)
    weighted = _sparse_ce("sum")
    with tf.GradientTape() as tape:
        logits = model(x)
        losses = per_sample(y, logits)
        value = weighted(y, logits, sample_weight=hr_weights(losses, alpha=0.1, r=0.2))
    grads = tape.gradient(value, model.trainable_variables)
    with tf.GradientTape() as tape:
        reference = HRLoss(per_sample, alpha=0.1, r=0.2)(y, model(x))
    expected = tape.gradient(reference, model.trainable_variables)
    assert float(value) == pytest.approx(float(reference), rel=1e-6)
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g.numpy(), e.numpy(), atol=1e-6)
