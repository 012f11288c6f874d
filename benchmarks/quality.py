"""Quality per unit of compute: the Sonnet-notebook VQ-VAE on CIFAR-10, validated at checkpoints.

Trains the VQ-VAE of Sonnet's example notebook (K=512, D=64, 128 hidden channels, 2 residual
layers of 32 channels, EMA decay 0.99, beta 0.25, batch 32, Adam) and, at each checkpoint step,
reports on a fixed validation slice (test[:--val_examples], in batches of --val_batch):

- normalised MSE (MSE divided by the variance of the training pixels, as in the paper);
- perplexity three ways: Keras `evaluate`'s mean of per-batch perplexities (batches of
  --val_batch images), the mean per-batch perplexity over batches of 32 images (the batch the
  notebook's training perplexity is measured on, 2,048 codes per batch), and the perplexity of
  the code histogram pooled over the whole slice;
- the training normalised MSE and perplexity averaged over the last --log_every steps (100:
  the statistic Sonnet's notebook prints, and so its published curve).

`--library=sonnet` trains the notebook's own model, written in Sonnet 2 modules
(benchmarks/sonnet_notebook.py), on the same batches and validates it the same way: Sonnet's
curve on this machine's JPEG copy of CIFAR-10, next to its published one.
Training time and FLOPs go with each row, so quality can be read per unit of compute.
Intermediate rows go to --json after every checkpoint, so a run that is stopped still leaves
its finished checkpoints.

    python benchmarks/quality.py --checkpoints=1000,5000,10000 --kmeans_init \
        --dead_code_threshold=2 --learning_rate=3e-4 --schedule=cosine --jit_compile \
        --results=benchmarks/RESULTS.md
    python benchmarks/quality.py --library=sonnet --learning_rate=3e-4 --jit_compile
"""

import json
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("library", "tfvq", ["tfvq", "sonnet"],
                  "tfvq: `tfvq.VQVAE`; sonnet: the notebook's model in Sonnet 2 modules "
                  "(benchmarks/sonnet_notebook.py) on the same data, the same-data reference "
                  "(its quantizer has no k-means init or dead-code restart).")
flags.DEFINE_list("checkpoints", ["1000", "5000", "10000"], "Step counts at which to validate.")
flags.DEFINE_integer("batch_size", 32, "Training batch size (Sonnet's notebook uses 32).")
flags.DEFINE_integer("val_examples", 2000, "Validation examples: test[:val_examples].")
flags.DEFINE_integer("val_batch", 250, "Validation batch size for Keras evaluate.")
flags.DEFINE_integer("num_embeddings", 512, "K.")
flags.DEFINE_integer("hidden_channels", 128, "Notebook: 128.")
flags.DEFINE_integer("residual_channels", 32, "Notebook: 32.")
flags.DEFINE_bool("kmeans_init", False, "k-means codebook initialisation on the first batch.")
flags.DEFINE_float("dead_code_threshold", 0.0, "Dead-code restart below this many vectors per "
                   "batch (EMA of usage); 0 disables. The mean is batch*64/K (4 at batch 32).")
flags.DEFINE_float("learning_rate", 3e-4, "Adam learning rate (peak, with a schedule); the "
                   "notebook uses 3e-4.")
flags.DEFINE_enum("schedule", "constant", ["constant", "cosine"],
                  "constant, or cosine decay to 0 over the last checkpoint's steps with "
                  "--warmup_steps of linear warm-up.")
flags.DEFINE_integer("warmup_steps", 0, "Linear warm-up steps (cosine schedule).")
flags.DEFINE_integer("schedule_steps", None, "Length of the cosine schedule; defaults to the "
                     "last checkpoint (set it to probe the start of a longer run).")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the train step.")
flags.DEFINE_integer("log_every", 100, "Steps per Keras epoch: training metrics are averaged "
                     "over one epoch (100: the notebook's running mean over the last 100 steps).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("data_dir", None, "TFDS data dir; defaults to $TFDS_DATA_DIR.")
flags.DEFINE_string("json", None, "Write rows here after every checkpoint.")
flags.DEFINE_string("results", None, "Markdown file to append the table to.")

# Sonnet's notebook (vqvae_example.ipynb, EMA quantizer) at the same steps.
SONNET_CURVE = {1000: 0.105, 5000: 0.061, 10000: 0.056}


def _perplexity(counts):
    import numpy as np

    probs = counts / max(counts.sum(), 1)
    return float(np.exp(-np.sum(probs * np.log(probs + 1e-10))))


def code_statistics(model, images, batch=32):
    """Mean per-batch perplexity over batches of `batch` images, pooled perplexity, usage."""
    import numpy as np

    codes = np.concatenate([
        np.asarray(model.encode_to_indices(images[i:i + 250])) for i in range(0, len(images), 250)
    ])
    k = model.num_embeddings
    per_batch = [
        _perplexity(np.bincount(codes[i:i + batch].ravel(), minlength=k))
        for i in range(0, len(codes) - batch + 1, batch)
    ]
    pooled = np.bincount(codes.ravel(), minlength=k)
    return float(np.mean(per_batch)), _perplexity(pooled), float(np.mean(pooled > 0))


class TfvqRun:
    """`tfvq.VQVAE` behind the interface `main` drives (`SonnetRun` is the other one)."""

    def __init__(self, data_variance, learning_rate):
        import keras

        import tfvq

        self.model = tfvq.VQVAE(
            (32, 32, 3), num_embeddings=FLAGS.num_embeddings, embedding_dim=64,
            hidden_channels=FLAGS.hidden_channels, residual_channels=FLAGS.residual_channels,
            num_residual_layers=2, quantizer="ema", decay=0.99, commitment_cost=0.25,
            data_variance=data_variance,
            quantizer_options=dict(kmeans_init=FLAGS.kmeans_init,
                                   dead_code_threshold=FLAGS.dead_code_threshold,
                                   seed=FLAGS.seed))
        self.model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                           jit_compile=FLAGS.jit_compile)
        self.num_embeddings = self.model.num_embeddings
        self.num_params = self.model.count_params()

    def train(self, dataset, steps):
        history = self.model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        return {k: v[-1] for k, v in history.history.items()}

    def validate(self, val):
        return self.model.evaluate(val, return_dict=True, verbose=0)

    def encode_to_indices(self, images):
        return self.model.encode_to_indices(images)


