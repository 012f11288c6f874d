"""Trains (or loads) a VQ-VAE and a PixelCNN prior over its codes, then samples and measures.

    python examples/generate.py --dataset=mnist --output_dir=runs/generate

Writes into --output_dir: samples.png (codes drawn from the prior, decoded), interpolation.png
(test pairs blended in the pre-quantization space), reconstructions.png, metrics.json (test
bits/dim of VQ-VAE + prior and its parts, the prior's validation accuracy and NLL next to the
keras.io VQ-VAE example's 0.673, sampling time), and the two models (vqvae.keras,
prior.keras). A second run with the same --output_dir loads the saved models instead of
training them again; an interrupted training resumes from its last finished epoch.
"""

import json
import os
import time

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "mnist", ["mnist", "fashion_mnist", "cifar10"], "tfds dataset.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR).")
flags.DEFINE_string("output_dir", "runs/generate", "Where pictures, metrics and models go.")
flags.DEFINE_integer("batch_size", 128, "Batch size of both trainings.")
flags.DEFINE_integer("vqvae_epochs", 3, "VQ-VAE training epochs.")
flags.DEFINE_integer("vqvae_steps_per_epoch", 200, "VQ-VAE steps per epoch (0: whole split).")
flags.DEFINE_integer("prior_epochs", 6, "Prior training epochs (keras.io trains 30).")
flags.DEFINE_integer("prior_steps_per_epoch", 150, "Prior steps per epoch (0: all codes).")
flags.DEFINE_integer("num_embeddings", 128, "Codebook size K (keras.io's MNIST example: 128).")
flags.DEFINE_integer("embedding_dim", 16, "Code size D (keras.io: 16).")
flags.DEFINE_integer("hidden_channels", 32, "Width of the VQ-VAE conv stacks.")
flags.DEFINE_integer("prior_channels", 64, "Width of the PixelCNN prior.")
flags.DEFINE_integer("prior_layers", 6, "Gated blocks of the prior.")
flags.DEFINE_bool("class_conditional", False, "Condition the prior on the class label.")
flags.DEFINE_integer("num_samples", 32, "Images to sample for samples.png.")
flags.DEFINE_float("temperature", 1.0, "Sampling temperature of the prior.")
flags.DEFINE_integer("train_examples", 0, "Training images (0: the whole split).")
flags.DEFINE_integer("eval_examples", 2000, "Test images for bits/dim (0: the whole split).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate of both models.")
flags.DEFINE_integer("seed", 0, "Random seed.")

KERAS_IO_PRIOR_VAL_ACCURACY = 0.673  # keras.io "Vector-Quantized VAE" example, MNIST, 30 epochs


def _fit(model, train, epochs, steps, validation, output_dir, name):
    """`model.fit` that resumes after an interruption and logs the whole history to CSV."""
    import keras

    train = train.repeat() if steps else train
    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(output_dir, f"backup_{name}")),
        keras.callbacks.CSVLogger(os.path.join(output_dir, f"history_{name}.csv"), append=True),
        keras.callbacks.TerminateOnNaN(),
    ]
    start = time.time()
    model.fit(train, epochs=epochs, steps_per_epoch=steps or None, validation_data=validation,
              callbacks=callbacks, verbose=2)
    return time.time() - start


def _vqvae(info, variance, train, test, output_dir):
    import keras

    import tfvq

    path = os.path.join(output_dir, "vqvae.keras")
    if os.path.exists(path):
        logging.info("Loading %s", path)
        return keras.models.load_model(path), 0.0
    model = tfvq.VQVAE(info.image_shape, num_embeddings=FLAGS.num_embeddings,
                       embedding_dim=FLAGS.embedding_dim, hidden_channels=FLAGS.hidden_channels,
                       residual_channels=FLAGS.hidden_channels // 2, num_residual_layers=1,
                       quantizer="ema", data_variance=variance,
                       quantizer_options=dict(kmeans_init=True, dead_code_threshold=1.0))
    model.compile(optimizer=keras.optimizers.Adam(FLAGS.learning_rate))
    seconds = _fit(model, train, FLAGS.vqvae_epochs, FLAGS.vqvae_steps_per_epoch, test,
                   output_dir, "vqvae")
    model.save(path)
    return model, seconds


def _prior(vqvae, num_classes, train_codes, test_codes, output_dir):
    import keras

    import tfvq

    path = os.path.join(output_dir, "prior.keras")
    if os.path.exists(path):
        logging.info("Loading %s", path)
        return keras.models.load_model(path), 0.0
    spec = train_codes.element_spec
    latent_shape = tuple(int(d) for d in (spec[0] if num_classes else spec).shape[1:])
    prior = tfvq.PixelCNNPrior(vqvae.num_embeddings, latent_shape,
                               hidden_channels=FLAGS.prior_channels, num_layers=FLAGS.prior_layers,
                               num_classes=num_classes)
    prior.compile(optimizer=keras.optimizers.Adam(FLAGS.learning_rate))
    seconds = _fit(prior, train_codes, FLAGS.prior_epochs, FLAGS.prior_steps_per_epoch,
                   test_codes, output_dir, "prior")
    prior.save(path)
    return prior, seconds


