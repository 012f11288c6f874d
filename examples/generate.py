"""Trains (or loads) a VQ-VAE and a PixelCNN prior over its codes, then samples and measures.

    python examples/generate.py --dataset=mnist --output_dir=runs/generate

Writes into --output_dir: samples.png (codes drawn from the prior, decoded), interpolation.png
(test pairs blended in the pre-quantization space), reconstructions.png, metrics.json (test
bits/dim of VQ-VAE + prior and its parts, the prior's validation accuracy and NLL next to the
keras.io VQ-VAE example's 0.673 (on the test codes, and with --prior_holdout also on the
held-out training codes keras.io measures on), the test codes' perplexity and usage and the
accuracy of always guessing the most frequent training code, sampling time), the two models
(vqvae.keras, prior.keras) and their histories (history_vqvae.csv, history_prior.csv). Each
model trains as a stage of its own: run the script again with the same --output_dir and an
interrupted stage resumes from its last finished epoch (in backup_vqvae/ or backup_prior/), a
finished one is loaded instead of trained again. `train_and_evaluate(config, workdir)` is the
whole job, for tests and notebooks.
"""

import dataclasses
import functools
import json
import math
import os
import time

from absl import app, flags

import common_flags

KERAS_IO_PRIOR_VAL_ACCURACY = 0.673  # keras.io "Vector-Quantized VAE" example, MNIST, 30 epochs


@dataclasses.dataclass
class Config:
    """The job's settings; every field is also a command-line flag of the same name."""

    dataset: str = "mnist"
    data_dir: str = None
    batch_size: int = 128
    vqvae_epochs: int = 3
    vqvae_steps_per_epoch: int = 200
    prior_epochs: int = 6
    prior_steps_per_epoch: int = 150
    num_embeddings: int = 128
    embedding_dim: int = 16
    architecture: str = "paper"
    hidden_channels: int = 32
    kmeans_init: bool = True
    dead_code_threshold: float = 1.0
    prior_channels: int = 64
    prior_layers: int = 6
    prior_schedule: str = "constant"
    prior_weight_decay: float = 0.0
    prior_dropout: float = 0.0
    prior_holdout: float = 0.0
    class_conditional: bool = False
    num_samples: int = 32
    temperature: float = 1.0
    train_examples: int = 0
    eval_examples: int = 2000
    learning_rate: float = 1e-3
    seed: int = 0


FLAGS = flags.FLAGS
ARCHITECTURES = ("paper", "keras_io")
PRIOR_SCHEDULES = ("constant", "cosine")


def define_flags():
    """The command line: one flag per `Config` field, plus --output_dir (defined when run)."""
    common_flags.define(
        Config, ["dataset", "data_dir", "output_dir", "batch_size", "num_embeddings",
                 "embedding_dim", "hidden_channels", "train_examples", "eval_examples",
                 "learning_rate", "seed"],
        output_dir="runs/generate",
        choices={"dataset": ["mnist", "fashion_mnist", "cifar10"]},
        helps={"batch_size": "Batch size of both trainings.",
               "num_embeddings": "Codebook size K (keras.io's MNIST example: 128).",
               "embedding_dim": "Code size D (keras.io: 16).",
               "hidden_channels": "Width of the VQ-VAE conv stacks.",
               "eval_examples": "Test images for bits/dim (0: the whole split).",
               "learning_rate": "Adam learning rate of both models."})
    flags.adopt_module_key_flags(common_flags)  # listed by --help as the script's own
    flags.DEFINE_enum("architecture", Config.architecture, ARCHITECTURES,
                      "VQ-VAE conv stacks. paper: tfvq's ConvEncoder / ConvDecoder (4x4 "
                      "stride-2 convs, a 3x3 conv and a residual block; each code sees 26 x 26 "
                      "pixels). keras_io: the keras.io example's (3x3 stride-2 convs; 7 x 7 "
                      "pixels), whose local codes a prior predicts better.")
    flags.DEFINE_integer("vqvae_epochs", Config.vqvae_epochs, "VQ-VAE training epochs.")
    flags.DEFINE_integer("vqvae_steps_per_epoch", Config.vqvae_steps_per_epoch,
                         "VQ-VAE steps per epoch (0: whole split).")
    flags.DEFINE_integer("prior_epochs", Config.prior_epochs,
                         "Prior training epochs (keras.io trains 30).")
    flags.DEFINE_integer("prior_steps_per_epoch", Config.prior_steps_per_epoch,
                         "Prior steps per epoch (0: all codes).")
    flags.DEFINE_bool("kmeans_init", Config.kmeans_init,
                      "k-means codebook initialisation on the first training batch.")
    flags.DEFINE_float("dead_code_threshold", Config.dead_code_threshold,
                       "Re-seed codes used by fewer than this many vectors per batch (EMA of "
                       "usage); 0 disables. Restarts spread the codes, which raises perplexity "
                       "and makes them harder for the prior to predict.")
    flags.DEFINE_integer("prior_channels", Config.prior_channels, "Width of the PixelCNN prior.")
    flags.DEFINE_integer("prior_layers", Config.prior_layers, "Gated blocks of the prior.")
    flags.DEFINE_enum("prior_schedule", Config.prior_schedule, PRIOR_SCHEDULES,
                      "The prior's learning rate over its training: constant, or cosine decay "
                      "from --learning_rate to 0 at the last step.")
    flags.DEFINE_float("prior_weight_decay", Config.prior_weight_decay,
                       "Decoupled weight decay of the prior's optimizer (AdamW); 0: Adam.")
    flags.DEFINE_float("prior_dropout", Config.prior_dropout,
                       "Dropout rate in each gated block of the prior, in training only.")
    flags.DEFINE_float("prior_holdout", Config.prior_holdout,
                       "Fraction of the training images whose codes the prior does not train "
                       "on, the last ones of the split, as keras.io's validation_split; the "
                       "prior's accuracy on them is reported next to the test split's. 0: the "
                       "prior trains on all of them.")
    flags.DEFINE_bool("class_conditional", Config.class_conditional,
                      "Condition the prior on the class label.")
    flags.DEFINE_integer("num_samples", Config.num_samples, "Images to sample for samples.png.")
    flags.DEFINE_float("temperature", Config.temperature, "Sampling temperature of the prior.")


