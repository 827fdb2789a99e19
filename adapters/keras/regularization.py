"""A Keras 3 model that trains its base model with adversarial regularisation through plain ``fit(x, y)``.

Minimises L(x, y) + m·L(x_adv, y) per batch, L the compiled loss (plus the model's regularisation losses on
the clean term) and x_adv from ``input_adversarial_loss`` with the wrapper's ``AdvConfig``.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from .host import require_tensorflow_backend
from .input_adversarial import AdvConfig, input_adversarial_loss


@keras.saving.register_keras_serializable(package="hrcore")
class AdversarialRegularization(keras.Model):
    """Adversarially regularised training of ``base_model`` with ``compile``/``fit``/``evaluate`` as usual.

    Each training step minimises L(y, f(x)) + multiplier·L(y, f(x_adv)) with x_adv the perturbation of
    ``adv_config`` (held constant); the unweighted adversarial loss is reported as the metric
    ``adversarial_loss`` and the total as ``loss``. Evaluation and prediction run the base model on clean
    inputs. Labels go in ``y`` (no labels-inside-the-feature-dict convention); dict/list inputs are passed to
    the base model unchanged, and only their float tensors are perturbed. Save ``base_model`` for deployment
    (or the wrapper itself: both are serialisable).

    Args:
        base_model: The Keras model to train.
        adv_config: ``AdvConfig`` (or its dict); None for the defaults.
        **kwargs: Passed to ``keras.Model`` (e.g. ``name``).

    Raises:
        TypeError: For a base model that is not a Keras model, or a bad ``adv_config``.
    """

    def __init__(
        self, base_model: keras.Model, adv_config: AdvConfig | dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(base_model, keras.Model):
            raise TypeError(f"base_model must be a keras.Model, got {type(base_model).__name__}.")
        if isinstance(adv_config, dict):
            adv_config = AdvConfig(**adv_config)
        if adv_config is not None and not isinstance(adv_config, AdvConfig):
            raise TypeError(f"adv_config must be an hrcore AdvConfig, got {type(adv_config).__name__}.")
        self.base_model = base_model
        self.adv_config = AdvConfig() if adv_config is None else adv_config
        self.adversarial_loss_tracker = keras.metrics.Mean(name="adversarial_loss")

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """The base model's output f(x)."""
        return self.base_model(inputs, training=training)

    def _adversarial_term(self, y: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        # The compiled loss alone: weight regularisers do not depend on the inputs and are counted once,
        # in the clean term.
        if self._compile_loss is None:
            raise ValueError("AdversarialRegularization needs a loss: call compile(loss=...) before fit().")
        return self._compile_loss(y, y_pred, sample_weight)

    def train_step(self, data: Any) -> dict[str, Any]:
        """One step on L(x) + m·L(x_adv); the clean forward pass also gives the input gradient."""
        require_tensorflow_backend("AdversarialRegularization")
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        floats = [leaf for leaf in tf.nest.flatten(x) if tf.is_tensor(leaf) and leaf.dtype.is_floating]
        with tf.GradientTape() as tape:
            with tf.GradientTape(watch_accessed_variables=False) as input_tape:
                input_tape.watch(floats)
                y_pred = self(x, training=True)
                loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            adversarial = input_adversarial_loss(
                x,
                y,
                self.base_model,
                self._adversarial_term,
                sample_weights=sample_weight,
                adv_config=self.adv_config,
                predictions=y_pred,
                labeled_loss=loss,
                gradient_tape=input_tape,
                model_kwargs={"training": True},
            )
            total = loss + self.adv_config.multiplier * adversarial
            self._loss_tracker.update_state(total, sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
            scaled = self.optimizer.scale_loss(total)
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights, strict=True))
        self.adversarial_loss_tracker.update_state(adversarial)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self) -> dict[str, Any]:
        """The base model (serialised) and the adversarial configuration."""
        config = super().get_config()
        config.update(
            base_model=keras.saving.serialize_keras_object(self.base_model),
            adv_config=self.adv_config.get_config(),
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> AdversarialRegularization:
        """Rebuild from ``get_config``'s output."""
        config = dict(config)
        base_model = keras.saving.deserialize_keras_object(
            config.pop("base_model"), custom_objects=custom_objects
        )
        return cls(base_model, **config)
