"""input_adversarial_loss, AdvConfig, AdversarialRegularization: the NSL contract, each NSL defect fixed."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import numpy as np
import pytest
from frameworks import require

tf = require("tensorflow")
keras = require("keras")

from hrcore import geometry  # noqa: E402
from hrcore.adapters.keras import (  # noqa: E402
    AdvConfig,
    AdversarialRegularization,
    HRLoss,
    input_adversarial_loss,
)


class Recorder:
    """A linear model x·W + b (over the concatenated float features) that records its inputs and calls."""

    def __init__(self, weights: np.ndarray, bias: float = 0.0, keys: tuple[str, ...] | None = None) -> None:
        self.weights = tf.constant(weights)
        self.bias = bias
        self.keys = keys
        self.calls: list[object] = []

    def __call__(self, features, **kwargs):
        self.calls.append(features)
        if self.keys is not None:
            features = tf.concat([tf.cast(features[k], self.weights.dtype) for k in self.keys], axis=1)
        return tf.matmul(features, self.weights) + self.bias


def _regression(seed: int, n: int = 6, d: int = 3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, 1)), rng.normal(size=(d, 1))


MSE = keras.losses.MeanSquaredError()


def _mse_gradient(x, y, w, b=0.0):
    # ∇ₓ of mean_b (x_b·w + b − y_b)² (Keras MSE, sum over batch size): 2(x_b·w + b − y_b)·wᵀ/B per example.
    return 2.0 * (x @ w + b - y) @ w.T / x.shape[0]


def test_imports_and_runs_on_tensorflow_2_16_or_later():
    # NSL could not even be imported on TensorFlow >= 2.16 (Keras 3).
    major, minor = (int(part) for part in tf.__version__.split(".")[:2])
    assert (major, minor) >= (2, 16) and keras.__version__.startswith("3.")
    import hrcore.adapters.keras as adapter

    assert adapter.input_adversarial_loss is input_adversarial_loss
    value = input_adversarial_loss(
        tf.ones((2, 3)), tf.zeros((2, 1)), Recorder(np.ones((3, 1), "float32")), MSE
    )
    assert float(value) > 9.0  # the clean loss is 9; the step ascends it


def test_nsl_documentation_example_runs_with_only_the_import_changed():
    # The NSL API page's linear-regression custom loop, with `nsl.keras.adversarial_loss` replaced by
    # hrcore's function (and, in the second pass, its config constructor by AdvConfig).
    rng = np.random.default_rng(0)
    x_all = rng.normal(size=(32, 2)).astype("float32")
    y_all = (x_all @ np.array([[1.5], [-2.0]]) + 0.3).astype("float32")
    train_dataset = tf.data.Dataset.from_tensor_slices((x_all, y_all)).batch(16)
    for adv_config in (None, AdvConfig(multiplier=0.2, adv_step_size=0.05)):
        keras.utils.set_random_seed(0)
        with pytest.warns(UserWarning, match="input_shape"):  # Keras 3's notice about the documented style
            model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
        loss_fn = tf.keras.losses.MeanSquaredError()
        optimizer = tf.keras.optimizers.SGD()
        before = float(loss_fn(y_all, model(x_all)))
        for _ in range(8):
            for x, y in train_dataset:
                with tf.GradientTape() as tape_w:
                    with tf.GradientTape() as tape_x:
                        tape_x.watch(x)
                        labeled_loss = loss_fn(y, model(x))
                    adv_loss = input_adversarial_loss(
                        x,
                        y,
                        model,
                        loss_fn,
                        adv_config=adv_config,
                        labeled_loss=labeled_loss,
                        gradient_tape=tape_x,
                    )
                    total_loss = labeled_loss + adv_loss
                gradients = tape_w.gradient(total_loss, model.trainable_variables)
                optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
                assert float(adv_loss) >= float(labeled_loss)  # the step ascends the loss
        assert float(loss_fn(y_all, model(x_all))) < 0.9 * before


@pytest.mark.parametrize("norm", ["l2", "linf", "l1"])
def test_one_step_matches_the_hand_derived_perturbation(norm):
    x, y, w = _regression(1)
    model = Recorder(w)
    config = AdvConfig(adv_step_size=0.3, adv_grad_norm=norm)
    loss = input_adversarial_loss(tf.constant(x), tf.constant(y), model, MSE, adv_config=config)
    expected_x = x + 0.3 * geometry.steepest_ascent(_mse_gradient(x, y, w), norm)
    np.testing.assert_allclose(model.calls[-1].numpy(), expected_x, atol=1e-12)
    assert float(loss) == pytest.approx(np.mean((expected_x @ w - y) ** 2), rel=1e-6)  # Keras MSE: float32


def test_caller_tape_and_loss_are_reused_without_a_second_clean_forward():
    x, y, w = _regression(2)
    x = tf.constant(x)
    model, loss_fn = Recorder(w), keras.losses.MeanSquaredError()
    with tf.GradientTape() as tape:
        tape.watch(x)
        predictions = model(x)
    input_adversarial_loss(x, y, model, loss_fn, predictions=predictions, gradient_tape=tape)
    assert len(model.calls) == 2  # the caller's forward and the adversarial one
    input_adversarial_loss(x, y, model, loss_fn)
    assert len(model.calls) == 4  # on its own: a clean forward for the gradient, then the adversarial one


def test_pgd_with_l1_projection_is_exact_and_matches_the_core():
    # NSL raised for L1 projection; here it is the simplex-based projection of hrcore.geometry.
    x, y, w = _regression(3, d=5)
    model = Recorder(w)
    config = AdvConfig(adv_step_size=0.2, adv_grad_norm="l1", pgd_iterations=4, pgd_epsilon=0.3)
    input_adversarial_loss(tf.constant(x), tf.constant(y), model, MSE, adv_config=config)
    expected = x.copy()
    for _ in range(4):
        expected = geometry.attack_step(expected, x, _mse_gradient(expected, y, w), 0.2, 0.3, "l1")
    result = model.calls[-1].numpy()
    np.testing.assert_allclose(result, expected, atol=1e-12)
    assert np.all(np.abs(result - x).sum(axis=1) <= 0.3 + 1e-12)


def test_scalar_clip_bounds_apply_to_dict_features():
    # NSL silently ignored scalar clip_value_min/max when the features were a dict.
    rng = np.random.default_rng(4)
    features = {"a": tf.constant(rng.uniform(0, 1, (4, 2))), "b": tf.constant(rng.uniform(0, 1, (4, 3)))}
    model = Recorder(rng.normal(size=(5, 1)), keys=("a", "b"))
    config = AdvConfig(adv_step_size=5.0, adv_grad_norm="linf", clip_value_min=0.0, clip_value_max=1.0)
    input_adversarial_loss(features, tf.ones((4, 1)), model, MSE, adv_config=config)
    for key in ("a", "b"):
        perturbed = model.calls[-1][key].numpy()
        assert perturbed.min() == 0.0 and perturbed.max() == 1.0  # a 5.0 step hit both bounds, clipped


def test_per_feature_clip_bounds_and_unknown_names():
    rng = np.random.default_rng(5)
    features = {"a": tf.constant(rng.uniform(0, 1, (4, 2))), "b": tf.constant(rng.uniform(0, 1, (4, 3)))}
    model = Recorder(rng.normal(size=(5, 1)), keys=("a", "b"))
    config = AdvConfig(
        adv_step_size=5.0, adv_grad_norm="linf", clip_value_min={"a": 0.0}, clip_value_max={"a": 1.0}
    )
    input_adversarial_loss(features, tf.ones((4, 1)), model, MSE, adv_config=config)
    assert model.calls[-1]["a"].numpy().min() >= 0.0 and model.calls[-1]["a"].numpy().max() <= 1.0
    assert np.abs(model.calls[-1]["b"].numpy() - features["b"].numpy()).max() == pytest.approx(5.0)
    with pytest.raises(ValueError, match=r"do not exist: \['c'\]"):
        input_adversarial_loss(
            features,
            tf.ones((4, 1)),
            model,
            keras.losses.MeanSquaredError(),
            adv_config=AdvConfig(clip_value_min={"c": 0}),
        )
    with pytest.raises(ValueError, match="features are not a dict"):
        input_adversarial_loss(
            tf.ones((4, 5)),
            tf.ones((4, 1)),
            model,
            MSE,
            adv_config=AdvConfig(clip_value_max={"a": 1}),
        )


def test_one_dimensional_sample_weights_weight_each_example_once():
    # NSL broadcast [B] sample weights against [B, 1] losses into a [B, B] matrix.
    x, y, w = _regression(6)
    weights = np.array([0.0, 1.0, 2.0, 0.5, 1.0, 3.0])
    model = Recorder(w)
    config = AdvConfig(adv_step_size=0.1)
    loss = input_adversarial_loss(
        tf.constant(x),
        tf.constant(y),
        model,
        MSE,
        sample_weights=weights,
        adv_config=config,
    )
    adversarial = model.calls[-1].numpy()
    per_example = ((adversarial @ w - y) ** 2)[:, 0]
    assert float(loss) == pytest.approx(np.sum(weights * per_example) / len(weights), rel=1e-6)
    with pytest.raises(ValueError, match="1-D tensor of shape \\[batch_size\\]"):
        input_adversarial_loss(
            tf.constant(x),
            tf.constant(y),
            model,
            MSE,
            sample_weights=weights[:, None],
        )


def test_random_init_with_unknown_batch_size():
    # NSL's random start needed a static batch size; here shapes are dynamic inside tf.function.
    x, y, w = _regression(7, n=8)
    model = Recorder(w)
    config = AdvConfig(
        adv_step_size=0.05, adv_grad_norm="l2", pgd_iterations=2, pgd_epsilon=0.1, random_init=True
    )
    spec = [tf.TensorSpec([None, 3], tf.float64), tf.TensorSpec([None, 1], tf.float64)]
    run = tf.function(
        lambda a, b: input_adversarial_loss(a, b, model, MSE, adv_config=config),
        input_signature=spec,
    )
    for n in (8, 5):
        value = run(x[:n], y[:n])
        assert np.isfinite(float(value))
    eager = [
        input_adversarial_loss(tf.constant(x), tf.constant(y), model, MSE, adv_config=config)
        for _ in range(2)
    ]
    assert float(eager[0]) != float(eager[1])  # a fresh random start each call


def test_only_float_features_are_perturbed_and_l2_is_joint_across_them():
    rng = np.random.default_rng(8)
    features = {
        "a": tf.constant(rng.normal(size=(4, 2))),
        "b": tf.constant(rng.normal(size=(4, 3))),
        "ids": tf.constant(rng.integers(0, 9, (4, 1))),
    }
    model = Recorder(rng.normal(size=(6, 1)), keys=("a", "b", "ids"))
    config = AdvConfig(adv_step_size=0.7, adv_grad_norm="l2")
    input_adversarial_loss(features, tf.zeros((4, 1)), model, MSE, adv_config=config)
    seen = model.calls[-1]
    assert seen["ids"].dtype == tf.int64
    np.testing.assert_array_equal(seen["ids"].numpy(), features["ids"].numpy())
    delta_a = seen["a"].numpy() - features["a"].numpy()
    delta_b = seen["b"].numpy() - features["b"].numpy()
    joint = np.sqrt((delta_a**2).sum(axis=1) + (delta_b**2).sum(axis=1))
    np.testing.assert_allclose(joint, 0.7, rtol=1e-12)
    assert np.all(np.sqrt((delta_a**2).sum(axis=1)) < 0.7)  # not normalised per tensor


def test_list_features_and_hr_loss_over_adversarial_losses():
    rng = np.random.default_rng(9)
    features = [tf.constant(rng.normal(size=(5, 2))), tf.constant(rng.normal(size=(5, 2)))]
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])

    def model(inputs):
        return dense(tf.concat(inputs, axis=1))

    labels = rng.integers(0, 3, 5)
    per_sample = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    hr = HRLoss(per_sample, alpha=0.2, r=0.1)
    value = input_adversarial_loss(features, labels, model, hr, adv_config=AdvConfig(adv_step_size=0.2))
    assert float(value) > float(keras.ops.mean(per_sample(labels, model(features))))


def test_errors():
    x, y, w = _regression(10)
    x = tf.constant(x)
    model, loss_fn = Recorder(w), keras.losses.MeanSquaredError()
    with pytest.raises(ValueError, match="without the gradient_tape"):
        input_adversarial_loss(x, y, model, loss_fn, labeled_loss=loss_fn(y, model(x)))
    with tf.GradientTape() as tape:  # records, but never watched x
        labeled = loss_fn(y, model(x))
    with pytest.raises(ValueError, match=r"gradient_tape.watch\(features\)"):
        input_adversarial_loss(x, y, model, loss_fn, labeled_loss=labeled, gradient_tape=tape)
    with pytest.raises(ValueError, match="no float feature"):
        input_adversarial_loss(tf.ones((3, 2), tf.int32), y, model, loss_fn)
    with pytest.raises(TypeError, match="adv_config must be an hrcore AdvConfig"):
        input_adversarial_loss(x, y, model, loss_fn, adv_config={"adv_step_size": 0.1})


def test_keras_features_take_scalar_or_per_key_bounds_only():
    x, y, w = _regression(0)
    config = AdvConfig(adv_step_size=0.1, clip_value_min=[0.0, 1.0])
    with pytest.raises(TypeError, match="clip_value_min must be None, a number or a dict"):
        input_adversarial_loss(tf.constant(x), tf.constant(y), Recorder(w), MSE, adv_config=config)


def test_adv_config_accepts_nsl_norm_names():
    assert AdvConfig(adv_grad_norm="infinity").adv_grad_norm == "linf"
    assert AdvConfig(adv_grad_norm="L2").adv_grad_norm == "l2"


def _digits(n: int):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))[:n]
    return (x[order] / 16.0).astype("float32"), y[order]


def _classifier(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )


def test_wrapper_step_equals_the_custom_loop_gradient():
    x, y = _digits(64)
    config = AdvConfig(multiplier=0.3, adv_step_size=0.05, adv_grad_norm="linf")
    wrapped_base, manual = _classifier(0), _classifier(0)
    manual.set_weights(wrapped_base.get_weights())
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    wrapper = AdversarialRegularization(wrapped_base, adv_config=config)
    wrapper.compile(keras.optimizers.SGD(0.5), loss=loss_fn)
    wrapper.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)

    features = tf.constant(x)
    with tf.GradientTape() as tape:
        with tf.GradientTape() as tape_x:
            tape_x.watch(features)
            labeled = loss_fn(y, manual(features, training=True))
        adversarial = input_adversarial_loss(
            features, y, manual, loss_fn, adv_config=config, labeled_loss=labeled, gradient_tape=tape_x
        )
        total = labeled + 0.3 * adversarial
    gradients = tape.gradient(total, manual.trainable_variables)
    for variable, gradient in zip(manual.trainable_variables, gradients, strict=True):
        variable.assign_sub(0.5 * gradient)
    for a, b in zip(wrapped_base.get_weights(), manual.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


# Keras's own weight saving calls np.array on TF tensors (a numpy-2 deprecation inside Keras, not hrcore).
@pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
def test_wrapper_fits_plain_x_y_reports_the_adversarial_loss_and_saves(tmp_path):
    # NSL's Keras wrapper failed on Keras 3 and wanted labels inside the feature dict.
    x, y = _digits(600)
    base = _classifier(1)
    wrapper = AdversarialRegularization(
        base, adv_config=AdvConfig(multiplier=0.2, adv_step_size=0.05, adv_grad_norm="linf")
    )
    wrapper.compile(
        keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = wrapper.fit(
        x[:500], y[:500], batch_size=50, epochs=4, verbose=0, sample_weight=np.ones(500)
    ).history
    assert {"loss", "adversarial_loss", "accuracy"} <= set(history)
    assert history["adversarial_loss"][-1] < history["adversarial_loss"][0]
    assert all(a > 0 for a in history["adversarial_loss"])
    results = wrapper.evaluate(x[500:], y[500:], verbose=0, return_dict=True)
    assert results["accuracy"] > 0.7

    base_path = tmp_path / "base.keras"
    base.save(base_path)
    restored_base = keras.models.load_model(base_path)
    np.testing.assert_allclose(
        restored_base.predict(x[500:], verbose=0), base.predict(x[500:], verbose=0), atol=1e-6
    )

    wrapper_path = tmp_path / "wrapper.keras"
    wrapper.save(wrapper_path)
    restored = keras.models.load_model(wrapper_path)
    assert isinstance(restored, AdversarialRegularization)
    assert restored.adv_config == wrapper.adv_config
    np.testing.assert_allclose(
        restored.predict(x[500:], verbose=0), wrapper.predict(x[500:], verbose=0), atol=1e-6
    )


def test_gradient_based_functions_name_the_backend_they_need(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError, match=r"needs Keras's TensorFlow backend.*KERAS_BACKEND=tensorflow"):
        input_adversarial_loss(tf.ones((2, 2)), tf.ones((2, 1)), lambda x: x, MSE)


def test_wrapper_errors():
    with pytest.raises(TypeError, match=r"base_model must be a keras\.Model"):
        AdversarialRegularization(lambda x: x)
    with pytest.raises(TypeError, match="adv_config must be an hrcore AdvConfig"):
        AdversarialRegularization(_classifier(2), adv_config=0.2)