def main(argv):
    del argv
    import keras
    import numpy as np

    import tfvq

    keras.utils.set_random_seed(FLAGS.seed)
    out = FLAGS.output_dir
    os.makedirs(out, exist_ok=True)
    info = tfvq.data.info(FLAGS.dataset, data_dir=FLAGS.data_dir)
    variance = tfvq.data.pixel_variance(FLAGS.dataset, "train", data_dir=FLAGS.data_dir,
                                        max_examples=10_000)
    labelled = FLAGS.class_conditional
    train_split = f"train[:{FLAGS.train_examples}]" if FLAGS.train_examples else "train"
    train = tfvq.data.load(FLAGS.dataset, train_split, FLAGS.batch_size, data_dir=FLAGS.data_dir,
                           seed=FLAGS.seed, with_labels=labelled)
    test_split = f"test[:{FLAGS.eval_examples}]" if FLAGS.eval_examples else "test"
    test = tfvq.data.load(FLAGS.dataset, test_split, FLAGS.batch_size, data_dir=FLAGS.data_dir,
                          with_labels=labelled)

    vqvae, vqvae_seconds = _vqvae(info, variance, train, test, out)
    vqvae_test = vqvae.evaluate(test, return_dict=True, verbose=0)

    # The prior trains on the codes of the training split and is validated on the test split's
    # codes (keras.io holds out 10% of the training codes instead).
    start = time.time()
    train_codes = tfvq.models.codes_dataset(vqvae, train)
    test_codes = tfvq.models.codes_dataset(vqvae, test)
    encode_seconds = time.time() - start
    train_codes = train_codes.unbatch().shuffle(10_000, seed=FLAGS.seed).batch(FLAGS.batch_size)
    num_classes = len(info.class_names) if labelled else None
    prior, prior_seconds = _prior(vqvae, num_classes, train_codes, test_codes, out)
    prior_val = prior.evaluate(test_codes, return_dict=True, verbose=0)

    bpd = tfvq.metrics.bits_per_dim(vqvae, test, prior=prior, return_terms=True)

    # Sampling: one row per class for a conditional prior, else free samples.
    labels = None
    if labelled:
        per_class = max(FLAGS.num_samples // len(info.class_names), 1)
        labels = np.repeat(np.arange(len(info.class_names)), per_class).astype("int32")
    n = len(labels) if labels is not None else FLAGS.num_samples
    prior.sample(1, seed=FLAGS.seed, labels=None if labels is None else labels[:1])  # compile
    start = time.time()
    codes = prior.sample(n, seed=FLAGS.seed, temperature=FLAGS.temperature, labels=labels)
    sample_seconds = time.time() - start
    samples = keras.ops.convert_to_numpy(vqvae.decode_indices(codes))
    tfvq.plots.image_grid(samples, nrows=len(info.class_names) if labelled else None,
                          title=f"VQ-VAE + PixelCNN prior samples ({FLAGS.dataset})",
                          path=os.path.join(out, "samples.png"))

    images = next(iter(test))
    images = np.asarray(images[0] if labelled else images)
    pairs = 6
    strips = tfvq.models.interpolate(vqvae, images[:pairs], images[pairs:2 * pairs], steps=8)
    tfvq.plots.interpolation_strip(keras.ops.convert_to_numpy(strips),
                                   path=os.path.join(out, "interpolation.png"))
    tfvq.plots.reconstruction_grid(images[:16], vqvae.predict(images[:16], verbose=0), n=16,
                                   path=os.path.join(out, "reconstructions.png"))

    metrics = {
        "dataset": FLAGS.dataset,
        "test_examples": bpd["num_images"],
        "bits_per_dim": bpd["bits_per_dim"],
        "bits_per_dim_terms": bpd,
        "bits_per_dim_note": "upper bound on -log2 p(x)/dims: -log p(x|z_q) (discretized "
                             "Gaussian, scale fitted) - log p(z_q) under the prior",
        "prior_val_accuracy": float(prior_val["accuracy"]),
        "prior_val_nll_nats_per_code": float(prior_val["loss"]),
        "keras_io_prior_val_accuracy": KERAS_IO_PRIOR_VAL_ACCURACY,
        "vqvae_test": {key: float(np.mean(value)) for key, value in vqvae_test.items()},
        "sampling_seconds": round(sample_seconds, 3),
        "samples": n,
        "train_seconds": {"vqvae": round(vqvae_seconds, 1), "encode": round(encode_seconds, 1),
                          "prior": round(prior_seconds, 1)},
        "flags": {name: FLAGS[name].value for name in (
            "train_examples", "batch_size", "vqvae_epochs", "vqvae_steps_per_epoch", "prior_epochs",
            "prior_steps_per_epoch", "num_embeddings", "embedding_dim", "hidden_channels",
            "prior_channels", "prior_layers", "class_conditional", "temperature", "seed")},
    }
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    app.run(main)
