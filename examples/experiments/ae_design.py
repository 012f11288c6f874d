"""Seed 004's autoencoder design choices: BCE vs MSE, and how the encoder downsamples.

    python examples/experiments/ae_design.py --output_dir=runs/experiments/ae_design

Trains one `tfvq.AE` with a spatial latent map per (loss, downsampling) pair on MNIST, everything
else equal: reconstruction loss "mse" or "bce" (Bernoulli logits) and downsampling by 2x2
max-pooling, 2x2 average pooling, 4x4 stride-2 convolutions, or none (stride-1 convs: the
latent map keeps the image's size). The latent size each implies is latent_channels x the map
(7x7 after two halvings of 28x28). Test loss is reported both ways (MSE and BCE per pixel) so that
the two training losses can be compared on each other's terms, with PSNR and SSIM.
Writes results.json and reconstructions.png.

Larger settings: --steps=3000 --hidden_channels=64 (about 10x the default's time).
"""

from absl import app, flags

import common

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/experiments/ae_design", "Where the JSON and PNGs go.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR).")
flags.DEFINE_string("dataset", "mnist", "tfds dataset (28x28 or 32x32 images).")
flags.DEFINE_list("losses", ["mse", "bce"], "Reconstruction losses to compare.")
flags.DEFINE_list("downsample", ["max_pool", "avg_pool", "stride", "none"],
                  "Downsampling modes to compare (see tfvq.layers.ConvEncoder).")
flags.DEFINE_integer("steps", 300, "Training steps per variant.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("hidden_channels", 32, "Width of the conv stacks.")
flags.DEFINE_integer("residual_channels", 16, "Inner width of the residual blocks.")
flags.DEFINE_integer("latent_channels", 4, "Channels of the latent map.")
flags.DEFINE_integer("downsample_stages", 2, "Downsampling stages (each halves the side).")
flags.DEFINE_integer("train_examples", 20000, "Training images (first of the split).")
flags.DEFINE_integer("test_examples", 2000, "Test images evaluated.")
flags.DEFINE_integer("seed", 0, "Random seed.")


def main(argv):
    del argv
    import keras
    import numpy as np

    import tfvq

    run = common.Run(FLAGS.output_dir, FLAGS.seed)
    train_x, _ = common.load_arrays(FLAGS.dataset, "train", FLAGS.data_dir, FLAGS.train_examples)
    test_x, _ = common.load_arrays(FLAGS.dataset, "test", FLAGS.data_dir, FLAGS.test_examples)
    pixels = int(np.prod(train_x.shape[1:]))

    variants, rows, names = {}, [test_x[:8]], ["original"]
    for loss in FLAGS.losses:
        for mode in FLAGS.downsample:
            name = f"{loss}_{mode}"
            keras.utils.set_random_seed(FLAGS.seed)
            model = tfvq.AE(train_x.shape[1:], latent_dim=None,
                            latent_channels=FLAGS.latent_channels, reconstruction_loss=loss,
                            hidden_channels=FLAGS.hidden_channels,
                            residual_channels=FLAGS.residual_channels, num_residual_layers=1,
                            downsample_stages=FLAGS.downsample_stages, downsample=mode)
            start = run.elapsed()
            history = common.fit_steps(model, train_x, FLAGS.steps, FLAGS.batch_size,
                                       FLAGS.seed, FLAGS.learning_rate)
            train_s = run.elapsed() - start
            latent_shape = tuple(model.encode(test_x[:1]).shape[1:])
            recon = common.predict(lambda x: model(x), test_x)
            metrics = common.image_metrics(test_x, recon)
            variants[name] = {
                "loss": loss,
                "downsample": mode,
                "latent_shape": list(latent_shape),
                "latent_size": int(np.prod(latent_shape)),
                "latent_size_over_pixels": float(np.prod(latent_shape)) / pixels,
                "test_mse": metrics["mse"],
                "test_bce": common.binary_cross_entropy(test_x, recon),
                "test_psnr": metrics["psnr"],
                "test_ssim": metrics["ssim"],
                "final_train_loss": float(history["loss"][-1]),
                "parameters": model.count_params(),
                "train_seconds": round(train_s, 1),
            }
            rows.append(recon[:8])
            names.append(name)

    images = np.concatenate([np.asarray(tfvq.data.to_unit(r)) for r in rows])
    titles = [n if i % 8 == 0 else "" for n in names for i in range(8)]
    tfvq.plots.image_grid(images, nrows=len(rows), titles=titles, cell_size=1.0,
                          title=f"{FLAGS.dataset} test images and their reconstructions",
                          path=run.path("reconstructions.png"))
    best = min(variants, key=lambda n: variants[n]["test_mse"])
    common.write_results(run, {
        "experiment": "autoencoder design choices (seed 004)",
        "dataset": FLAGS.dataset,
        "settings": {k: getattr(FLAGS, k) for k in (
            "steps", "batch_size", "learning_rate", "hidden_channels", "residual_channels",
            "latent_channels", "downsample_stages", "train_examples", "test_examples", "seed")},
        "pixels_per_image": pixels,
        "variants": variants,
        "best_by_test_mse": best,
        "figures": ["reconstructions.png"],
    })


if __name__ == "__main__":
    app.run(main)
