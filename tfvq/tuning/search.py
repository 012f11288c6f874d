"""`search`: a thin helper over keras-tuner's Hyperband, RandomSearch and BayesianOptimization.

Resuming: a search run again with the same `directory` and `project_name` and `overwrite=False`
reloads the oracle; finished trials are kept and not run again, and a trial that was running
when the search was interrupted is run again from its start.

Distributed search: keras-tuner's own chief/worker mode. Start the same program on every
machine with `KERASTUNER_TUNER_ID` ("chief" on one, a distinct "tuner0", "tuner1", ... on each
worker), `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` (the chief's address) set; the
chief serves the oracle over gRPC and the workers run the trials, sharing one `directory`.
"""

import os

import keras_tuner as kt
from absl import logging

from tfvq.tuning.hypermodels import AEHyperModel, VAEHyperModel, VQVAEHyperModel
from tfvq.utils.checks import check_int

__all__ = ["HYPERMODELS", "OBJECTIVES", "TUNERS", "make_objective", "make_tuner", "role", "search"]

HYPERMODELS = {"ae": AEHyperModel, "vae": VAEHyperModel, "vqvae": VQVAEHyperModel}
TUNERS = {"hyperband": kt.Hyperband, "random": kt.RandomSearch,
          "bayesian": kt.BayesianOptimization}
# Short objective names -> (validation metric, direction).
OBJECTIVES = {
    "reconstruction_loss": ("val_reconstruction_loss", "min"),
    "psnr": ("val_psnr", "max"),
    "bits_per_dim": ("val_bits_per_dim", "min"),
    "mse": ("val_mse", "min"),
    "normalized_mse": ("val_normalized_mse", "min"),
    "loss": ("val_loss", "min"),
}