def keras_io_networks(image_shape, embedding_dim, hidden_channels):
    """The keras.io VQ-VAE example's conv stacks, as (encoder, decoder) for `tfvq.VQVAE`.

    Conv2D(hidden / 2, 3, stride 2, ReLU), Conv2D(hidden, 3, stride 2, ReLU), Conv2D(D, 1), and
    their mirror with transposed convs (keras.io: hidden 64). Each code sees 7 x 7 pixels, against
    26 x 26 for tfvq's default stacks, so most codes describe a local piece of stroke or
    background that a PixelCNN prior can predict from its neighbours. The inputs are centred
    here, as tfvq's own encoders centre theirs (the decoder's output is read as the offset from
    mid-gray either way). Plain Keras layers: tfvq's `ConvEncoder` has no 3x3-stride setting, and
    `VQVAE(encoder=, decoder=)` is the place for other networks.

    Args:
        image_shape: (height, width, channels), height and width divisible by 4.
        embedding_dim: channels of the latent map (the quantizer's `embedding_dim`).
        hidden_channels: width of the second conv (the first has half).

    Returns:
        (encoder, decoder), two `keras.Sequential` models.

    Example:
    >>> encoder, decoder = keras_io_networks((28, 28, 1), 16, 64)
    >>> tuple(encoder.output_shape), tuple(decoder.output_shape)
    ((None, 7, 7, 16), (None, 28, 28, 1))
    """
    import keras
    from keras import layers

    import tfvq

    height, width, channels = image_shape
    if height % 4 or width % 4:
        raise ValueError(f"keras_io_networks expects height and width divisible by 4; got "
                         f"image_shape {tuple(image_shape)}")
    half = max(hidden_channels // 2, 1)
    encoder = keras.Sequential([
        keras.Input(image_shape),
        layers.Rescaling(1.0, offset=-tfvq.losses.MID_GRAY),
        layers.Conv2D(half, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(hidden_channels, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(embedding_dim, 1)], name="encoder")
    decoder = keras.Sequential([
        keras.Input((height // 4, width // 4, embedding_dim)),
        layers.Conv2DTranspose(hidden_channels, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(half, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(channels, 3, padding="same")], name="decoder")
    return encoder, decoder


def build_vqvae(config, image_shape, data_variance):
    import keras

    import tfvq

    encoder = decoder = None  # None: VQVAE's own (the paper stacks)
    if config.architecture == "keras_io":
        encoder, decoder = keras_io_networks(image_shape, config.embedding_dim,
                                             config.hidden_channels)
    model = tfvq.VQVAE(image_shape, num_embeddings=config.num_embeddings,
                       embedding_dim=config.embedding_dim, hidden_channels=config.hidden_channels,
                       residual_channels=config.hidden_channels // 2, num_residual_layers=1,
                       quantizer="ema", data_variance=data_variance,
                       quantizer_options=dict(kmeans_init=config.kmeans_init,
                                              dead_code_threshold=config.dead_code_threshold),
                       encoder=encoder, decoder=decoder)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    return model


def build_prior(config, num_embeddings, latent_shape, num_classes, total_steps=None):
    """The compiled prior; `total_steps` (the whole training's) sizes a cosine schedule."""
    import keras

    import tfvq

    prior = tfvq.PixelCNNPrior(num_embeddings, latent_shape, hidden_channels=config.prior_channels,
                               num_layers=config.prior_layers, num_classes=num_classes,
                               dropout=config.prior_dropout)
    learning_rate = config.learning_rate
    if config.prior_schedule == "cosine":
        if not total_steps:
            raise ValueError("prior_schedule='cosine' needs the training's total_steps")
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, total_steps)
    elif config.prior_schedule != "constant":
        raise ValueError(f"prior_schedule must be one of {PRIOR_SCHEDULES}; got "
                         f"{config.prior_schedule!r}")
    if config.prior_weight_decay:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=config.prior_weight_decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    prior.compile(optimizer=optimizer)
    return prior


def _code_array(codes_ds, labelled):
    """All the code maps of a `codes_dataset`, as one NumPy array."""
    import numpy as np

    return np.concatenate([(element[0] if labelled else element).numpy()
                           for element in codes_ds])


def _prior_splits(config, train, train_size):
    """`(prior_images, holdout, held)`: the images whose codes the prior trains on, those it
    is validated on (or None), and how many are held out.

    Without a holdout that is `train` itself, and none held out. With one, the first
    `int(n * (1 - prior_holdout))` images of the split train the prior and the rest are held
    out, both read in the split's order (the prior's codes are shuffled afterwards): keras.io's
    `validation_split` does the same arithmetic and also holds out the last images of its
    training array.
    """
    import tfvq

    if not config.prior_holdout:
        return train, None, 0
    if not 0.0 < config.prior_holdout < 1.0:
        raise ValueError(f"prior_holdout must be in [0, 1); got {config.prior_holdout}")
    kept = int(train_size * (1.0 - config.prior_holdout))
    held = train_size - kept
    if not 1 <= held < train_size:
        raise ValueError(f"prior_holdout={config.prior_holdout} of {train_size} training images "
                         f"holds out {held}: at least one must be held out and one kept")
    load = functools.partial(tfvq.data.load, config.dataset, batch_size=config.batch_size,
                             data_dir=config.data_dir, shuffle=False,
                             with_labels=config.class_conditional)
    return load(f"train[:{kept}]"), load(f"train[{kept}:{train_size}]"), held


def _holdout_metrics(prior, holdout_codes, held):
    """The prior's accuracy and NLL on the `held` held-out training images' codes, if any."""
    if holdout_codes is None:
        return {}
    scores = prior.evaluate(holdout_codes, return_dict=True, verbose=0)
    return {"prior_holdout_accuracy": float(scores["accuracy"]),
            "prior_holdout_nll_nats_per_code": float(scores["loss"]),
            "prior_holdout_examples": held}


def train_and_evaluate(config, workdir):
    """Trains (or resumes, or loads) both models, samples, measures, and writes to `workdir`.

    Args:
        config: a `Config`.
        workdir: the output folder; a rerun with the same folder resumes.

    Returns:
        The metrics dict written to `workdir/metrics.json`.
    """
    import keras
    import numpy as np

    import tfvq

    keras.utils.set_random_seed(config.seed)
    os.makedirs(workdir, exist_ok=True)
    info = tfvq.data.info(config.dataset, data_dir=config.data_dir)
    variance = tfvq.data.pixel_variance(config.dataset, "train", data_dir=config.data_dir,
                                        max_examples=10_000)
    labelled = config.class_conditional
    train_split = f"train[:{config.train_examples}]" if config.train_examples else "train"
    train = tfvq.data.load(config.dataset, train_split, config.batch_size,
                           data_dir=config.data_dir, seed=config.seed, with_labels=labelled)
    test_split = f"test[:{config.eval_examples}]" if config.eval_examples else "test"
    test = tfvq.data.load(config.dataset, test_split, config.batch_size,
                          data_dir=config.data_dir, with_labels=labelled)

    # Before any training, so that a bad --prior_holdout fails at once.
    train_size = info.num_examples["train"]
    if config.train_examples:
        train_size = min(config.train_examples, train_size)
    prior_images, holdout, held = _prior_splits(config, train, train_size)

    vqvae, _, vqvae_seconds = common_flags.fit_resumable(
        lambda: build_vqvae(config, info.image_shape, variance), train, config.vqvae_epochs,
        workdir, stage="vqvae", steps_per_epoch=config.vqvae_steps_per_epoch,
        validation_data=test, verbose=2)
    vqvae_test = vqvae.evaluate(test, return_dict=True, verbose=0)

    # The prior trains on the codes of the training split and is validated on the test split's
    # codes; with --prior_holdout it trains on the first part of the training split and is
    # validated on the rest, as keras.io's validation_split=0.1 does.
    start = time.time()
    train_codes = tfvq.models.codes_dataset(vqvae, prior_images)
    test_codes = tfvq.models.codes_dataset(vqvae, test)
    holdout_codes = None if holdout is None else tfvq.models.codes_dataset(vqvae, holdout)
    encode_seconds = time.time() - start
    # Perplexity and usage of the test codes, and the accuracy of always guessing the training
    # codes' most frequent one: the floor the prior's accuracy is read against.
    test_code_stats = tfvq.metrics.summarize_codes(
        _code_array(test_codes, labelled), vqvae.num_embeddings,
        reference=_code_array(train_codes, labelled))
    train_codes = train_codes.unbatch().shuffle(10_000, seed=config.seed).batch(config.batch_size)
    num_classes = len(info.class_names) if labelled else None
    spec = train_codes.element_spec
    latent_shape = tuple(int(d) for d in (spec[0] if labelled else spec).shape[1:])
    prior_steps = config.prior_steps_per_epoch or math.ceil((train_size - held)
                                                            / config.batch_size)
    prior, _, prior_seconds = common_flags.fit_resumable(
        lambda: build_prior(config, vqvae.num_embeddings, latent_shape, num_classes,
                            total_steps=config.prior_epochs * prior_steps),
        train_codes, config.prior_epochs, workdir, stage="prior",
        steps_per_epoch=config.prior_steps_per_epoch,
        validation_data=test_codes if holdout_codes is None else holdout_codes, verbose=2)
    prior_val = prior.evaluate(test_codes, return_dict=True, verbose=0)

    bpd = tfvq.metrics.bits_per_dim(vqvae, test, prior=prior, return_terms=True)

    # Sampling: one row per class for a conditional prior, else free samples.
    labels = None
    if labelled:
        per_class = max(config.num_samples // len(info.class_names), 1)
        labels = np.repeat(np.arange(len(info.class_names)), per_class).astype("int32")
    n = len(labels) if labels is not None else config.num_samples
    prior.sample(1, seed=config.seed, labels=None if labels is None else labels[:1])  # compile
    start = time.time()
    codes = prior.sample(n, seed=config.seed, temperature=config.temperature, labels=labels)
    sample_seconds = time.time() - start
    samples = keras.ops.convert_to_numpy(vqvae.decode_indices(codes))
    tfvq.plots.image_grid(samples, nrows=len(info.class_names) if labelled else None,
                          title=f"VQ-VAE + PixelCNN prior samples ({config.dataset})",
                          path=os.path.join(workdir, "samples.png"))

    images = next(iter(test))
    images = np.asarray(images[0] if labelled else images)
    pairs = 6
    strips = tfvq.models.interpolate(vqvae, images[:pairs], images[pairs:2 * pairs], steps=8)
    tfvq.plots.interpolation_strip(keras.ops.convert_to_numpy(strips),
                                   path=os.path.join(workdir, "interpolation.png"))
    tfvq.plots.reconstruction_grid(images[:16], vqvae.predict(images[:16], verbose=0), n=16,
                                   path=os.path.join(workdir, "reconstructions.png"))

    metrics = {
        "dataset": config.dataset,
        "test_examples": bpd["num_images"],
        "bits_per_dim": bpd["bits_per_dim"],
        "bits_per_dim_terms": bpd,
        "bits_per_dim_note": "upper bound on -log2 p(x)/dims: -log p(x|z_q) (discretized "
                             "Gaussian, scale fitted) - log p(z_q) under the prior",
        "prior_val_accuracy": float(prior_val["accuracy"]),
        "prior_val_nll_nats_per_code": float(prior_val["loss"]),
        **_holdout_metrics(prior, holdout_codes, held),
        "test_codes": test_code_stats,
        "keras_io_prior_val_accuracy": KERAS_IO_PRIOR_VAL_ACCURACY,
        "vqvae_test": {key: float(np.mean(value)) for key, value in vqvae_test.items()},
        "sampling_seconds": round(sample_seconds, 3),
        "samples": n,
        "train_seconds": {"vqvae": round(vqvae_seconds, 1), "encode": round(encode_seconds, 1),
                          "prior": round(prior_seconds, 1)},
        "config": dataclasses.asdict(config),
    }
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(json.dumps(metrics, indent=2))
    return metrics


def main(argv):
    del argv
    train_and_evaluate(common_flags.config_from_flags(Config), FLAGS.output_dir)


if __name__ == "__main__":
    define_flags()
    app.run(main)
