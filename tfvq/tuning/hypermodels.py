"""keras-tuner `HyperModel`s for AE, VAE and VQ-VAE, with default search spaces.

Each hypermodel builds a compiled tfvq model from a `HyperParameters` draw. Its search space is
a default per model, narrowed or extended by the user's `space` (a plain dict or a
`keras_tuner.HyperParameters`), and checked against the input shape before any trial runs:
stage counts whose `2**stages` does not divide the image size are left out of the default space
and refused with a ValueError when a user asks for them.

Every trial also records its cost: `fit` adds `parameters` (the model's weight count) and
`step_time` (median seconds per training step) to each epoch's logs, so keras-tuner stores them
with the trial beside the objective.
"""

import inspect
import time

import keras
import keras_tuner as kt
import numpy as np

from tfvq.models import AE, VAE, VQVAE
from tfvq.tuning import space as space_lib

__all__ = ["AEHyperModel", "TrialCost", "VAEHyperModel", "VQVAEHyperModel"]

Choice = kt.engine.hyperparameters.Choice
Fixed = kt.engine.hyperparameters.Fixed
Float = kt.engine.hyperparameters.Float

# Stage counts tried by default, kept only where 2**stages divides the image size.
_DEFAULT_STAGES = (1, 2, 3)
# Model arguments that are not hyperparameters: tensors, layers, or what the objective means.
_NOT_TUNABLE = ("input_shape", "encoder", "decoder", "quantizer_options", "data_variance",
                "data_range", "reconstruction_loss", "seed", "kwargs")


class TrialCost(keras.callbacks.Callback):
    """Adds `parameters` and `step_time` to each epoch's logs, for a search to trade cost.

    `step_time` is the median wall time of the epoch's training steps in seconds (the first
    step of a `fit`, which traces and compiles, is left out when the epoch has others).
    Placed before `History`, the values reach the history and so the keras-tuner trial.

    Example:
        >>> model = tfvq.AE((16, 16, 1), latent_channels=4, hidden_channels=8,
        ...                 residual_channels=4)
        >>> model.compile(optimizer="adam")
        >>> images = np.random.default_rng(0).uniform(0, 1, (8, 16, 16, 1)).astype("float32")
        >>> history = model.fit(images, epochs=2, batch_size=2, callbacks=[TrialCost()],
        ...                     verbose=0)
        >>> len(history.history["step_time"])  # seconds per step, one value per epoch
        2
        >>> history.history["parameters"][0] == model.count_params()
        True
    """

    def on_train_begin(self, logs=None):
        self._first = True

    def on_epoch_begin(self, epoch, logs=None):
        self._times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        elapsed = time.perf_counter() - self._start
        if self._first:
            self._first = False
            self._compile_step = elapsed
            return
        self._times.append(elapsed)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        times = self._times or [getattr(self, "_compile_step", float("nan"))]
        logs["step_time"] = float(np.median(times))
        logs["parameters"] = float(self.model.count_params())