def main(argv):
    del argv
    import keras
    import numpy as np

    import tfvq

    keras.utils.set_random_seed(FLAGS.seed)
    checkpoints = sorted(int(c) for c in FLAGS.checkpoints)
    variance = tfvq.data.pixel_variance("cifar10", "train", data_dir=FLAGS.data_dir,
                                        max_examples=10_000)
    train = tfvq.data.load("cifar10", "train", FLAGS.batch_size, data_dir=FLAGS.data_dir,
                           seed=FLAGS.seed, drop_remainder=True).repeat()
    val = tfvq.data.load("cifar10", f"test[:{FLAGS.val_examples}]", FLAGS.val_batch,
                         data_dir=FLAGS.data_dir)
    val_images = np.concatenate(list(val.as_numpy_iterator()))
    lr = FLAGS.learning_rate
    if FLAGS.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            0.0 if FLAGS.warmup_steps else lr,
            (FLAGS.schedule_steps or checkpoints[-1]) - FLAGS.warmup_steps,
            warmup_target=lr if FLAGS.warmup_steps else None, warmup_steps=FLAGS.warmup_steps)
    if FLAGS.library == "sonnet":
        from sonnet_notebook import SonnetRun  # benchmarks/, on sys.path when run

        run = SonnetRun(variance, lr, jit_compile=FLAGS.jit_compile,
                        num_embeddings=FLAGS.num_embeddings, hidden=FLAGS.hidden_channels,
                        residual=FLAGS.residual_channels)
        train = iter(train)  # one iterator, so each chunk continues the same stream
    else:
        run = TfvqRun(variance, lr)

    # Analytic FLOPs of one training step (benchmarks/flops.py, on sys.path when run).
    from flops import train_step_flops

    step_flops = train_step_flops(FLAGS.batch_size, hidden=FLAGS.hidden_channels,
                                  residual=FLAGS.residual_channels,
                                  num_embeddings=FLAGS.num_embeddings)

    rows, done, train_seconds, logs = [], 0, 0.0, {}
    for target in checkpoints:
        while done < target:
            steps = min(FLAGS.log_every, target - done)
            start = time.time()
            logs = run.train(train, steps)
            train_seconds += time.time() - start
            done += steps
            print(f"[train] step {done}: {done / train_seconds:.2f} steps/s, "
                  f"normalised MSE {logs['normalized_mse']:.4f}, perplexity "
                  f"{logs['perplexity']:.1f}", flush=True)
        val_logs = run.validate(val)
        per32, pooled, usage = code_statistics(run, val_images)
        rows.append(dict(steps=done, seconds=train_seconds, steps_per_s=done / train_seconds,
                         pflop=done * step_flops / 1e15, val_nmse=val_logs["normalized_mse"],
                         val_perplexity=val_logs["perplexity"], val_perplexity_32=per32,
                         val_perplexity_pooled=pooled, val_usage=usage,
                         train_nmse=logs["normalized_mse"],
                         train_perplexity=logs["perplexity"], sonnet=SONNET_CURVE.get(done)))
        print(f"[val] {rows[-1]}", flush=True)
        if FLAGS.json:
            with open(FLAGS.json, "w") as f:
                json.dump(dict(flags={k: FLAGS[k].value for k in _FLAG_NAMES}, rows=rows), f,
                          indent=1)

    command = "python benchmarks/quality.py " + " ".join(
        f"--{k}={','.join(v) if isinstance(v, list) else v}"
        for k, v in ((k, FLAGS[k].value) for k in _FLAG_NAMES))
    table = [
        f"`{command}` — {time.strftime('%Y-%m-%d')}, 2-core CPU, "
        f"{run.num_params:,} parameters, {step_flops / 1e9:.2f} GFLOP per step",
        "",
        "| steps | train time (s) | PFLOP | val normalised MSE | Sonnet notebook (train) | "
        f"train normalised MSE (last {FLAGS.log_every} steps) | "
        f"val perplexity (batches of {FLAGS.val_batch}) | val perplexity (batches of 32) | "
        "val perplexity (pooled) | codes used | train perplexity |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ] + [
        f"| {r['steps']} | {r['seconds']:.0f} | {r['pflop']:.3f} | {r['val_nmse']:.4f} | "
        f"{r['sonnet'] if r['sonnet'] else '-'} | {r['train_nmse']:.4f} | "
        f"{r['val_perplexity']:.1f} | "
        f"{r['val_perplexity_32']:.1f} | {r['val_perplexity_pooled']:.1f} | "
        f"{r['val_usage']:.3f} | {r['train_perplexity']:.1f} |"
        for r in rows
    ]
    text = "\n".join(table)
    print(text)
    if FLAGS.results:
        with open(FLAGS.results, "a") as f:
            f.write("\n" + text + "\n")


_FLAG_NAMES = ("library", "checkpoints", "batch_size", "val_examples", "val_batch", "num_embeddings",
               "hidden_channels", "residual_channels", "kmeans_init", "dead_code_threshold",
               "learning_rate", "schedule", "warmup_steps", "schedule_steps", "jit_compile",
               "log_every", "seed")

if __name__ == "__main__":
    app.run(main)
