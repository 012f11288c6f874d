"""Searches AE / VAE / VQ-VAE architectures with keras-tuner, then retrains and saves the best.

    python examples/tune.py --model=vqvae --tuner=hyperband --max_epochs=3 --directory=runs/tune

Writes into --directory: the keras-tuner project (`{model}_{tuner}/`, one folder per trial),
best_hyperparameters.json, trials.csv (one row per trial: hyperparameters, objective,
parameters, step time), search.png (objective against parameter count, best starred),
best_model.keras (the best configuration retrained from scratch) and metrics.json. The search
trains on the train split less its last --validation_examples images, which the objective is
measured on; the retrained model is evaluated on the test split.

Run it again with the same --directory after an interruption and the search resumes: finished
trials are kept, the interrupted one runs again. For a search over several machines, start it
on each with KERASTUNER_TUNER_ID ("chief" on one, "tuner0", "tuner1", ... on the others),
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set, and a --directory they all share.
`search(config, workdir)` is the whole job, for tests and notebooks.

The defaults (a Hyperband over 6 trials of at most 3 epochs of 300 steps on MNIST, with widths
kept small by --space) take about ten minutes on a 2-core CPU.
"""

import dataclasses
import json
import os
import time

from absl import app, flags, logging

import common_flags


@dataclasses.dataclass
class Config:
    """The search's settings; every field is also a command-line flag of the same name."""

    model: str = "vqvae"
    tuner: str = "hyperband"
    max_trials: int = 6
    max_epochs: int = 3
    dataset: str = "mnist"
    data_dir: str = None
    strategy: str = "auto"
    objective: str = "reconstruction_loss"
    space: str = json.dumps({"hidden_channels": [16, 32, 64], "residual_channels": [8, 16, 32],
                             "downsample": ["stride", "max_pool", "avg_pool"]})
    steps_per_epoch: int = 300
    batch_size: int = 64
    validation_examples: int = 2000
    test_examples: int = 0
    overwrite: bool = False
    seed: int = 0


FLAGS = flags.FLAGS


def define_flags():
    """The command line: one flag per `Config` field, plus --directory (defined when run)."""
    common_flags.define(
        Config, ["dataset", "data_dir", "strategy", "steps_per_epoch", "batch_size", "seed"],
        choices={"strategy": ["auto", "cpu", "mirrored"]},
        helps={"strategy": "tf.distribute strategy each trial trains under (mirrored: all "
                           "GPUs). Across machines, use keras-tuner's chief/worker mode instead "
                           "(see above).",
               "steps_per_epoch": "Training steps per epoch.",
               "batch_size": "Global batch size.",
               "seed": "Random seed (oracle and data order)."})
    flags.adopt_module_key_flags(common_flags)  # listed by --help as the script's own
    flags.DEFINE_enum("model", Config.model, ["vqvae", "vae", "ae"],
                      "Which model family to search.")
    flags.DEFINE_enum("tuner", Config.tuner, ["hyperband", "random", "bayesian"],
                      "keras-tuner search.")
    flags.DEFINE_integer("max_trials", Config.max_trials,
                         "Most trials (for hyperband: a cap on its schedule).")
    flags.DEFINE_integer("max_epochs", Config.max_epochs,
                         "Epochs per trial (hyperband: most epochs of one model); also the "
                         "epochs of the final retraining.")
    flags.DEFINE_string("directory", "runs/tune", "Where the search and its results go.")
    flags.DEFINE_enum("objective", Config.objective,
                      ["reconstruction_loss", "psnr", "bits_per_dim", "mse", "loss"],
                      "Validation metric to optimise (bits_per_dim: VAE only).")
    flags.DEFINE_string("space", Config.space,
                        "JSON dict narrowing or extending the default search space: name -> "
                        "value (fixed), list (choice) or {min_value, max_value[, sampling]} "
                        "(range). '{}' searches the full default space.")
    flags.DEFINE_integer("validation_examples", Config.validation_examples,
                         "Train images held out for the objective.")
    flags.DEFINE_integer("test_examples", Config.test_examples,
                         "Test images to evaluate the retrained model on (0: all).")
    flags.DEFINE_bool("overwrite", Config.overwrite, "Start the search over instead of resuming it.")


