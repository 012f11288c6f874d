"""Seed 001's VAE latent spaces: 2-D, 16-D and a deeper beta = 0.5 VAE on MNIST and CIFAR-10.

    python examples/experiments/vae_latents.py --output_dir=runs/experiments/vae_latents

For each dataset and variant a conv `tfvq.VAE` (Bernoulli likelihood) is trained, then
the test images are encoded to their posterior means and
- class separation is measured as the accuracy of a 5-nearest-neighbour vote among the latents of
  --knn_train_examples training images (NumPy, Euclidean; chance is 10 %),
- reconstruction MSE / PSNR / SSIM are measured on the test images (decoded from the means),
- the class-coloured latent scatter is drawn (as is for 2-D, PCA for 16-D; scikit-learn's t-SNE
  is not a dependency), with reconstructions and prior samples.
Variants: "2d" (latent 2, beta 1), "16d" (latent 16, beta 1), "deep_beta0.5" (latent 16, twice
the width, three residual blocks per stack, KL weight 0.5).
Writes results.json and per run <dataset>_<variant>_{scatter,reconstructions,samples}.png.

Larger settings: --mnist_steps=3000 --cifar10_steps=5000 --train_examples=50000.
"""

from absl import app, flags

import common

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/experiments/vae_latents", "Where the JSON and PNGs go.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR).")
flags.DEFINE_list("datasets", ["mnist", "cifar10"], "tfds datasets.")
flags.DEFINE_list("variants", ["2d", "16d", "deep_beta0.5"], "Variants (see the docstring).")
flags.DEFINE_integer("mnist_steps", 600, "Training steps per MNIST run.")
flags.DEFINE_integer("cifar10_steps", 600, "Training steps per CIFAR-10 run (and other sets).")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("hidden_channels", 32, "Width of the conv stacks (doubled for 'deep').")
flags.DEFINE_integer("train_examples", 20000, "Training images (first of the split).")
flags.DEFINE_integer("knn_train_examples", 5000, "Training latents the k-NN vote searches.")
flags.DEFINE_integer("test_examples", 2000, "Test images evaluated and scattered.")
flags.DEFINE_integer("knn_k", 5, "Neighbours in the k-NN vote.")
flags.DEFINE_integer("seed", 0, "Random seed.")

VARIANTS = {
    "2d": dict(latent_dim=2, beta=1.0, width=1, num_residual_layers=1),
    "16d": dict(latent_dim=16, beta=1.0, width=1, num_residual_layers=1),
    "deep_beta0.5": dict(latent_dim=16, beta=0.5, width=2, num_residual_layers=3),
}


def main(argv):
    del argv
    import keras
    import numpy as np

    import tfvq

    unknown = set(FLAGS.variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"--variants must be among {list(VARIANTS)}; got {sorted(unknown)}")
    run = common.Run(FLAGS.output_dir, FLAGS.seed)
    runs, figures = {}, []
    for dataset in FLAGS.datasets:
        info = tfvq.data.info(dataset, FLAGS.data_dir)
        train_x, train_y = common.load_arrays(dataset, "train", FLAGS.data_dir,
                                              FLAGS.train_examples)
        test_x, test_y = common.load_arrays(dataset, "test", FLAGS.data_dir, FLAGS.test_examples)
        knn_x, knn_y = train_x[:FLAGS.knn_train_examples], train_y[:FLAGS.knn_train_examples]
        steps = FLAGS.mnist_steps if dataset == "mnist" else FLAGS.cifar10_steps
        for variant in FLAGS.variants:
            spec = VARIANTS[variant]
            name = f"{dataset}_{variant}"
            keras.utils.set_random_seed(FLAGS.seed)
            width = FLAGS.hidden_channels * spec["width"]
            model = tfvq.VAE(train_x.shape[1:], latent_dim=spec["latent_dim"], beta=spec["beta"],
                             reconstruction_loss="bce", hidden_channels=width,
                             residual_channels=width // 2,
                             num_residual_layers=spec["num_residual_layers"], seed=FLAGS.seed)
            start = run.elapsed()
            history = common.fit_steps(model, train_x, steps, FLAGS.batch_size, FLAGS.seed,
                                       FLAGS.learning_rate)
            train_s = run.elapsed() - start
            evaluation = model.evaluate(common.train_dataset(test_x, 500).take(
                max(1, len(test_x) // 500)), return_dict=True, verbose=0)

            encode = lambda x: model.encode(x)[0]  # noqa: E731 - posterior means
            test_z = common.predict(encode, test_x)
            knn_z = common.predict(encode, knn_x)
            recon = common.predict(lambda x: model(x), test_x)
            metrics = common.image_metrics(test_x, recon)
            runs[name] = {
                "dataset": dataset,
                "variant": variant,
                "latent_dim": spec["latent_dim"],
                "beta": spec["beta"],
                "hidden_channels": width,
                "num_residual_layers": spec["num_residual_layers"],
                "steps": steps,
                "knn_accuracy": common.knn_accuracy(knn_z, knn_y, test_z, test_y, FLAGS.knn_k),
                "test_mse": metrics["mse"],
                "test_psnr": metrics["psnr"],
                "test_ssim": metrics["ssim"],
                "test_kl_nats": float(evaluation["kl_loss"]),
                "test_bce_per_image_nats": float(evaluation["reconstruction_nll"]),
                "final_train_loss": float(history["loss"][-1]),
                "parameters": model.count_params(),
                "train_seconds": round(train_s, 1),
            }
            tfvq.plots.latent_scatter(
                test_z, test_y, method="auto", class_names=info.class_names,
                path=run.path(f"{name}_scatter.png"))
            tfvq.plots.reconstruction_grid(test_x[:10], recon[:10], n=10,
                                           path=run.path(f"{name}_reconstructions.png"))
            tfvq.plots.image_grid(model.sample(16, seed=FLAGS.seed), nrows=2,
                                  path=run.path(f"{name}_samples.png"))
            figures += [f"{name}_{kind}.png" for kind in ("scatter", "reconstructions", "samples")]

    common.write_results(run, {
        "experiment": "VAE latent spaces (seed 001)",
        "settings": {k: getattr(FLAGS, k) for k in (
            "datasets", "variants", "mnist_steps", "cifar10_steps", "batch_size",
            "learning_rate", "hidden_channels", "train_examples", "knn_train_examples",
            "test_examples", "knn_k", "seed")},
        "class_separation": f"{FLAGS.knn_k}-NN accuracy of test posterior means among "
                            f"{FLAGS.knn_train_examples} training posterior means (chance 0.1)",
        "runs": runs,
        "figures": figures,
    })


if __name__ == "__main__":
    app.run(main)
