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

The defaults (a Hyperband over 6 trials of at most 3 epochs of 300 steps on MNIST, with widths
kept small by --space) take about ten minutes on a 2-core CPU.
"""

import json
import os
import time

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "vqvae", ["vqvae", "vae", "ae"], "Which model family to search.")
flags.DEFINE_enum("tuner", "hyperband", ["hyperband", "random", "bayesian"], "keras-tuner search.")
flags.DEFINE_integer("max_trials", 6, "Most trials (for hyperband: a cap on its schedule).")
flags.DEFINE_integer("max_epochs", 3, "Epochs per trial (hyperband: most epochs of one model); "
                     "also the epochs of the final retraining.")
flags.DEFINE_string("directory", "runs/tune", "Where the search and its results go.")
flags.DEFINE_string("dataset", "mnist", "tfds image dataset name.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR).")
flags.DEFINE_enum("strategy", "auto", ["auto", "cpu", "mirrored"],
                  "tf.distribute strategy each trial trains under (mirrored: all GPUs). Across "
                  "machines, use keras-tuner's chief/worker mode instead (see above).")
flags.DEFINE_enum("objective", "reconstruction_loss",
                  ["reconstruction_loss", "psnr", "bits_per_dim", "mse", "loss"],
                  "Validation metric to optimise (bits_per_dim: VAE only).")
flags.DEFINE_string("space", json.dumps({"hidden_channels": [16, 32, 64],
                                         "residual_channels": [8, 16, 32],
                                         "downsample": ["stride", "max_pool", "avg_pool"]}),
                    "JSON dict narrowing or extending the default search space: name -> value "
                    "(fixed), list (choice) or {min_value, max_value[, sampling]} (range). "
                    "'{}' searches the full default space.")
flags.DEFINE_integer("steps_per_epoch", 300, "Training steps per epoch.")
flags.DEFINE_integer("batch_size", 64, "Global batch size.")
flags.DEFINE_integer("validation_examples", 2000, "Train images held out for the objective.")
flags.DEFINE_integer("test_examples", 0, "Test images to evaluate the retrained model on (0: all).")
flags.DEFINE_bool("overwrite", False, "Start the search over instead of resuming it.")
flags.DEFINE_integer("seed", 0, "Random seed (oracle and data order).")


def load_data(tfvq):
    held_out = FLAGS.validation_examples
    kwargs = dict(data_dir=FLAGS.data_dir)
    train = tfvq.data.load(FLAGS.dataset, f"train[:-{held_out}]", FLAGS.batch_size,
                           seed=FLAGS.seed, drop_remainder=True, **kwargs).repeat()
    validation = tfvq.data.load(FLAGS.dataset, f"train[-{held_out}:]", 256, **kwargs)
    test_split = f"test[:{FLAGS.test_examples}]" if FLAGS.test_examples else "test"
    test = tfvq.data.load(FLAGS.dataset, test_split, 256, **kwargs)
    return train, validation, test


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    import tfvq

    strategy = tfvq.training.make_strategy(FLAGS.strategy)
    # "auto" on one device is the default strategy: trials then need no wrapping scope.
    distribute = None if strategy is tf.distribute.get_strategy() else strategy
    keras.utils.set_random_seed(FLAGS.seed)
    os.makedirs(FLAGS.directory, exist_ok=True)
    info = tfvq.data.info(FLAGS.dataset, data_dir=FLAGS.data_dir)
    train, validation, test = load_data(tfvq)

    tuner = tfvq.tuning.make_tuner(
        FLAGS.model, FLAGS.tuner, input_shape=info.image_shape, space=json.loads(FLAGS.space),
        objective=FLAGS.objective, max_trials=FLAGS.max_trials, max_epochs=FLAGS.max_epochs,
        directory=FLAGS.directory, overwrite=FLAGS.overwrite, distribution_strategy=distribute,
        seed=FLAGS.seed + 1)
    tuner.search_space_summary()
    start = time.time()
    tuner.search(train, validation_data=validation, epochs=FLAGS.max_epochs,
                 steps_per_epoch=FLAGS.steps_per_epoch, verbose=2)
    search_seconds = time.time() - start
    if tfvq.tuning.role() == "worker":
        return  # the chief writes the results
    tuner.results_summary(num_trials=3)

    best = tfvq.tuning.write_best_hyperparameters(
        tuner, os.path.join(FLAGS.directory, "best_hyperparameters.json"))
    rows = tfvq.tuning.write_trials_csv(tuner, os.path.join(FLAGS.directory, "trials.csv"))
    tfvq.plots.search_results(tuner, path=os.path.join(FLAGS.directory, "search.png"))

    # Retrain the best configuration from scratch, for as long as a trial could train.
    best_trial = tuner.oracle.get_best_trials(1)[0]
    with strategy.scope():
        model = tuner.hypermodel.build(best_trial.hyperparameters.copy())
    start = time.time()
    model.fit(train, validation_data=validation, epochs=FLAGS.max_epochs,
              steps_per_epoch=FLAGS.steps_per_epoch, verbose=2)
    retrain_seconds = time.time() - start
    results = model.evaluate(test, return_dict=True, verbose=0)
    model.save(os.path.join(FLAGS.directory, "best_model.keras"))

    objective = tuner.oracle.objective
    metrics = {
        "model": FLAGS.model,
        "tuner": FLAGS.tuner,
        "dataset": FLAGS.dataset,
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
    with open(os.path.join(FLAGS.directory, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    logging.info("Best trial %s: %s = %s", best_trial.trial_id, objective.name, best_trial.score)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    app.run(main)
