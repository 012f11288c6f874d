"""Seed 000: AE vs VAE vs VQ-VAE on CIFAR-10 at a matched latent budget, placed on the paper's
bits/dim ladder.

    python examples/experiments/compare_models.py --output_dir=runs/experiments/compare_models

Latent budget, in bits per image: the VQ-VAE sends an 8x8 map of indices into a codebook of
--num_embeddings=512, 64 * log2(512) = 576 bits. The AE and the VAE get a flat latent of
576 / --float_bits floats (18 at 32-bit floats), so that each stores at most 576 bits per image.
Nominal budgets are upper bounds: the VAE's actual rate is its KL term (reported, in bits) and
the VQ-VAE's is the PixelCNN prior's code length (reported too). All three share the conv stacks
(--hidden_channels, two stride-2 stages, --num_residual_layers residual blocks).

Reported on the test split: MSE, PSNR, SSIM (tf.image.ssim) for all three; bits/dim, an upper
bound on -log2 p(x) per dimension from `tfvq.metrics.bits_per_dim`, for the VAE (ELBO with its
discretized-logistic decoder, plus the importance-weighted bound with --iwae_samples) and for
the VQ-VAE (-log p(x|z) with a discretized Gaussian of fitted scale around its MSE decoder, plus
-log p(z) under a PixelCNN prior trained on its training codes). An AE defines no p(x).
The VQ-VAE paper's ladder (van den Oord et al. 2017, section 4.2, CIFAR-10, far larger
training budget): VAE 4.51, VQ-VAE 4.67, VIMCO 5.14 bits/dim.
Writes results.json, reconstructions.png (original and the three models, side by side) and
samples.png (VAE prior samples, VQ-VAE prior samples).

The defaults fit the 10 CPU-minute budget on 2 cores (11.7 CPU-minutes with 600 prior steps
and all 10,000 test images, 2026-12-02, Intel Xeon); --prior_steps=600 --test_examples=10000
is that earlier setting. Larger settings: --steps=20000 --prior_steps=20000
--hidden_channels=128 --test_examples=10000 (the paper's width; hours on a CPU).
"""

from absl import app, flags

import common

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/experiments/compare_models", "Where the JSON and PNGs go.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR).")
flags.DEFINE_list("models", ["ae", "vae", "vqvae"], "Models to compare.")
flags.DEFINE_integer("steps", 600, "Training steps per model.")
flags.DEFINE_integer("prior_steps", 400, "PixelCNN prior training steps (VQ-VAE bits/dim).")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("hidden_channels", 64, "Width of the conv stacks (the paper: 128).")
flags.DEFINE_integer("residual_channels", 32, "Inner width of the residual blocks.")
flags.DEFINE_integer("num_residual_layers", 2, "Residual blocks per stack.")
flags.DEFINE_integer("num_embeddings", 512, "VQ-VAE codebook size K.")
flags.DEFINE_integer("embedding_dim", 64, "VQ-VAE code size D.")
flags.DEFINE_integer("float_bits", 32, "Bits per AE / VAE latent float when matching budgets.")
flags.DEFINE_integer("prior_channels", 64, "PixelCNN prior width.")
flags.DEFINE_integer("prior_layers", 8, "PixelCNN prior gated blocks.")
flags.DEFINE_integer("iwae_samples", 16,
                     "Samples of the VAE's importance-weighted bound (0: skip).")
flags.DEFINE_integer("train_examples", 50000, "Training images (first of the split).")
flags.DEFINE_integer("test_examples", 5000, "Test images evaluated.")
flags.DEFINE_integer("seed", 0, "Random seed.")

PAPER_BITS_PER_DIM = {"VAE": 4.51, "VQ-VAE": 4.67, "VIMCO": 5.14}


