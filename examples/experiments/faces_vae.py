"""Seed 003's VAE on faces: BCE + KL, latent interpolation, PCA and t-SNE of the latents.

    python examples/experiments/faces_vae.py --output_dir=runs/experiments/faces_vae

Data (--dataset): by default scikit-image's `skimage.data.lfw_subset()`, real LFW crops that
need no download: 100 faces then 100 non-faces, 25x25 gray (stored as floats, rounded here to
8 bits so that every source is uint8). Instead, a folder of images (`tfvq.data.load`'s layout:
class subfolders such as faces/ and nonfaces/ give the labels; without them every image is one
class) or a prepared tfds name such as `lfw` (never downloaded; lfw is all faces, one class).
Folder and tfds images are resized to --image_size and turned gray (--channels=1, the default)
or kept RGB (--channels=3).
--test_per_class images of every class are held out (`common.balanced_subset`, seeded: 20 + 20
of the 200 by default); the rest train a conv `tfvq.VAE` (Bernoulli likelihood, N(0, I) prior).
The downsampling convs halve the side twice, so images are zero-padded to the next multiple of
4 (25 -> 28: 1 pixel top / left, 2 bottom / right); every metric and figure is on the original
region. Reported on the test images: per-pixel BCE, MSE, PSNR and SSIM of the reconstructions
decoded from the posterior means, the KL per image, and the ELBO per image (--elbo_samples
reparameterised samples; BCE of gray levels, so a training objective, not a bound on a proper
likelihood); face / non-face separation as the k-NN accuracy of the test images'
posterior means among the training images' (also in the PCA and t-SNE planes and on the raw
pixels, for comparison).
Figures: reconstructions.png (originals over reconstructions), interpolation.png (per row a real
test face, the decoded linear interpolation of the two posterior means, the other real face),
latents_pca.png and latents_tsne.png (scikit-learn's PCA and t-SNE of all posterior means,
coloured by class; exact t-SNE up to 1000 points), samples.png (prior samples). latents.npz and
interpolation.npz keep the arrays the figures and numbers come from.

More steps overfit the 160 training images (3000: test BCE 0.504 against 0.502 at 1500, train
0.493 against 0.499). Larger settings, for more data (not run here): `--dataset=lfw
--image_size=32 --max_examples=5000 --test_per_class=500 --steps=5000 --hidden_channels=64`
(tfds lfw prepared; one class, so no k-NN number), or `--dataset=path/to/faces` likewise.
"""

import os

from absl import app, flags

import common

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/experiments/faces_vae", "Where the JSON and PNGs go.")
flags.DEFINE_string("dataset", "lfw_subset",
                    "'lfw_subset' (scikit-image), a folder of images, or a prepared tfds name.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR).")
flags.DEFINE_integer("image_size", 25, "Side folder and tfds images are resized to.")
flags.DEFINE_enum("channels", "1", ["1", "3"], "1: gray (colour converted), 3: RGB.")
flags.DEFINE_integer("max_examples", 2000, "First images of a folder or tfds split (0: all).")
flags.DEFINE_integer("test_per_class", 20, "Test images held out of every class.")
flags.DEFINE_integer("steps", 1500, "Training steps.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("latent_dim", 16, "Size of z.")
flags.DEFINE_float("beta", 1.0, "Weight of the KL term.")
flags.DEFINE_integer("hidden_channels", 32, "Width of the conv stacks (residual: half).")
flags.DEFINE_integer("elbo_samples", 8, "Posterior samples per test image for the ELBO.")
flags.DEFINE_integer("knn_k", 5, "Neighbours in the k-NN vote.")
flags.DEFINE_float("perplexity", 20.0, "t-SNE perplexity (capped at (N - 1) / 3).")
flags.DEFINE_integer("interpolation_pairs", 4, "Pairs of test images of class 0 interpolated.")
flags.DEFINE_integer("interpolation_steps", 8, "Decoded points per pair, end points included.")
flags.DEFINE_integer("seed", 0, "Random seed.")

# Two stride-2 stages: the padded side must be a multiple of 4.
_FACTOR = 4


def load_faces():
    """(uint8 images (N, H, W, C), int64 labels (N,), class names, source description)."""
    import numpy as np

    import tfvq

    channels = int(FLAGS.channels)
    if FLAGS.dataset == "lfw_subset":
        import skimage.data

        gray = np.round(skimage.data.lfw_subset() * 255.0).astype(np.uint8)[..., None]
        images = np.repeat(gray, channels, axis=-1)
        labels = np.repeat(np.arange(2, dtype=np.int64), len(gray) // 2)
        return images, labels, ["face", "non-face"], "skimage.data.lfw_subset()"
    info = tfvq.data.info(FLAGS.dataset, FLAGS.data_dir)
    if os.path.isdir(FLAGS.dataset):  # all of its splits; the first --max_examples kept below
        split = "+".join(info.num_examples)
    else:
        split = f"train[:{FLAGS.max_examples}]" if FLAGS.max_examples else "train"
    with_labels = info.class_names is not None
    size = FLAGS.image_size
    same_size = info.image_shape is not None and tuple(info.image_shape[:2]) == (size, size)
    ds = tfvq.data.load(FLAGS.dataset, split, batch_size=256, data_dir=FLAGS.data_dir,
                        image_size=None if same_size else size, normalize=None,
                        with_labels=with_labels, shuffle=False, cache=False, channels=channels)
    batches = list(ds.as_numpy_iterator())
    if with_labels:
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches]).astype(np.int64)
        names = list(info.class_names)
    else:
        images = np.concatenate(batches)
        labels = np.zeros(len(images), np.int64)
        names = ["face" if FLAGS.dataset == "lfw" else "all"]
    keep = slice(FLAGS.max_examples or None)
    return images[keep], labels[keep], names, f"tfvq.data.load({FLAGS.dataset!r}, {split!r})"


