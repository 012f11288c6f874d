"""Trains the VQ-VAE paper's CIFAR-10 model and reports steps/s, normalised MSE and perplexity.

    python benchmarks/models.py --checkpoints=250,500,1000 --batch_size=32

Validation (on test[:--val_examples]) at each checkpoint step; the table is printed in markdown
and, with --results, appended to benchmarks/RESULTS.md.
"""

import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("checkpoints", ["250", "500", "1000"], "Step counts at which to validate.")
flags.DEFINE_integer("batch_size", 32, "Training batch size (Sonnet's notebook uses 32).")
flags.DEFINE_integer("val_examples", 2000, "Validation examples from the test split.")
flags.DEFINE_integer("hidden_channels", 128, "Paper: 128.")
flags.DEFINE_string("quantizer", "ema", "ema or vq.")
flags.DEFINE_bool("kmeans_init", False, "k-means codebook initialisation.")
flags.DEFINE_float("dead_code_threshold", 0.0, "Dead-code restart threshold (0: off).")
flags.DEFINE_string("data_dir", None, "TFDS data dir.")
flags.DEFINE_string("results", None, "Markdown file to append the table to.")


def main(argv):
    del argv
    import keras

    import tfvq

    keras.utils.set_random_seed(0)
    variance = tfvq.data.pixel_variance("cifar10", "train", data_dir=FLAGS.data_dir,
                                        max_examples=10_000)
    train = tfvq.data.load("cifar10", "train", FLAGS.batch_size, data_dir=FLAGS.data_dir,
                           seed=0, drop_remainder=True).repeat()
    val = tfvq.data.load("cifar10", f"test[:{FLAGS.val_examples}]", 250, data_dir=FLAGS.data_dir)
    model = tfvq.VQVAE((32, 32, 3), num_embeddings=512, embedding_dim=64,
                       hidden_channels=FLAGS.hidden_channels, residual_channels=32,
                       num_residual_layers=2, quantizer=FLAGS.quantizer, data_variance=variance,
                       quantizer_options=dict(kmeans_init=FLAGS.kmeans_init,
                                              dead_code_threshold=FLAGS.dead_code_threshold))
    model.compile(optimizer=keras.optimizers.Adam(2e-4))
    rows, done, train_seconds = [], 0, 0.0
    for target in sorted(int(c) for c in FLAGS.checkpoints):
        start = time.time()
        model.fit(train, epochs=1, steps_per_epoch=target - done, verbose=0)
        train_seconds += time.time() - start
        done = target
        logs = model.evaluate(val, return_dict=True, verbose=0)
        rows.append((done, done / train_seconds, logs["normalized_mse"], logs["perplexity"]))
        print(f"step {done}: {rows[-1][1]:.2f} steps/s, val normalised MSE "
              f"{logs['normalized_mse']:.4f}, perplexity {logs['perplexity']:.1f}", flush=True)
    values = {name: FLAGS[name].value for name in ("checkpoints", "batch_size", "val_examples",
              "hidden_channels", "quantizer", "kmeans_init", "dead_code_threshold")}
    command = "python benchmarks/models.py " + " ".join(
        f"--{k}={','.join(v) if isinstance(v, list) else v}" for k, v in values.items())
    table = [
        f"`{command}` — {time.strftime('%Y-%m-%d')}, 2-core CPU, "
        f"{model.count_params():,} parameters",
        "",
        "| steps | steps/s (training, cumulative) | val normalised MSE | val perplexity |",
        "| ---: | ---: | ---: | ---: |",
    ] + [f"| {s} | {r:.2f} | {m:.4f} | {p:.1f} |" for s, r, m, p in rows]
    text = "\n".join(table)
    print(text)
    if FLAGS.results:
        with open(FLAGS.results, "a") as f:
            f.write("\n" + text + "\n")


if __name__ == "__main__":
    app.run(main)