def main(argv):
    del argv
    import math

    import keras
    import numpy as np
    import tensorflow as tf

    import tfvq

    run = common.Run(FLAGS.output_dir, FLAGS.seed)
    train_x, _ = common.load_arrays("cifar10", "train", FLAGS.data_dir, FLAGS.train_examples)
    test_x, _ = common.load_arrays("cifar10", "test", FLAGS.data_dir, FLAGS.test_examples)
    shape = train_x.shape[1:]
    variance = float(np.var(np.asarray(tfvq.data.to_unit(train_x[:10000]))))
    conv = dict(hidden_channels=FLAGS.hidden_channels, residual_channels=FLAGS.residual_channels,
                num_residual_layers=FLAGS.num_residual_layers, downsample_stages=2)
    code_side = shape[0] // 4
    budget_bits = code_side * code_side * math.log2(FLAGS.num_embeddings)
    latent_dim = max(1, int(round(budget_bits / FLAGS.float_bits)))
    test_ds = tf.data.Dataset.from_tensor_slices(test_x).batch(500)
    dims = int(np.prod(shape))

    models, results, rows, samples = {}, {}, [test_x[:10]], []
    float_budget = {"latent": f"{latent_dim} floats",
                    "nominal_bits": latent_dim * FLAGS.float_bits}
    for name in FLAGS.models:
        keras.utils.set_random_seed(FLAGS.seed)
        if name == "ae":
            model = tfvq.AE(shape, latent_dim=latent_dim, data_variance=variance, **conv)
            budget = dict(float_budget)
        elif name == "vae":
            model = tfvq.VAE(shape, latent_dim=latent_dim, reconstruction_loss="logistic",
                             seed=FLAGS.seed, **conv)
            budget = dict(float_budget)
        elif name == "vqvae":
            model = tfvq.VQVAE(shape, num_embeddings=FLAGS.num_embeddings,
                               embedding_dim=FLAGS.embedding_dim, data_variance=variance,
                               quantizer_options=dict(kmeans_init=True, dead_code_threshold=1.0),
                               **conv)
            budget = {"latent": f"{code_side}x{code_side} codes of {FLAGS.num_embeddings}",
                      "nominal_bits": budget_bits}
        else:
            raise ValueError(f"--models must be among ae, vae, vqvae; got {name!r}")
        start = run.elapsed()
        history = common.fit_steps(model, train_x, FLAGS.steps, FLAGS.batch_size, FLAGS.seed,
                                   FLAGS.learning_rate)
        entry = {"train_seconds": round(run.elapsed() - start, 1),
                 "final_train_loss": float(history["loss"][-1]),
                 "parameters": model.count_params(), "latent_budget": budget}
        recon = common.predict(lambda x: model(x), test_x)
        entry.update({f"test_{k}": v for k, v in common.image_metrics(test_x, recon).items()})
        rows.append(recon[:10])

        if name == "vae":
            terms = tfvq.metrics.bits_per_dim(model, test_ds, seed=FLAGS.seed, return_terms=True)
            entry["bits_per_dim"] = terms["bits_per_dim"]
            entry["bits_per_dim_terms"] = terms
            # The KL term is the information the posterior actually carries about x.
            entry["latent_budget"]["measured_rate_bits"] = terms["kl_bits_per_dim"] * dims
            if FLAGS.iwae_samples > 1:
                entry["bits_per_dim_iwae"] = tfvq.metrics.bits_per_dim(
                    model, test_ds, num_samples=FLAGS.iwae_samples, seed=FLAGS.seed)
                entry["iwae_samples"] = FLAGS.iwae_samples
            samples.append(np.asarray(model.sample(10, seed=FLAGS.seed)))
        if name == "vqvae":
            start = run.elapsed()
            codes = common.predict(model.encode_to_indices, train_x)
            prior = tfvq.PixelCNNPrior(FLAGS.num_embeddings, codes.shape[1:],
                                       hidden_channels=FLAGS.prior_channels,
                                       num_layers=FLAGS.prior_layers)
            prior_history = common.fit_steps(prior, codes, FLAGS.prior_steps, FLAGS.batch_size,
                                             FLAGS.seed, FLAGS.learning_rate)
            terms = tfvq.metrics.bits_per_dim(model, test_ds, prior=prior, return_terms=True)
            entry["bits_per_dim"] = terms["bits_per_dim"]
            entry["bits_per_dim_terms"] = terms
            entry["latent_budget"]["measured_rate_bits"] = terms["prior_bits_per_dim"] * dims
            entry["prior"] = {"train_seconds": round(run.elapsed() - start, 1),
                              "final_train_nll_nats_per_code": float(prior_history["loss"][-1]),
                              "parameters": prior.count_params()}
            test_codes = common.predict(model.encode_to_indices, test_x)
            entry["test_code_perplexity"] = tfvq.metrics.summarize_codes(
                test_codes, FLAGS.num_embeddings)["perplexity"]
            samples.append(np.asarray(model.sample(10, prior, seed=FLAGS.seed)))
        results[name] = entry
        models[name] = model

    images = np.concatenate([np.asarray(tfvq.data.to_unit(r)) for r in rows])
    names = ["original"] + list(FLAGS.models)
    titles = [n if i == 0 else "" for n in names for i in range(10)]
    # A figure title also leaves room above the first row's label.
    tfvq.plots.image_grid(images, nrows=len(names), titles=titles, cell_size=1.0,
                          title="CIFAR-10 test images and their reconstructions",
                          path=run.path("reconstructions.png"))
    figures = ["reconstructions.png"]
    if samples:
        sampled = [n for n in FLAGS.models if n in ("vae", "vqvae")]
        tfvq.plots.image_grid(np.concatenate(samples), nrows=len(samples),
                              titles=[n if i == 0 else "" for n in sampled for i in range(10)],
                              title="samples from each model's prior", cell_size=1.0,
                              path=run.path("samples.png"))
        figures.append("samples.png")

    common.write_results(run, {
        "experiment": "AE vs VAE vs VQ-VAE at a matched latent budget (seed 000)",
        "dataset": "cifar10 (JPEG re-encoding, see shared/DATA.md)",
        "settings": {k: getattr(FLAGS, k) for k in (
            "models", "steps", "prior_steps", "batch_size", "learning_rate", "hidden_channels",
            "residual_channels", "num_residual_layers", "num_embeddings", "embedding_dim",
            "float_bits", "prior_channels", "prior_layers", "iwae_samples", "train_examples",
            "test_examples", "seed")},
        "latent_budget_bits": budget_bits,
        "latent_budget_note": (
            f"VQ-VAE: {code_side}x{code_side} indices x log2({FLAGS.num_embeddings}) bits = "
            f"{budget_bits:g} bits; AE/VAE: {latent_dim} latent floats x {FLAGS.float_bits} bits "
            f"= {latent_dim * FLAGS.float_bits} bits. Nominal storage budgets; "
            "measured_rate_bits is the VAE's KL and the VQ-VAE's prior code length."),
        "data_variance": variance,
        "paper_bits_per_dim": PAPER_BITS_PER_DIM,
        "models": results,
        "figures": figures,
    })


if __name__ == "__main__":
    app.run(main)
