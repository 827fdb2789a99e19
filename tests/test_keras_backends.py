"""HRLoss and hr_weights on Keras's JAX and PyTorch backends, each in a fresh process (fixed at import)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from frameworks import require

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    import hrcore
    from hrcore.adapters.keras import HRLoss, hr_weights

    assert "tensorflow" not in sys.modules, "the adapter imported TensorFlow on a non-TensorFlow backend"

    backend = keras.backend.backend()
    assert backend == BACKEND, backend
    rng = np.random.default_rng(0)
    values = rng.lognormal(size=12).astype("float32")
    expected = hrcore.solve(values, alpha=0.1, r=0.2)

    # Parity: the weights, and the loss's gradient w.r.t. the per-sample losses, are the core's weights.
    loss = HRLoss(lambda y_true, y_pred: y_pred, alpha=0.1, r=0.2)
    weights = keras.ops.convert_to_numpy(hr_weights(keras.ops.convert_to_tensor(values), alpha=0.1, r=0.2))
    np.testing.assert_allclose(weights, expected.weights, atol=1e-6)
    if backend == "jax":
        import jax
        value, grad = jax.jit(jax.value_and_grad(lambda v: loss(None, v)))(values)
    else:
        import torch
        ell = torch.tensor(values, requires_grad=True)
        value = loss(None, ell)
        value.backward()
        grad = ell.grad
    np.testing.assert_allclose(float(value), expected.value, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grad), expected.weights, atol=1e-6)

    # compile/fit/evaluate; a changed alpha reaches the already-compiled test step.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    base = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    hr = HRLoss(base, alpha=0.05, r=0.1)
    model.compile(keras.optimizers.SGD(0.1), loss=hr)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history["loss"]
    assert history[-1] < history[0], history
    per_sample = keras.ops.convert_to_numpy(base(y, model.predict(x, verbose=0))).astype(np.float64)
    for alpha in (0.05, 0.3):
        hr.alpha = alpha
        got = model.evaluate(x, y, batch_size=64, verbose=0)
        np.testing.assert_allclose(got, hrcore.solve(per_sample, alpha=alpha, r=0.1).value, rtol=1e-5)

    print("BACKEND-OK")
    """
)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_hr_loss_on_keras_backend(backend):
    require(backend)
    require("keras")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="1")
    completed = subprocess.run(
        [sys.executable, "-c", f"BACKEND = {backend!r}\n{SCRIPT}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0 and "BACKEND-OK" in completed.stdout, completed.stderr[-4000:]