def load_data(config):
    """The search's training (repeated), validation (held out of train) and test datasets."""
    import tfvq

    held_out = config.validation_examples
    kwargs = dict(data_dir=config.data_dir)
    train = tfvq.data.load(config.dataset, f"train[:-{held_out}]", config.batch_size,
                           seed=config.seed, drop_remainder=True, **kwargs).repeat()
    validation = tfvq.data.load(config.dataset, f"train[-{held_out}:]", 256, **kwargs)
    test_split = f"test[:{config.test_examples}]" if config.test_examples else "test"
    test = tfvq.data.load(config.dataset, test_split, 256, **kwargs)
    return train, validation, test


def search(config, workdir):
    """Searches, writes the results, retrains the best configuration and evaluates it.

    Args:
        config: a `Config`.
        workdir: the search's folder (--directory); a rerun with the same folder resumes the
            search unless `config.overwrite`.

    Returns:
        The metrics dict written to `workdir/metrics.json`, or None on a keras-tuner worker
        (the chief writes the results).
    """
    import keras
    import tensorflow as tf

    import tfvq

    strategy = tfvq.training.make_strategy(config.strategy)
    # "auto" on one device is the default strategy: trials then need no wrapping scope.
    distribute = None if strategy is tf.distribute.get_strategy() else strategy
    keras.utils.set_random_seed(config.seed)
    os.makedirs(workdir, exist_ok=True)
    info = tfvq.data.info(config.dataset, data_dir=config.data_dir)
    train, validation, test = load_data(config)

    tuner = tfvq.tuning.make_tuner(
        config.model, config.tuner, input_shape=info.image_shape, space=json.loads(config.space),
        objective=config.objective, max_trials=config.max_trials, max_epochs=config.max_epochs,
        directory=workdir, overwrite=config.overwrite, distribution_strategy=distribute,
        seed=config.seed + 1)
    tuner.search_space_summary()
    start = time.time()
    tuner.search(train, validation_data=validation, epochs=config.max_epochs,
                 steps_per_epoch=config.steps_per_epoch, verbose=2)
    search_seconds = time.time() - start
    if tfvq.tuning.role() == "worker":
        return None
    tuner.results_summary(num_trials=3)

    best = tfvq.tuning.write_best_hyperparameters(
        tuner, os.path.join(workdir, "best_hyperparameters.json"))
    rows = tfvq.tuning.write_trials_csv(tuner, os.path.join(workdir, "trials.csv"))
    tfvq.plots.search_results(tuner, path=os.path.join(workdir, "search.png"))

    # Retrain the best configuration from scratch, for as long as a trial could train.
    best_trial = tuner.oracle.get_best_trials(1)[0]
    with strategy.scope():
        model = tuner.hypermodel.build(best_trial.hyperparameters.copy())
    start = time.time()
    model.fit(train, validation_data=validation, epochs=config.max_epochs,
              steps_per_epoch=config.steps_per_epoch, verbose=2)
    retrain_seconds = time.time() - start
    results = model.evaluate(test, return_dict=True, verbose=0)
    model.save(os.path.join(workdir, "best_model.keras"))

    objective = tuner.oracle.objective
    metrics = {
        "model": config.model,
        "tuner": config.tuner,
        "dataset": config.dataset,
        "objective": objective.name,
        "direction": objective.direction,
        "best_trial": best_trial.trial_id,
        "best_objective": best_trial.score,
        "trials": len(rows),
        "completed_trials": sum(row["status"] == "COMPLETED" for row in rows),
        "best_hyperparameters": best,
        "parameters": model.count_params(),
        "test": {key: float(value) for key, value in results.items()},
        "search_seconds_this_run": round(search_seconds, 1),
        "retrain_seconds": round(retrain_seconds, 1),
    }
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    logging.info("Best trial %s: %s = %s", best_trial.trial_id, objective.name, best_trial.score)
    print(json.dumps(metrics, indent=2))
    return metrics


def main(argv):
    del argv
    search(common_flags.config_from_flags(Config), FLAGS.directory)


if __name__ == "__main__":
    define_flags()
    app.run(main)
