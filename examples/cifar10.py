"""Trains a VQ-VAE (or VAE / AE) on CIFAR-10 and leaves metrics, pictures and the model behind.

    python examples/cifar10.py --model=vqvae --epochs=3 --output_dir=runs/c10

Writes into --output_dir: metrics.json, reconstructions.png, training_curves.png, history.csv,
TensorBoard logs (logs/), the model (model.keras). Run it again with the same --output_dir after
an interruption and it resumes from the last finished epoch (BackupAndRestore).
"""

import json
import os
import time

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "vqvae", ["vqvae", "vae", "ae"], "Which model to train.")
flags.DEFINE_string("dataset", "cifar10", "tfds image dataset name.")
flags.DEFINE_integer("epochs", 5, "Training epochs.")
flags.DEFINE_integer("steps_per_epoch", 300, "Training steps per epoch (0: one pass over the data).")
flags.DEFINE_integer("batch_size", 32, "Global batch size (split over replicas).")
flags.DEFINE_enum("strategy", "auto", ["auto", "cpu", "mirrored", "multiworker"], "tf.distribute strategy.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR).")
flags.DEFINE_string("output_dir", "runs/cifar10", "Where metrics, pictures, logs and the model go.")
flags.DEFINE_float("learning_rate", 2e-4, "Adam learning rate.")
flags.DEFINE_integer("hidden_channels", 64, "Width of the conv stacks (the paper uses 128).")
flags.DEFINE_integer("residual_channels", 32, "Inner width of the residual blocks.")
flags.DEFINE_integer("num_residual_layers", 2, "Residual blocks per stack.")
flags.DEFINE_integer("downsample_stages", 2, "Stride-2 stages (32x32 -> 8x8 with 2).")
flags.DEFINE_integer("num_embeddings", 512, "VQ-VAE codebook size K.")
flags.DEFINE_integer("embedding_dim", 64, "VQ-VAE code size D.")
flags.DEFINE_enum("quantizer", "ema", ["ema", "vq"], "VQ-VAE quantizer.")
flags.DEFINE_bool("kmeans_init", True, "Initialise the codebook by k-means on the first batch.")
flags.DEFINE_float("dead_code_threshold", 1.0,
                   "Re-seed codes whose EMA usage (vectors per batch) falls below this; 0: off.")
flags.DEFINE_integer("latent_dim", 128, "VAE / AE latent size.")
flags.DEFINE_integer("eval_examples", 0, "Test examples to evaluate on (0: the whole test split).")
flags.DEFINE_bool("jit_compile", True,
                  "XLA-compile the steps (1.7x faster on a 2-core CPU at K=512, see "
                  "benchmarks/RESULTS.md); off by itself where XLA cannot run (several CPU "
                  "replicas).")
flags.DEFINE_integer("seed", 0, "Random seed.")


def build_model(image_shape, data_variance):
    import tfvq

    conv = dict(hidden_channels=FLAGS.hidden_channels, residual_channels=FLAGS.residual_channels,
                num_residual_layers=FLAGS.num_residual_layers,
                downsample_stages=FLAGS.downsample_stages)
    if FLAGS.model == "vqvae":
        return tfvq.VQVAE(image_shape, num_embeddings=FLAGS.num_embeddings,
                          embedding_dim=FLAGS.embedding_dim, quantizer=FLAGS.quantizer,
                          quantizer_options=dict(kmeans_init=FLAGS.kmeans_init,
                                                 dead_code_threshold=FLAGS.dead_code_threshold),
                          data_variance=data_variance, **conv)
    if FLAGS.model == "vae":
        return tfvq.VAE(image_shape, latent_dim=FLAGS.latent_dim, reconstruction_loss="logistic",
                        seed=FLAGS.seed, data_variance=data_variance, **conv)
    return tfvq.AE(image_shape, latent_dim=FLAGS.latent_dim, data_variance=data_variance, **conv)


