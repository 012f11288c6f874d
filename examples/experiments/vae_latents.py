"""Seed 001's VAE latent spaces: 2-D, 16-D and deeper beta = 0.5 VAEs on MNIST and CIFAR-10.

    python examples/experiments/vae_latents.py --output_dir=runs/experiments/vae_latents

For each dataset and variant a conv `tfvq.VAE` (Bernoulli likelihood) is trained, then
the test images are encoded to their posterior means and
- class separation is measured as the accuracy of a 5-nearest-neighbour vote among the latents of
  --knn_train_examples training images (NumPy, Euclidean; chance is 10 %),
- reconstruction MSE / PSNR / SSIM are measured on the test images (decoded from the means),
- the class-coloured latent scatter is drawn (as is for 2-D, PCA for 16-D; faces_vae.py shows
  scikit-learn's t-SNE), with reconstructions and prior samples.
Variants: "2d" (latent 2, beta 1), "16d" (latent 16, beta 1), "deep_beta0.5" (latent 16, twice
the width, three residual blocks per stack, KL weight 0.5) and "deep_beta0.5_2d" (the same with a
2-D latent, so that the simple and the deep beta = 0.5 VAE both have a true 2-D scatter).
The training curves are the History of `common.fit_steps`: each point is the mean of the loss
terms (total = NLL + beta KL, reconstruction NLL, KL; nats per image) over one of its epochs.
Writes results.json (with each run's curves) and
- per run <dataset>_<variant>_{scatter,reconstructions,samples}.png,
- per dataset <dataset>_latents_2d.png (the 2-D variants' scatters side by side, for the README)
  and <dataset>_loss_curves.png (every variant's training curves).

Larger settings: --mnist_steps=3000 --cifar10_steps=5000 --train_examples=50000.
"""

from absl import app, flags

import common

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/experiments/vae_latents", "Where the JSON and PNGs go.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR).")
flags.DEFINE_list("datasets", ["mnist", "cifar10"], "tfds datasets.")
flags.DEFINE_list("variants", ["2d", "16d", "deep_beta0.5", "deep_beta0.5_2d"],
                  "Variants (see the docstring).")
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
    "deep_beta0.5_2d": dict(latent_dim=2, beta=0.5, width=2, num_residual_layers=3),
}

# The training-curve terms of `tfvq.VAE`'s History, with the titles the figure gives them.
CURVE_TERMS = {"loss": "total loss (NLL + \u03b2 KL)", "reconstruction_nll": "reconstruction NLL",
               "kl_loss": "KL"}


def loss_curve(history, steps):
    """The History's per-epoch loss terms against the training step that ends each epoch.

    `common.fit_steps` splits `steps` into len(history["loss"]) epochs of steps // epochs steps.
    """
    epochs = len(history["loss"])
    per_epoch = max(1, steps // epochs)
    curve = {"step": [per_epoch * (i + 1) for i in range(epochs)]}
    curve.update({term: [float(v) for v in history[term]] for term in CURVE_TERMS})
    return curve


def plot_loss_curves(curves, title, path):
    """Every variant's curves of one dataset, one panel per term, so they compare at a glance."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0 * len(CURVE_TERMS), 3.2), dpi=100)
    axes = fig.subplots(1, len(CURVE_TERMS), squeeze=False)[0]
    for ax, (term, term_title) in zip(axes, CURVE_TERMS.items()):
        for variant, curve in curves.items():
            ax.plot(curve["step"], curve[term], marker="o", markersize=3, label=variant)
        ax.set_title(term_title, fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel("nats per image (epoch mean)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")


def plot_2d_latents(panels, labels, class_names, title, path):
    """The 2-D variants' test posterior means side by side, one colour (and legend entry) a class.

    `panels` maps a panel title to its (N, 2) latents; one shared legend names the classes.
    """
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    cmap = colormaps["tab10" if labels.max() < 10 else "tab20"]
    fig = Figure(figsize=(4.6 * len(panels) + 1.8, 4.6), dpi=100)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel_title, z) in zip(axes, panels.items()):
        for label in np.unique(labels):
            chosen = labels == label
            ax.scatter(z[chosen, 0], z[chosen, 1], s=4, color=cmap(int(label)),
                       label=class_names[label])
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
    handles, names = axes[0].get_legend_handles_labels()
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0.0, 0.0, 1.0 - 1.7 / fig.get_figwidth(), 1.0))
    fig.legend(handles, names, loc="center right", markerscale=3, fontsize=9, frameon=False)
    fig.savefig(path, dpi=100, format="png")


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
        curves, panels = {}, {}
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
                "loss_curve": loss_curve(history, steps),
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
            curves[variant] = runs[name]["loss_curve"]
            if spec["latent_dim"] == 2:
                kind = "deep" if spec["width"] > 1 else "simple"
                panels[f"{variant} ({kind}): \u03b2 = {spec['beta']:g}, width {width}, "
                       f"{spec['num_residual_layers']} res. block(s)\n"
                       f"{FLAGS.knn_k}-NN acc. {runs[name]['knn_accuracy']:.3f}"] = test_z

        label = {"mnist": "MNIST", "cifar10": "CIFAR-10"}.get(dataset, dataset)
        plot_loss_curves(curves, f"{label}: VAE training curves ({steps} steps)",
                         run.path(f"{dataset}_loss_curves.png"))
        figures.append(f"{dataset}_loss_curves.png")
        if panels:
            plot_2d_latents(panels, test_y, info.class_names,
                            f"{label}: 2-D latents (posterior means) of {len(test_x)} test images",
                            run.path(f"{dataset}_latents_2d.png"))
            figures.append(f"{dataset}_latents_2d.png")

    common.write_results(run, {
        "experiment": "VAE latent spaces (seed 001)",
        "settings": {k: getattr(FLAGS, k) for k in (
            "datasets", "variants", "mnist_steps", "cifar10_steps", "batch_size",
            "learning_rate", "hidden_channels", "train_examples", "knn_train_examples",
            "test_examples", "knn_k", "seed")},
        "class_separation": f"{FLAGS.knn_k}-NN accuracy of test posterior means among "
                            f"{FLAGS.knn_train_examples} training posterior means (chance 0.1)",
        "loss_curves": "runs[*].loss_curve: per fit epoch, the training step ending it and the "
                       "epoch's mean loss, reconstruction_nll and kl_loss (nats per image)",
        "runs": runs,
        "figures": figures,
    })


if __name__ == "__main__":
    app.run(main)
