"""The one owner of tfvq's train and test steps: loss scaling over replicas, metrics, compile."""

import keras
import tensorflow as tf
from keras import ops

from tfvq.utils.policies import dtype_policy_scope


class SelfSupervisedModel(keras.Model):
    """A `keras.Model` that computes its own loss and metrics in `train_step` / `test_step`.

    A subclass sets `self._trackers` (name -> `keras.metrics.Mean`) in `__init__` and
    implements `_step_inputs(data)` (a dataset element to the step's inputs, with clear errors)
    and `_loss_terms(inputs, training)`, returning the scalar loss (the mean over this
    replica's examples) and a dict of values for the trackers: a tensor, or a
    `(value, sample_weight)` pair. Everything else lives here once:

    - the loss is divided by the number of replicas, because gradients are summed over them,
      and scaled by the optimizer under mixed precision;
    - `compile` creates the optimizer's variables before the first step is traced, so that a
      `fit` refused on a bad batch (wrong shape, wrong dtype) leaves the model trainable:
      otherwise the next `fit` fails with "Creating variables on a non-first call to a
      function decorated with tf.function";
    - the logs are rank-1 under `MultiWorkerMirroredStrategy`, as Keras 3.15's `fit` needs;
    - `fit`, `evaluate` and `predict` show their data to `_check_data(x)` first (a subclass
      warns there about what Keras would accept silently);
    - `from_config` rebuilds the constructor arguments named in `_layer_arguments` that the
      config holds as serialized Keras layers (a custom encoder, a quantizer instance), under
      the saved dtype policy: the sublayers take theirs from the global policy when they are
      made, so a model built under `keras.config.set_dtype_policy("mixed_bfloat16")` would
      otherwise load with float32 convolutions;
    - `_added_losses(*layers)` sums what the given layers add with `add_loss` or regularizers.

    Example:
    >>> class Mean(SelfSupervisedModel):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = self.add_weight(shape=(), initializer="zeros")
    ...         self._trackers = {"loss": keras.metrics.Mean(name="loss")}
    ...     def _step_inputs(self, data):
    ...         return keras.ops.convert_to_tensor(data)
    ...     def _loss_terms(self, x, training):
    ...         loss = keras.ops.mean(keras.ops.square(x - self.w))
    ...         return loss, {}
    >>> model = Mean()
    >>> model.compile(optimizer=keras.optimizers.SGD(0.5))
    >>> _ = model.fit(np.full((8,), 2.0, "float32"), epochs=8, batch_size=8, verbose=0)
    >>> round(float(model.w.numpy()), 2)
    2.0
    """

    # Constructor arguments that may be Keras layers, serialized in the config.
    _layer_arguments = ()

    @property
    def metrics(self):
        return list(self._trackers.values())

    def compile(self, optimizer="adam", **kwargs):
        """Configures training; the loss and the metrics are the model's own."""
        for argument in ("loss", "metrics", "weighted_metrics", "loss_weights"):
            if kwargs.get(argument) is not None:
                raise ValueError(
                    f"{type(self).__name__} computes its own loss and metrics "
                    f"({', '.join(self._trackers)}); got {argument}={kwargs[argument]!r}"
                )
        super().compile(optimizer=optimizer, **kwargs)
        self._build_optimizer()

    def compile_from_config(self, config):
        # Keras skips models that override compile() unless they restore it themselves.
        self.compile(**keras.saving.deserialize_keras_object(config))

    def _build_optimizer(self):
        if self.optimizer is not None and self.built and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, *args, **kwargs):
        self._check_data(x)
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        self._check_data(x)
        return super().evaluate(x, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._check_data(x)
        return super().predict(x, *args, **kwargs)

    def _check_data(self, x):
        """Sees what `fit` / `evaluate` / `predict` are given, before Keras reads it."""

    def _added_losses(self, *layers):
        """The sum of the losses `layers` add (weight regularizers, custom `add_loss`), or 0."""
        added = [loss for layer in layers for loss in layer.losses]
        return ops.sum(ops.stack([ops.cast(l, "float32") for l in added])) if added else 0.0

    def _step_inputs(self, data):
        raise NotImplementedError

    def _loss_terms(self, inputs, training):
        raise NotImplementedError

    def train_step(self, data):
        inputs = self._step_inputs(data)
        with tf.GradientTape() as tape:
            loss, terms = self._loss_terms(inputs, training=True)
            # Gradients are summed over replicas: scale each replica's mean to the global mean.
            scaled = self.optimizer.scale_loss(
                loss / tf.distribute.get_strategy().num_replicas_in_sync
            )
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(gradients, variables) if g is not None]
        )
        return self._update_metrics(loss, terms)

    def test_step(self, data):
        loss, terms = self._loss_terms(self._step_inputs(data), training=False)
        return self._update_metrics(loss, terms)

    def _update_metrics(self, loss, terms):
        values = {"loss": loss, **terms}
        for name, tracker in self._trackers.items():
            value = values[name]
            if isinstance(value, tuple):
                tracker.update_state(value[0], sample_weight=value[1])
            else:
                tracker.update_state(value)
        results = {name: tracker.result() for name, tracker in self._trackers.items()}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3.15's fit under MultiWorkerMirroredStrategy needs rank-1 logs.
            results = {name: ops.reshape(value, (1,)) for name, value in results.items()}
        return results

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in cls._layer_arguments:
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        with dtype_policy_scope(config.get("dtype")):
            return cls(**config)