class _ImageHyperModel(kt.HyperModel):
    """What the three hypermodels share: space assembly and checks, build, compile, fit."""

    model_class = None

    def __init__(self, input_shape, space=None, jit_compile="auto", name=None, tunable=True,
                 **model_kwargs):
        super().__init__(name=name, tunable=tunable)
        owner = type(self).__name__
        self.input_shape = tuple(int(d) for d in input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(
                f"{owner} expects input_shape (height, width, channels); got {input_shape!r}"
            )
        self.jit_compile = jit_compile
        self.model_kwargs = dict(model_kwargs)
        arguments = set(inspect.signature(self.model_class.__init__).parameters) - {"self"}
        unknown = set(self.model_kwargs) - arguments
        if unknown:
            raise ValueError(
                f"{owner}: {sorted(unknown)} are not arguments of {self.model_class.__name__}; "
                f"expected some of {sorted(arguments)}"
            )
        defaults = self.default_space()
        user = space_lib.space_from(space, owner)
        tunable_names = set(defaults) | (arguments - set(_NOT_TUNABLE))
        for name in user:
            if name in self.model_kwargs:
                raise ValueError(
                    f"{owner}: {name!r} is given both in space and as a model argument; give it "
                    "once (in space to tune it, as an argument to fix it)"
                )
            if name == "reconstruction_loss":
                raise ValueError(
                    f"{owner}: reconstruction_loss cannot be searched (it changes what "
                    "val_reconstruction_loss measures); pass it as a model argument, e.g. "
                    f"{owner}(input_shape, reconstruction_loss=...)"
                )
            if name not in tunable_names:
                raise ValueError(
                    f"{owner}: space has unknown hyperparameter {name!r}; expected one of the "
                    f"default space {sorted(defaults)} or another {self.model_class.__name__} "
                    f"argument {sorted(tunable_names - set(defaults))}"
                )
        for name in set(self.model_kwargs) & set(defaults):
            defaults[name] = Fixed(name, self.model_kwargs.pop(name))
        self.space = {**defaults, **user}
        space_lib.check_space(self.space, self.input_shape, owner)
        # Builds once with the default values, so that a bad fixed model argument fails here.
        self.model_class(self.input_shape, **self._model_arguments(
            {name: hp.default if not isinstance(hp, Fixed) else hp.value
             for name, hp in self.space.items()}))

    # Search space ------------------------------------------------------------------------

    def _common_space(self):
        stages = space_lib.valid_stages(self.input_shape, _DEFAULT_STAGES) or [0]
        default_stages = 2 if 2 in stages else stages[-1]
        return {
            "hidden_channels": Choice("hidden_channels", [32, 64, 128], default=64),
            "residual_channels": Choice("residual_channels", [16, 32, 64], default=32),
            "num_residual_layers": Choice("num_residual_layers", [1, 2], default=1),
            "downsample_stages": (Choice("downsample_stages", stages, default=default_stages)
                                  if len(stages) > 1 else Fixed("downsample_stages", stages[0])),
            "downsample": Choice("downsample", ["stride", "max_pool", "avg_pool", "none"],
                                 default="stride"),
            "learning_rate": Float("learning_rate", 1e-4, 3e-3, sampling="log", default=1e-3),
        }

    def default_space(self):
        """The default `{name: HyperParameter}` of this model (before the user's changes)."""
        raise NotImplementedError

    def reported_metrics(self):
        """Names of the metrics the built models report (without the `val_` prefix)."""
        names = list(self.model_class.metric_names)
        if self.model_kwargs.get("data_variance") is not None:
            names.append("normalized_mse")
        return tuple(names)

    def declare_hyperparameters(self, hp):
        # Called by the tuner on the oracle's space, which holds the user's `hyperparameters=`:
        # check what they override, then register the rest of ours.
        effective = dict(self.space)
        for registered in hp.space:
            if registered.name in effective:
                effective[registered.name] = registered
        space_lib.check_space(effective, self.input_shape,
                              f"{type(self).__name__} (with the tuner's hyperparameters)")
        hp.merge(list(self.space.values()), overwrite=False)

    # Build and fit -----------------------------------------------------------------------

    def _model_arguments(self, values):
        arguments = {name: value for name, value in values.items() if name != "learning_rate"}
        return {**self.model_kwargs, **arguments}

    def build(self, hp):
        values = {}
        for name, param in self.space.items():
            hp.merge([param], overwrite=False)
            values[name] = hp.get(name)
        model = self.model_class(self.input_shape, **self._model_arguments(values))
        model.compile(optimizer=keras.optimizers.Adam(values["learning_rate"]),
                      jit_compile=self.jit_compile)
        # Built now, so that Hyperband's next round loads the Adam moments with the weights.
        model.optimizer.build(model.trainable_variables)
        return model

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        # First, so that History (appended last by Keras) and the tuner see the cost.
        callbacks = [TrialCost(), *(callbacks or [])]
        return model.fit(*args, callbacks=callbacks, **kwargs)


class AEHyperModel(_ImageHyperModel):
    """Search space over `tfvq.AE`: conv stacks, flat latent size and learning rate.

    Default space: `hidden_channels` [32, 64, 128], `residual_channels` [16, 32, 64],
    `num_residual_layers` [1, 2], `downsample_stages` (those of 1-3 whose `2**stages` divides
    the image size), `downsample` [stride, max_pool, avg_pool, none], `latent_dim`
    [16, 32, 64, 128], `learning_rate` 1e-4 to 3e-3 (log). Models are compiled with Adam.

    Args:
        input_shape: (height, width, channels) of the images.
        space: changes to the default space: a dict of name -> a value (fixed), a list
            (choice), a range dict (`min_value`, `max_value`, `step`, `sampling`, `default`) or
            a keras-tuner `HyperParameter`; or a `keras_tuner.HyperParameters`. Names outside
            the default space may be other `AE` arguments (e.g. `latent_channels`).
        jit_compile: passed to `compile`.
        name, tunable: as in `keras_tuner.HyperModel`.
        **model_kwargs: fixed `AE` arguments (e.g. `reconstruction_loss`, `data_variance`).

    Example:
        >>> import keras_tuner
        >>> hm = AEHyperModel((28, 28, 1), space={"latent_dim": [8, 16], "downsample": "stride"})
        >>> model = hm.build(keras_tuner.HyperParameters())    # every value at its default
        >>> type(model).__name__
        'AE'
    """

    model_class = AE

    def default_space(self):
        return {**self._common_space(),
                "latent_dim": Choice("latent_dim", [16, 32, 64, 128], default=32)}


class VAEHyperModel(_ImageHyperModel):
    """Search space over `tfvq.VAE`: conv stacks, latent size, KL weight `beta`, learning rate.

    Default space: as `AEHyperModel` for the conv stacks and learning rate, `latent_dim`
    [2, 8, 16, 32, 64], `beta` 0.1 to 4 (log, default 1). With `reconstruction_loss="logistic"`
    the models report `bits_per_dim`, so it can be the objective.

    Args:
        input_shape, space, jit_compile, name, tunable: see `AEHyperModel`.
        **model_kwargs: fixed `VAE` arguments (e.g. `reconstruction_loss="logistic"`, `seed`).

    Example:
        >>> hm = VAEHyperModel((28, 28, 1), space={"beta": 1.0}, reconstruction_loss="logistic")
        >>> "bits_per_dim" in hm.reported_metrics()
        True
    """

    model_class = VAE

    def default_space(self):
        return {**self._common_space(),
                "latent_dim": Choice("latent_dim", [2, 8, 16, 32, 64], default=16),
                "beta": Float("beta", 0.1, 4.0, sampling="log", default=1.0)}

    def reported_metrics(self):
        names = super().reported_metrics()
        if self.model_kwargs.get("reconstruction_loss", "bce") == "logistic":
            names += ("bits_per_dim",)
        return names


class VQVAEHyperModel(_ImageHyperModel):
    """Search space over `tfvq.VQVAE`: conv stacks, codebook, quantizer, commitment cost, rate.

    Default space: as `AEHyperModel` for the conv stacks and learning rate, `num_embeddings`
    [64, 128, 256, 512], `embedding_dim` [16, 32, 64], `quantizer` [vq, ema],
    `commitment_cost` 0.1 to 1.0 (default 0.25).

    Args:
        input_shape, space, jit_compile, name, tunable: see `AEHyperModel`.
        **model_kwargs: fixed `VQVAE` arguments (e.g. `data_variance`, `quantizer_options`).

    Example:
        >>> import keras_tuner
        >>> hm = VQVAEHyperModel((28, 28, 1),
        ...                      space={"quantizer": "ema", "num_embeddings": [32, 64]})
        >>> objective = tfvq.tuning.make_objective("reconstruction_loss")   # val_..., "min"
        >>> tuner = keras_tuner.RandomSearch(hm, objective=objective, max_trials=3,
        ...                                  directory="runs/tune")
        >>> tuner.oracle.hyperparameters.get("num_embeddings")   # the default: the first value
        32
    """

    model_class = VQVAE

    def default_space(self):
        return {**self._common_space(),
                "num_embeddings": Choice("num_embeddings", [64, 128, 256, 512], default=128),
                "embedding_dim": Choice("embedding_dim", [16, 32, 64], default=32),
                "quantizer": Choice("quantizer", ["vq", "ema"], default="ema"),
                "commitment_cost": Float("commitment_cost", 0.1, 1.0, default=0.25)}
