"""Host calls: run a numpy function on per-sample losses from inside any Keras backend's traced code.

Computes y = f(x) on the host with the result held constant (no gradient flows through the call): eagerly
where the tensors are concrete, through ``tf.numpy_function`` in TensorFlow graphs, through
``jax.pure_callback`` under JAX tracing, and through a detached numpy copy on the PyTorch backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

HostFunction = Callable[..., np.ndarray]

JIT_MESSAGE = (
    "{what} computes the HR weights on the host (tf.numpy_function), which XLA cannot compile, but this "
    "TensorFlow graph is being compiled with jit_compile=True. Pass jit_compile=False to model.compile() "
    '(Keras\'s default jit_compile="auto" turns XLA on whenever a GPU is visible, so pass False there too) '
    "or drop jit_compile=True from your tf.function."
)


def in_xla_context() -> bool:
    """Whether TensorFlow is tracing the current code for XLA compilation.

    Checks the default graph and its outer graphs for an XLA control-flow context, which
    ``tf.function(jit_compile=True)`` (and Keras's ``jit_compile=True``) installs while tracing.

    Returns:
        True inside an XLA-compiled ``tf.function``; False eagerly, in plain graphs, or where TensorFlow's
        internals differ from the ones this check knows.
    """
    import tensorflow as tf  # only reached on the TensorFlow backend, where Keras has imported it already

    if tf.executing_eagerly():
        return False
    try:
        # No public API answers this; without it the user would get XLA's "unsupported op PyFunc" trace
        # instead of an explanation.
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - a TensorFlow that moved the module
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


def host_call(
    function: HostFunction,
    inputs: Sequence[Any],
    length: int | None,
    dtype: str,
    what: str,
) -> Any:
    """Evaluate a numpy function of 1-D tensors on the host, as a constant tensor of the active backend.

    Returns f(x₁, ..., x_k) cast to ``dtype``, with stop-gradient semantics.

    Args:
        function: Takes float64/bool numpy arrays, returns a 1-D float64 array of ``length`` entries.
        inputs: Backend tensors (the first one is the per-sample losses).
        length: The result's length when known statically (needed under JAX tracing), else None.
        dtype: The result's dtype name (the losses' dtype).
        what: The public name making the call, for error messages.

    Returns:
        A tensor of shape (length,).

    Raises:
        ValueError: Inside an XLA-compiled TensorFlow graph, which cannot host the call.
    """
    inputs = [keras.ops.stop_gradient(tensor) for tensor in inputs]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_call(function, inputs, length, dtype, what)
    if backend == "jax":
        return _jax_call(function, inputs, length, dtype)
    # PyTorch (eager, or graph-broken under torch.compile), numpy and any other eager backend.
    result = function(*(keras.ops.convert_to_numpy(tensor) for tensor in inputs))
    return keras.ops.convert_to_tensor(result.astype(dtype))


def _tensorflow_call(
    function: HostFunction, inputs: list[Any], length: int | None, dtype: str, what: str
) -> Any:
    # Imported here, like jax below: the active backend is already loaded; other backends never pay for it.
    import tensorflow as tf

    if tf.executing_eagerly():
        # Calling directly keeps the core's exceptions (and their messages) as they are.
        return tf.constant(function(*(tensor.numpy() for tensor in inputs)).astype(dtype))
    if in_xla_context():
        raise ValueError(JIT_MESSAGE.format(what=what))
    result = tf.numpy_function(
        lambda *arrays: function(*arrays).astype(dtype), inputs, Tout=tf.as_dtype(dtype), stateful=True
    )
    result.set_shape((length,))
    return result


def _jax_call(function: HostFunction, inputs: list[Any], length: int | None, dtype: str) -> Any:
    # Lazily: the user already runs JAX when Keras's JAX backend is active, and nobody else pays the import.
    import jax

    if not any(isinstance(tensor, jax.core.Tracer) for tensor in inputs):
        return jax.numpy.asarray(function(*(np.asarray(tensor) for tensor in inputs)).astype(dtype))
    shape = jax.ShapeDtypeStruct((length,), np.dtype(dtype))
    return jax.pure_callback(
        lambda *arrays: function(*(np.asarray(array) for array in arrays)).astype(dtype),
        shape,
        *inputs,
        vmap_method="sequential",
    )


def require_tensorflow_backend(what: str) -> None:
    """Refuse to run a gradient-based function on a Keras backend other than TensorFlow.

    Raises:
        RuntimeError: When Keras runs on JAX, PyTorch or another backend.
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{what} differentiates with tf.GradientTape and needs Keras's TensorFlow backend, but Keras "
            f"runs on {backend!r}: set KERAS_BACKEND=tensorflow before importing keras (HRLoss and "
            "hr_weights work on every backend), or use hrcore.adapters.jax / hrcore.adapters.torch."
        )
