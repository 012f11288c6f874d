"""Trains a VQ-VAE (or VAE / AE) on CIFAR-10, or on a folder of images, and leaves metrics,
pictures and the model behind.

    python examples/cifar10.py --model=vqvae --epochs=3 --output_dir=runs/c10
    python examples/cifar10.py --dataset=/path/to/photos --image_size=128 --min_size=32 \
        --augment=crop --output_dir=runs/photos      # the ImageNet-128 recipe on any folder

Writes into --output_dir: metrics.json, reconstructions.png, training_curves.png, history.csv,
TensorBoard logs (logs/), the model (model.keras). Run it again with the same --output_dir after
an interruption and it resumes from the last finished epoch (BackupAndRestore); a finished run
asked for more --epochs trains on from its saved state, asked for no more it is not trained
again (`common_flags.fit_resumable`).

A folder without a `test/` subfolder is evaluated on its last `--eval_examples` images in
sorted order (a tenth by default): with class subfolders, mostly the last class.

Under `--strategy=multiworker` every worker runs the same program (TF_CONFIG says which one it
is): all of them train and evaluate, since those steps are collectives, and the chief alone
writes files. Rerun, the chief's saved model and history decide for all of them: a worker
whose own output folder holds no model takes the chief's weights and optimizer state.
`train_and_evaluate(config, workdir)` is the whole job, for tests and notebooks.
"""

import dataclasses
import hashlib
import json
import os

from absl import app, flags, logging

import common_flags


@dataclasses.dataclass
class Config:
    """The job's settings; every field is also a command-line flag of the same name."""

    model: str = "vqvae"
    dataset: str = "cifar10"
    epochs: int = 5
    steps_per_epoch: int = 300
    batch_size: int = 32
    strategy: str = "auto"
    data_dir: str = None
    learning_rate: float = 2e-4
    hidden_channels: int = 64
    residual_channels: int = 32
    num_residual_layers: int = 2
    downsample_stages: int = 2
    num_embeddings: int = 512
    embedding_dim: int = 64
    quantizer: str = "ema"
    kmeans_init: bool = True
    dead_code_threshold: float = 1.0
    latent_dim: int = 128
    eval_examples: int = 0
    image_size: int = 0
    min_size: int = 0
    augment: str = "none"
    jit_compile: str = "auto"
    dtype_policy: str = "float32"
    seed: int = 0


FLAGS = flags.FLAGS


def define_flags():
    """The command line: one flag per `Config` field, plus --output_dir.

    Defined when the script runs, not at import, so that tests and notebooks can import
    `train_and_evaluate` next to other modules that define flags of the same names.
    """
    common_flags.define(
        Config, ["dataset", "epochs", "steps_per_epoch", "batch_size", "strategy", "data_dir",
                 "output_dir", "learning_rate", "hidden_channels", "residual_channels",
                 "num_residual_layers", "downsample_stages", "num_embeddings", "embedding_dim",
                 "eval_examples", "seed"],
        output_dir="runs/cifar10",
        helps={
            "dataset": "tfds image dataset name, or a folder of image files (class subfolders "
                       "are labels; train/ and test/ subfolders, if any, are the splits).",
            "hidden_channels": "Width of the conv stacks (the paper uses 128).",
            "downsample_stages": "Stride-2 stages (32x32 -> 8x8 and 128x128 -> 32x32 with 2).",
        })
    flags.adopt_module_key_flags(common_flags)  # listed by --help as the script's own
    flags.DEFINE_enum("model", Config.model, ["vqvae", "vae", "ae"], "Which model to train.")
    flags.DEFINE_string("quantizer", Config.quantizer,
                        "VQ-VAE quantizer, a name in tfvq.layers.QUANTIZERS.")
    flags.DEFINE_bool("kmeans_init", Config.kmeans_init,
                      "Initialise the codebook by k-means on the first batch.")
    flags.DEFINE_float("dead_code_threshold", Config.dead_code_threshold,
                       "Re-seed codes whose EMA usage (vectors per batch) falls below this; 0: off.")
    flags.DEFINE_integer("latent_dim", Config.latent_dim, "VAE / AE latent size.")
    flags.DEFINE_integer("image_size", Config.image_size,
                         "Train on square images of this side (0: the dataset's own size); needed "
                         "for folders of images of varying size.")
    flags.DEFINE_integer("min_size", Config.min_size, "Drop images with a side under this (0: keep all).")
    flags.DEFINE_enum("augment", Config.augment, ["none", "crop", "flip", "crop,flip"],
                      "Training augmentation: random resized crop (scale 0.2-1, square, bilinear, "
                      "antialiased) to --image_size, and/or horizontal flips.")
    flags.DEFINE_enum("jit_compile", Config.jit_compile, ["auto", "true", "false"],
                      "XLA-compile the steps. auto: time a few steps of each on this machine "
                      "(once; the choice is cached per CPU and model, see "
                      "tfvq.training.choose_jit_compile), as XLA is 1.7x faster on one CPU "
                      "and slower on another; off by itself where XLA cannot run (several CPU "
                      "replicas).")
    flags.DEFINE_enum("dtype_policy", Config.dtype_policy,
                      ["float32", "mixed_bfloat16", "mixed_float16"],
                      "Keras dtype policy of the model; the quantizer's statistics stay float32. "
                      "mixed_bfloat16 ran the Sonnet-notebook VQ-VAE step 1.6x faster (without "
                      "XLA) on an Intel Xeon with AMX, at the same quality "
                      "(benchmarks/RESULTS.md); on CPUs without bfloat16 instructions no gain "
                      "is expected (not measured). "
                      "Not chosen by itself: it changes the arithmetic.")