def read_history(path):
    """The whole run's history from the CSV log (it survives resumption, `History` does not)."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows] for key in rows[0] if key != "epoch"}


def main(argv):
    del argv
    import keras
    import numpy as np

    import tfvq

    # Multi-worker strategies must exist before any other TensorFlow op.
    strategy = tfvq.training.make_strategy(FLAGS.strategy)
    keras.utils.set_random_seed(FLAGS.seed)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    resolver = getattr(strategy, "cluster_resolver", None)
    worker_index = resolver.task_id if FLAGS.strategy == "multiworker" and resolver else 0
    logging.info("Strategy %s with %d replica(s)", type(strategy).__name__,
                 strategy.num_replicas_in_sync)

    info = tfvq.data.info(FLAGS.dataset, data_dir=FLAGS.data_dir)
    variance = tfvq.data.pixel_variance(FLAGS.dataset, "train", data_dir=FLAGS.data_dir,
                                        max_examples=10_000)
    train = tfvq.data.load(FLAGS.dataset, "train", FLAGS.batch_size, data_dir=FLAGS.data_dir,
                           seed=FLAGS.seed, drop_remainder=True)
    test_split = f"test[:{FLAGS.eval_examples}]" if FLAGS.eval_examples else "test"
    test = tfvq.data.load(FLAGS.dataset, test_split, 256, data_dir=FLAGS.data_dir)
    samples = next(iter(test))[:16]
    steps = FLAGS.steps_per_epoch or None
    if steps:
        train = train.repeat()

    history_csv = os.path.join(FLAGS.output_dir, "history.csv")
    saved = os.path.join(FLAGS.output_dir, "model.keras")
    backup = tfvq.training.backup_dir_for(FLAGS.output_dir, worker_index)
    # An interrupted run resumes through BackupAndRestore (its folder exists); a finished run
    # asked for more epochs continues from its saved model and optimizer state.
    initial_epoch = 0
    if os.path.exists(saved) and os.path.exists(history_csv) and not os.path.isdir(backup):
        initial_epoch = len(read_history(history_csv).get("loss", []))
    with strategy.scope():
        if initial_epoch:
            logging.info("Continuing %s from epoch %d", saved, initial_epoch)
            model = keras.models.load_model(saved)
        else:
            model = build_model(info.image_shape, variance)
            model.compile(optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
                          jit_compile=tfvq.training.jit_compile_for(strategy, FLAGS.jit_compile))
    model.summary(print_fn=logging.info)

    callbacks = tfvq.training.default_callbacks(FLAGS.output_dir, model, samples,
                                                worker_index=worker_index)
    callbacks.append(keras.callbacks.CSVLogger(history_csv, append=True))
    start = time.time()
    history = model.fit(train, epochs=FLAGS.epochs, steps_per_epoch=steps, validation_data=test,
                        callbacks=callbacks, initial_epoch=initial_epoch, verbose=1)
    train_seconds = time.time() - start
    results = model.evaluate(test, return_dict=True, verbose=1)
    if worker_index != 0:
        return

    recon = model.predict(samples, verbose=0)
    tfvq.plots.reconstruction_grid(np.asarray(samples), recon, n=16,
                                   path=os.path.join(FLAGS.output_dir, "reconstructions.png"))
    tfvq.plots.training_curves(read_history(history_csv),
                               path=os.path.join(FLAGS.output_dir, "training_curves.png"))
    steps_run = int(model.optimizer.iterations.numpy())
    metrics = {
        "model": FLAGS.model,
        "dataset": FLAGS.dataset,
        "test": {key: float(np.mean(value)) for key, value in results.items()},
        "data_variance": variance,
        "steps": steps_run,
        "global_batch_size": FLAGS.batch_size,
        "replicas": strategy.num_replicas_in_sync,
        "wall_time_s_this_run": round(train_seconds, 1),
        "images_per_s_this_run": None,
        "parameters": model.count_params(),
    }
    if steps and history.epoch and train_seconds > 0:
        # Includes validation and callbacks: a floor on training throughput.
        metrics["images_per_s_this_run"] = round(
            FLAGS.batch_size * steps * len(history.epoch) / train_seconds, 1)
    with open(os.path.join(FLAGS.output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    logging.info("Test metrics: %s", json.dumps(metrics["test"]))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    app.run(main)