def main(argv):
    del argv
    import keras
    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    import tfvq

    run = common.Run(FLAGS.output_dir, FLAGS.seed)
    images, labels, class_names, source = load_faces()
    num_classes = len(class_names)
    test_idx = common.balanced_subset(labels, FLAGS.test_per_class, FLAGS.seed)
    train_idx = np.setdiff1d(np.arange(len(images)), test_idx)
    height, width, channels = images.shape[1:]
    pad_h, pad_w = (-height) % _FACTOR, (-width) % _FACTOR
    top, left = pad_h // 2, pad_w // 2
    padded = np.pad(images, ((0, 0), (top, pad_h - top), (left, pad_w - left), (0, 0)))
    crop = lambda x: np.asarray(x)[:, top:top + height, left:left + width]  # noqa: E731

    keras.utils.set_random_seed(FLAGS.seed)
    model = tfvq.VAE(padded.shape[1:], latent_dim=FLAGS.latent_dim, beta=FLAGS.beta,
                     reconstruction_loss="bce", hidden_channels=FLAGS.hidden_channels,
                     residual_channels=FLAGS.hidden_channels // 2, num_residual_layers=1,
                     seed=FLAGS.seed)
    start = run.elapsed()
    history = common.fit_steps(model, padded[train_idx], FLAGS.steps, FLAGS.batch_size,
                               FLAGS.seed, FLAGS.learning_rate)
    train_s = run.elapsed() - start

    # Posterior means and log-variances of every image; reconstructions decode the means.
    # One predict each: common.predict concatenates a tuple's parts as one array.
    means = common.predict(lambda x: model.encode(x)[0], padded)
    log_vars = common.predict(lambda x: model.encode(x)[1], padded)
    decode = lambda z: crop(common.predict(lambda b: model.decode(b), z))  # noqa: E731
    recon = decode(means)
    test_x, test_y, test_recon = images[test_idx], labels[test_idx], recon[test_idx]
    metrics = common.image_metrics(test_x, test_recon)
    kl = np.asarray(tfvq.losses.gaussian_kl(means[test_idx], log_vars[test_idx]))
    # ELBO per image on the original region: reparameterised samples z = mean + sigma * noise.
    noise = np.random.default_rng(FLAGS.seed).standard_normal(
        (FLAGS.elbo_samples,) + means[test_idx].shape).astype(np.float32)
    z = means[test_idx] + np.exp(0.5 * log_vars[test_idx]) * noise
    sampled = decode(z.reshape(-1, FLAGS.latent_dim))
    pixels = height * width * channels
    sampled_bce = common.binary_cross_entropy(np.tile(test_x, (FLAGS.elbo_samples, 1, 1, 1)),
                                              sampled)
    elbo = -(pixels * sampled_bce + float(kl.mean()))

    # Separation of the classes: k-NN of test among train, in the latents and their projections.
    tsne_perplexity = min(FLAGS.perplexity, (len(images) - 1) / 3)
    pca = PCA(n_components=2, random_state=FLAGS.seed).fit(means)
    # Exact gradients up to 1000 points: Barnes-Hut took 40 s for 200 on 2 loaded cores (3 s).
    tsne_method = "exact" if len(images) <= 1000 else "barnes_hut"
    tsne = TSNE(n_components=2, perplexity=tsne_perplexity, init="pca", method=tsne_method,
                random_state=FLAGS.seed)
    planes = {"pca": pca.transform(means), "tsne": tsne.fit_transform(means)}
    spaces = {"latent": means, "pca_2d": planes["pca"], "tsne_2d": planes["tsne"],
              "pixels": images.reshape(len(images), -1) / 255.0}
    knn = {name: (common.knn_accuracy(z[train_idx], labels[train_idx], z[test_idx], test_y,
                                      FLAGS.knn_k) if num_classes > 1 else None)
           for name, z in spaces.items()}

    # Interpolations between pairs of test images of class 0 (lfw_subset's faces).
    rng = np.random.default_rng(FLAGS.seed)
    candidates = test_idx[test_y == 0]
    num_pairs = min(FLAGS.interpolation_pairs, len(candidates) // 2)
    if num_pairs < 1:
        raise ValueError(f"interpolation needs 2 test images of class 0 ({class_names[0]!r}); "
                         f"got {len(candidates)} (raise --test_per_class)")
    pairs = rng.choice(candidates, 2 * num_pairs, replace=False).reshape(num_pairs, 2)
    weights = np.linspace(0.0, 1.0, FLAGS.interpolation_steps, dtype=np.float32)
    path_z = ((1.0 - weights[None, :, None]) * means[pairs[:, :1]]
              + weights[None, :, None] * means[pairs[:, 1:]])
    path_x = decode(path_z.reshape(-1, FLAGS.latent_dim)).reshape(
        num_pairs, len(weights), height, width, channels)
    ends = images[pairs].astype(np.float32) / 255.0
    strip = np.concatenate([ends[:, :1], path_x, ends[:, 1:]], axis=1)

    figures = ["reconstructions.png", "interpolation.png", "latents_pca.png", "latents_tsne.png",
               "samples.png"]
    shown = np.concatenate([np.flatnonzero(test_y == c)[:max(1, 10 // num_classes)]
                            for c in range(num_classes)])
    tfvq.plots.reconstruction_grid(test_x[shown], test_recon[shown], n=len(shown),
                                   path=run.path(figures[0]))
    tfvq.plots.interpolation_strip(strip, path=run.path(figures[1]))
    ratio = pca.explained_variance_ratio_
    titles = {
        "pca": (f"PC1 ({100 * ratio[0]:.1f}% var.)", f"PC2 ({100 * ratio[1]:.1f}% var.)"),
        "tsne": ("t-SNE 1", "t-SNE 2"),
    }
    for (method, points), name in zip(planes.items(), figures[2:4]):
        fig = tfvq.plots.latent_scatter(points, labels, class_names=class_names)
        ax = fig.axes[0]
        ax.set_xlabel(titles[method][0])
        ax.set_ylabel(titles[method][1])
        if knn[f"{method}_2d"] is not None:
            ax.set_title(f"{FLAGS.knn_k}-NN test accuracy {knn[f'{method}_2d']:.3f} "
                         f"(latent {knn['latent']:.3f})", fontsize=9)
            fig.tight_layout()  # again, now with room for the title
        fig.savefig(run.path(name), dpi=fig.dpi, format="png")
    tfvq.plots.image_grid(crop(model.sample(16, seed=FLAGS.seed)), nrows=2,
                          path=run.path(figures[4]))

    np.savez(run.path("latents.npz"), means=means, log_vars=log_vars, labels=labels,
             train_indices=train_idx, test_indices=test_idx, test_reconstructions=test_recon,
             pca=planes["pca"], tsne=planes["tsne"])
    np.savez(run.path("interpolation.npz"), pairs=pairs, weights=weights, latents=path_z,
             decoded=path_x, originals=images[pairs])

    counts = np.bincount(test_y, minlength=num_classes)
    common.write_results(run, {
        "experiment": "VAE on faces: reconstruction, interpolation, PCA and t-SNE (seed 003)",
        "settings": {k: getattr(FLAGS, k) for k in (
            "dataset", "image_size", "channels", "max_examples", "test_per_class", "steps",
            "batch_size", "learning_rate", "latent_dim", "beta", "hidden_channels",
            "elbo_samples", "knn_k", "perplexity", "interpolation_pairs", "interpolation_steps",
            "seed")},
        "data": {
            "source": source,
            "image_shape": [height, width, channels],
            "model_input_shape": list(padded.shape[1:]),
            "padding": {"top": top, "bottom": pad_h - top, "left": left, "right": pad_w - left},
            "class_names": class_names,
            "num_examples": len(images),
            "train_examples": len(train_idx),
            "test_examples": len(test_idx),
        },
        "test_bce_nats_per_pixel": common.binary_cross_entropy(test_x, test_recon),
        "train_bce_nats_per_pixel": common.binary_cross_entropy(images[train_idx],
                                                                recon[train_idx]),
        "test_mse": metrics["mse"],
        "test_psnr": metrics["psnr"],
        "test_ssim": metrics["ssim"],
        "test_kl_nats": float(kl.mean()),
        "test_elbo_nats": elbo,
        "class_separation": f"{FLAGS.knn_k}-NN accuracy of the test images among the training "
                            f"images (chance {counts.max() / counts.sum():.2f}), on the "
                            f"posterior means, their PCA and t-SNE planes, and raw pixels",
        "knn_accuracy": knn,
        "pca_explained_variance_ratio": ratio.tolist(),
        "tsne": {"perplexity": tsne_perplexity, "method": tsne_method,
                 "kl_divergence": float(tsne.kl_divergence_)},
        "interpolation": {"pairs": pairs.tolist(), "steps": FLAGS.interpolation_steps},
        "final_train_loss": float(history["loss"][-1]),
        "parameters": model.count_params(),
        "train_seconds": round(train_s, 1),
        "figures": figures,
        "arrays": ["latents.npz", "interpolation.npz"],
    })


if __name__ == "__main__":
    app.run(main)