def choose_jit_compile(config, strategy, build, train):
    """`config.jit_compile` as a bool: "auto" times both on this machine (one replica only).

    Under several replicas "auto" is on where XLA can run at all: timing there could choose
    differently on different workers, whose steps must match.
    """
    import tfvq

    requested = config.jit_compile
    if isinstance(requested, str):
        requested = {"true": True, "false": False}.get(requested.lower(), requested)
    allowed = tfvq.training.jit_compile_for(strategy, requested is not False)
    if requested != "auto" or not allowed or strategy.num_replicas_in_sync > 1:
        return bool(allowed)
    batch = next(iter(train))
    with strategy.scope():
        return tfvq.training.choose_jit_compile(build, batch)


def build_model(config, image_shape, data_variance):
    """The model of `config`, under its dtype policy (the global one is restored after)."""
    import tfvq

    with tfvq.utils.policies.dtype_policy_scope(config.dtype_policy):
        return _build_model(config, image_shape, data_variance)


def _build_model(config, image_shape, data_variance):
    import tfvq

    conv = dict(hidden_channels=config.hidden_channels,
                residual_channels=config.residual_channels,
                num_residual_layers=config.num_residual_layers,
                downsample_stages=config.downsample_stages)
    if config.model == "vqvae":
        options = {}
        if config.quantizer in ("vq", "ema"):
            options = dict(kmeans_init=config.kmeans_init,
                           dead_code_threshold=config.dead_code_threshold)
        return tfvq.VQVAE(image_shape, num_embeddings=config.num_embeddings,
                          embedding_dim=config.embedding_dim, quantizer=config.quantizer,
                          quantizer_options=options, data_variance=data_variance, **conv)
    if config.model == "vae":
        return tfvq.VAE(image_shape, latent_dim=config.latent_dim, reconstruction_loss="logistic",
                        seed=config.seed, data_variance=data_variance, **conv)
    return tfvq.AE(image_shape, latent_dim=config.latent_dim, data_variance=data_variance, **conv)