def role():
    """This process's part in a keras-tuner search: "chief", "worker" or "standalone"."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "standalone"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def make_objective(objective="reconstruction_loss", hypermodel=None):
    """A `keras_tuner.Objective` on a validation metric the hypermodel's models report.

    Args:
        objective: "reconstruction_loss", "psnr" (maximised), "bits_per_dim" (VAE with
            `reconstruction_loss="logistic"`), "mse", "normalized_mse", "loss", the same names
            with a "val_" prefix, or a `keras_tuner.Objective`.
        hypermodel: if given, the metric must be one its models report.

    Returns:
        A `keras_tuner.Objective`.

    Example:
        >>> objective = make_objective("psnr")
        >>> objective.name, objective.direction
        ('val_psnr', 'max')
    """
    if isinstance(objective, kt.Objective):
        name, result = objective.name, objective
    else:
        key = objective[4:] if isinstance(objective, str) and objective.startswith("val_") else objective
        if key not in OBJECTIVES:
            raise ValueError(
                f"objective must be one of {sorted(OBJECTIVES)} (optionally with a 'val_' "
                f"prefix) or a keras_tuner.Objective; got {objective!r}"
            )
        name, direction = OBJECTIVES[key]
        result = kt.Objective(name, direction)
    if not name.startswith("val_"):
        raise ValueError(
            f"objective must be a validation metric (a name starting with 'val_'); got {name!r}"
        )
    if hypermodel is not None and name[4:] not in hypermodel.reported_metrics():
        hint = (" (bits_per_dim is reported by the VAE with reconstruction_loss='logistic')"
                if name == "val_bits_per_dim" else "")
        raise ValueError(
            f"objective={name!r} is not a metric of {type(hypermodel).__name__}'s models; "
            f"expected one of {['val_' + m for m in hypermodel.reported_metrics()]}{hint}"
        )
    return result


def _hypermodel(model, input_shape, space, model_kwargs, objective):
    if isinstance(model, kt.HyperModel):
        if space is not None or model_kwargs:
            raise ValueError(
                "space and model_kwargs are for a model given by name; got a HyperModel "
                f"{type(model).__name__} together with space={space!r}, model_kwargs={model_kwargs!r}"
            )
        return model
    if model not in HYPERMODELS:
        raise ValueError(f"model must be one of {sorted(HYPERMODELS)} or a HyperModel; got {model!r}")
    if input_shape is None:
        raise ValueError(f"model={model!r} needs input_shape (height, width, channels); got None")
    model_kwargs = dict(model_kwargs or {})
    key = objective[4:] if isinstance(objective, str) and objective.startswith("val_") else objective
    if model == "vae" and key == "bits_per_dim":
        # bits/dim is only an honest bound under the discretized logistic likelihood.
        model_kwargs.setdefault("reconstruction_loss", "logistic")
    return HYPERMODELS[model](input_shape, space=space, **model_kwargs)


def make_tuner(model="vqvae", tuner="hyperband", *, input_shape=None, space=None,
               hyperparameters=None, objective="reconstruction_loss", max_trials=None,
               max_epochs=5, directory="tuning", project_name=None, overwrite=False,
               distribution_strategy=None, seed=None, model_kwargs=None, **tuner_kwargs):
    """A keras-tuner tuner over one of the tfvq hypermodels, ready for `tuner.search`.

    Args:
        model: "ae", "vae", "vqvae", or a `keras_tuner.HyperModel`.
        tuner: "hyperband", "random" or "bayesian".
        input_shape: (height, width, channels); needed when `model` is a name.
        space: changes to the hypermodel's default space (see `AEHyperModel`).
        hyperparameters: a `keras_tuner.HyperParameters` given to the tuner (overrides the
            space; checked against `input_shape` as well).
        objective: see `make_objective`.
        max_trials: most trials to run; required for "random" and "bayesian" (default 10
            there); for "hyperband" it caps the schedule (None: the full schedule).
        max_epochs: epochs of a trial ("random", "bayesian") or the most epochs of one model
            ("hyperband").
        directory, project_name: where trials are kept (`directory/project_name`); the
            project name defaults to "{model}_{tuner}".
        overwrite: start over instead of resuming. Ignored (False) on distributed workers,
            which must not delete the chief's project.
        distribution_strategy: a `tf.distribute` strategy each trial trains under (e.g.
            `MirroredStrategy` over several GPUs).
        seed: seed of the oracle.
        model_kwargs: fixed model arguments, for a model given by name.
        **tuner_kwargs: other keras-tuner arguments (`factor`, `executions_per_trial`, ...).

    Returns:
        A `keras_tuner.Tuner`.

    Example:
        >>> tuner = make_tuner("vqvae", "random", input_shape=(28, 28, 1), max_trials=3,
        ...                    directory="runs/tune")
        >>> tuner.search_space_summary()
        Search space summary
        Default search space size: 10
        hidden_channels (Choice)
        ...
    """
    if tuner not in TUNERS:
        raise ValueError(f"tuner must be one of {sorted(TUNERS)}; got {tuner!r}")
    if max_trials is not None:
        check_int("make_tuner", "max_trials", max_trials)
    check_int("make_tuner", "max_epochs", max_epochs)
    hypermodel = _hypermodel(model, input_shape, space, model_kwargs, objective)
    kt_objective = make_objective(objective, hypermodel)
    if role() == "worker" and overwrite:
        logging.warning("overwrite=True ignored on a distributed worker: only the chief may.")
        overwrite = False
    name = model if isinstance(model, str) else type(model).__name__.lower()
    kwargs = dict(hypermodel=hypermodel, objective=kt_objective, hyperparameters=hyperparameters,
                  seed=seed, directory=directory, project_name=project_name or f"{name}_{tuner}",
                  overwrite=overwrite, distribution_strategy=distribution_strategy, **tuner_kwargs)
    if tuner == "hyperband":
        result = kt.Hyperband(max_epochs=max_epochs, **kwargs)
        # Hyperband has no trial budget of its own; the oracle's generic cap stops it early.
        result.oracle.max_trials = max_trials
    else:
        result = TUNERS[tuner](max_trials=max_trials or 10, **kwargs)
    result.max_epochs = max_epochs
    return result


def search(model="vqvae", train_data=None, validation_data=None, *, tuner="hyperband",
           input_shape=None, steps_per_epoch=None, validation_steps=None, callbacks=None,
           verbose=1, **make_tuner_kwargs):
    """Runs (or resumes) an architecture search and returns the tuner.

    Each trial builds a model from the search space, trains it with `fit` for `max_epochs`
    (Hyperband: its schedule's epochs) and is scored on the objective over `validation_data`;
    keras-tuner stores the trial with the epoch's `parameters` and `step_time` beside it.

    Args:
        model: "ae", "vae", "vqvae", or a `keras_tuner.HyperModel`.
        train_data: a `tf.data.Dataset` of images (repeated, when `steps_per_epoch` is given).
        validation_data: a dataset of images the objective is measured on.
        tuner: "hyperband", "random" or "bayesian".
        input_shape: (height, width, channels); by default read from `train_data`.
        steps_per_epoch, validation_steps: passed to `fit`.
        callbacks: extra Keras callbacks of every trial (deep-copied by keras-tuner).
        verbose: keras-tuner and `fit` verbosity.
        **make_tuner_kwargs: see `make_tuner` (`space`, `objective`, `max_trials`,
            `max_epochs`, `directory`, `overwrite`, `distribution_strategy`, ...).

    Returns:
        The `keras_tuner.Tuner`, after the search. On a distributed worker, the search ends
        when the chief has no trial left to hand out.

    Example:
        >>> images = np.random.default_rng(0).uniform(0, 1, (16, 16, 16, 1)).astype("float32")
        >>> train = tf.data.Dataset.from_tensor_slices(images).batch(8).repeat()
        >>> test = tf.data.Dataset.from_tensor_slices(images).batch(8)
        >>> tiny = {"hidden_channels": 8, "residual_channels": [4, 8], "num_residual_layers": 1,
        ...         "num_embeddings": 8, "embedding_dim": 4}
        >>> tuner = tfvq.tuning.search("vqvae", train, test, tuner="random", max_trials=1,
        ...                            max_epochs=1, steps_per_epoch=2, space=tiny,
        ...                            directory="runs/tune", verbose=0)
        >>> best_hp = tuner.get_best_hyperparameters()[0]
        >>> model = tuner.hypermodel.build(best_hp)   # to retrain the best configuration
    """
    if train_data is None or validation_data is None:
        raise ValueError(
            "search needs train_data and validation_data (the objective is a validation "
            f"metric); got train_data={train_data!r}, validation_data={validation_data!r}"
        )
    if input_shape is None and not isinstance(model, kt.HyperModel):
        spec = train_data.element_spec
        spec = spec[0] if isinstance(spec, tuple) else spec
        input_shape = tuple(spec.shape[1:]) if spec.shape.rank == 4 else tuple(spec.shape)
        if len(input_shape) != 3 or None in input_shape:
            raise ValueError(
                "search could not read input_shape from train_data (element shape "
                f"{spec.shape}); pass input_shape=(height, width, channels)"
            )
    result = make_tuner(model, tuner, input_shape=input_shape, **make_tuner_kwargs)
    result.search(train_data, validation_data=validation_data, epochs=result.max_epochs,
                  steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                  callbacks=list(callbacks or []), verbose=verbose)
    return result