def weights_fingerprint(model):
    """SHA-256 of every weight's bytes: equal on all workers of a synchronous run."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()


def _splits(info, eval_examples):
    """Train and test splits: the dataset's own, or the last images of a folder without test."""
    for name in ("test", "validation"):
        if name in info.num_examples:
            test = f"{name}[:{eval_examples}]" if eval_examples else name
            return "train", test
    total = info.num_examples.get("train", 0)
    held = min(eval_examples or max(1, total // 10), total - 1)
    if held < 1:
        raise ValueError(f"{info.name!r} holds {total} image(s): too few to train and evaluate")
    logging.info("%s has no test split: evaluating on its last %d images", info.name, held)
    return f"train[:-{held}]", f"train[-{held}:]"


def _data(config):
    """Image shape, pixel variance, and the train and test datasets of the job."""
    import tfvq

    info = tfvq.data.info(config.dataset, data_dir=config.data_dir)
    shape = info.image_shape
    size = config.image_size or None
    if size is None and shape is None:
        raise ValueError(
            f"{config.dataset!r} has images of varying size: pass --image_size (e.g. 128)")
    channels = shape[-1] if shape is not None else 3
    image_shape = (size, size, channels) if size else tuple(shape)
    augment = False if config.augment == "none" else tuple(config.augment.split(","))
    common = dict(data_dir=config.data_dir, image_size=size, min_size=config.min_size or None,
                  channels=channels)
    train_split, test_split = _splits(info, config.eval_examples)
    variance = tfvq.data.pixel_variance(config.dataset, train_split, data_dir=config.data_dir,
                                        image_size=size, max_examples=10_000)
    train = tfvq.data.load(config.dataset, train_split, config.batch_size, seed=config.seed,
                           drop_remainder=True, augment=augment, **common)
    test = tfvq.data.load(config.dataset, test_split, 256, **common)
    return image_shape, variance, train, test, (train_split, test_split)


def train_and_evaluate(config, workdir):
    """Trains, evaluates, and (on the chief) writes metrics, pictures and the model to `workdir`.

    Args:
        config: a `Config`.
        workdir: the output folder; a rerun with the same folder resumes.

    Returns:
        The metrics dict written to `workdir/metrics.json` (also returned on other workers,
        which write nothing).
    """
    import keras
    import numpy as np

    import tfvq

    # Multi-worker strategies must exist before any other TensorFlow op.
    strategy = tfvq.training.make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    num_workers = len(cluster.get("chief", [])) + len(cluster.get("worker", [])) or 1
    worker_index = tfvq.training.worker_index(strategy)
    chief = worker_index == 0
    os.makedirs(workdir, exist_ok=True)
    logging.info("Strategy %s with %d replica(s)", type(strategy).__name__,
                 strategy.num_replicas_in_sync)

    image_shape, variance, train, test, (train_split, test_split) = _data(config)
    samples = next(iter(test))[:16]

    def build(jit_compile):
        model = build_model(config, image_shape, variance)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                      jit_compile=jit_compile)
        return model

    jit_compile = choose_jit_compile(config, strategy, build, train)

    model, history, train_seconds = common_flags.fit_resumable(
        lambda: build(jit_compile), train, config.epochs, workdir,
        steps_per_epoch=config.steps_per_epoch,
        strategy=strategy, validation_data=test, verbose=1,
        callbacks=lambda model: tfvq.training.default_callbacks(
            workdir, model, samples, worker_index=worker_index))
    # evaluate is a collective under a multi-worker strategy: every worker runs it.
    results = model.evaluate(test, return_dict=True, verbose=1)
    fingerprint = weights_fingerprint(model)
    logging.info("Worker %d final weights sha256 %s", worker_index, fingerprint)

    steps_run = int(model.optimizer.iterations.numpy())
    metrics = {
        "model": config.model,
        "dataset": config.dataset,
        "image_shape": list(image_shape),
        "train_split": train_split,
        "test_split": test_split,
        "test": {key: float(np.mean(value)) for key, value in results.items()},
        "data_variance": variance,
        "steps": steps_run,
        "global_batch_size": config.batch_size,
        "replicas": strategy.num_replicas_in_sync,
        "workers": num_workers,
        "weights_sha256": fingerprint,
        "jit_compile": jit_compile,
        "dtype_policy": config.dtype_policy,
        "wall_time_s_this_run": round(train_seconds, 1),
        "images_per_s_this_run": None,
        "parameters": model.count_params(),
    }
    epochs_run = len(history.get("loss", []))
    if config.steps_per_epoch and epochs_run and train_seconds > 0:
        # Includes validation and callbacks: a floor on training throughput.
        metrics["images_per_s_this_run"] = round(
            config.batch_size * config.steps_per_epoch * epochs_run / train_seconds, 1)
    if not chief:
        return metrics

    # The pictures come from a plain forward pass on this machine: `predict` would be a
    # collective that the other workers, already done, would never join.
    recon = keras.ops.convert_to_numpy(model(samples, training=False))
    tfvq.plots.reconstruction_grid(np.asarray(samples), recon, n=16,
                                   path=os.path.join(workdir, "reconstructions.png"))
    tfvq.plots.training_curves(common_flags.read_history(common_flags.history_csv(workdir)),
                               path=os.path.join(workdir, "training_curves.png"))
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    logging.info("Test metrics: %s", json.dumps(metrics["test"]))
    print(json.dumps(metrics, indent=2))
    return metrics


def main(argv):
    del argv
    train_and_evaluate(common_flags.config_from_flags(Config), FLAGS.output_dir)


if __name__ == "__main__":
    define_flags()
    app.run(main)
