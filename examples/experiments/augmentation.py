"""Seed 002's learned data augmentation: do generated images help a classifier with few labels?

    python examples/experiments/augmentation.py --output_dir=runs/experiments/augmentation

From --per_class labelled training images per class (1,000 in all by default, Fashion-MNIST):
1. a `tfvq.VQVAE` is trained on them, then a class-conditional `tfvq.PixelCNNPrior`
   (num_classes=10) on their code maps; --synthetic_per_class images per class are sampled with
   `VQVAE.sample(n, prior, labels=...)`;
2. a `tfvq.VAE` is trained on them too; its class-conditional generator is a full-covariance
   Gaussian per class fitted to the posterior means of that class's images, sampled and decoded
   (a "per-class model" in latent space, far cheaper than ten VAEs);
3. the same small CNN (`common.small_cnn`) is trained for the same number of steps on real only,
   synthetic only and real + synthetic for each generator, with --classifier_seeds seeds, and
   tested on the test split. The classifier trained on real images is also asked to label the
   synthetic ones: how recognisable the generated classes are.
Writes results.json, real.png, vqvae_samples.png, vae_samples.png (one row per class) and
accuracy.png. The outcome is reported as measured, whichever way it goes.

Larger settings: --dataset=cifar10 --num_embeddings=256 --hidden_channels=64 --vq_steps=5000
--prior_steps=5000 --vae_steps=5000 (hours on a CPU).
"""

from absl import app, flags

import common

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/experiments/augmentation", "Where the JSON and PNGs go.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR).")
flags.DEFINE_string("dataset", "fashion_mnist", "tfds dataset with 10 classes.")
flags.DEFINE_integer("per_class", 100, "Labelled real training images per class.")
flags.DEFINE_integer("synthetic_per_class", 100, "Generated images per class and generator.")
flags.DEFINE_integer("test_examples", 10000, "Test images the classifiers are scored on.")
flags.DEFINE_integer("batch_size", 64, "Batch size of every model.")
flags.DEFINE_integer("hidden_channels", 32, "Width of the VQ-VAE / VAE conv stacks.")
flags.DEFINE_integer("num_embeddings", 64, "VQ-VAE codebook size.")
flags.DEFINE_integer("embedding_dim", 16, "VQ-VAE code size.")
flags.DEFINE_integer("vq_steps", 1000, "VQ-VAE training steps.")
flags.DEFINE_integer("prior_steps", 1000, "PixelCNN prior training steps.")
flags.DEFINE_integer("prior_channels", 64, "PixelCNN prior width.")
flags.DEFINE_integer("prior_layers", 6, "PixelCNN prior gated blocks.")
flags.DEFINE_integer("vae_latent_dim", 16, "VAE latent size.")
flags.DEFINE_integer("vae_steps", 1000, "VAE training steps.")
flags.DEFINE_integer("classifier_steps", 500, "Classifier training steps (same for every set).")
flags.DEFINE_integer("classifier_seeds", 3, "Classifier runs per training set.")
flags.DEFINE_list("generators", ["vqvae", "vae"], "Generators to compare.")
flags.DEFINE_integer("seed", 0, "Random seed.")


def class_conditional_gaussian_sampler(latents, labels, seed, ridge=1e-3):
    """A function (labels) -> latents drawing from a Gaussian fitted to each class's latents."""
    import numpy as np

    rng = np.random.default_rng(seed)
    params = {}
    for c in np.unique(labels):
        z = latents[labels == c]
        cov = np.cov(z, rowvar=False) + ridge * np.eye(z.shape[1])
        params[int(c)] = (z.mean(axis=0), cov)

    def sample(wanted):
        draws = [rng.multivariate_normal(*params[int(c)]) for c in wanted]
        return np.stack(draws).astype("float32")

    return sample


def to_uint8(images):
    import numpy as np

    return np.round(np.clip(np.asarray(images, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def main(argv):
    del argv
    import keras
    import numpy as np

    import tfvq

    run = common.Run(FLAGS.output_dir, FLAGS.seed)
    info = tfvq.data.info(FLAGS.dataset, FLAGS.data_dir)
    pool_x, pool_y = common.load_arrays(FLAGS.dataset, "train", FLAGS.data_dir,
                                        max(20 * FLAGS.per_class * 10, 2000))
    chosen = common.balanced_subset(pool_y, FLAGS.per_class, FLAGS.seed)
    real_x, real_y = pool_x[chosen], pool_y[chosen]
    test_x, test_y = common.load_arrays(FLAGS.dataset, "test", FLAGS.data_dir, FLAGS.test_examples)
    num_classes = len(info.class_names)
    wanted = np.repeat(np.arange(num_classes), FLAGS.synthetic_per_class)
    shape = real_x.shape[1:]
    synthetic, generators = {}, {}

    if "vqvae" in FLAGS.generators:
        keras.utils.set_random_seed(FLAGS.seed)
        vq = tfvq.VQVAE(shape, num_embeddings=FLAGS.num_embeddings,
                        embedding_dim=FLAGS.embedding_dim, hidden_channels=FLAGS.hidden_channels,
                        residual_channels=FLAGS.hidden_channels // 2, num_residual_layers=1,
                        quantizer_options=dict(kmeans_init=True, dead_code_threshold=1.0))
        start = run.elapsed()
        vq_history = common.fit_steps(vq, real_x, FLAGS.vq_steps, FLAGS.batch_size, FLAGS.seed,
                                      learning_rate=1e-3)
        codes = common.predict(vq.encode_to_indices, real_x)
        prior = tfvq.PixelCNNPrior(FLAGS.num_embeddings, codes.shape[1:],
                                   hidden_channels=FLAGS.prior_channels,
                                   num_layers=FLAGS.prior_layers, num_classes=num_classes)
        prior_history = common.fit_steps(prior, codes, FLAGS.prior_steps, FLAGS.batch_size,
                                         FLAGS.seed, learning_rate=1e-3, labels=real_y)
        images = np.concatenate([
            np.asarray(vq.sample(len(part), prior, seed=FLAGS.seed + i, labels=part))
            for i, part in enumerate(np.array_split(wanted, max(1, len(wanted) // 500)))])
        synthetic["vqvae"] = to_uint8(images)
        recon = common.predict(lambda x: vq(x), test_x[:1000])
        generators["vqvae"] = {
            "description": "VQ-VAE + class-conditional gated PixelCNN prior over its code maps",
            "code_map": list(codes.shape[1:]),
            "num_embeddings": FLAGS.num_embeddings,
            "final_train_loss": float(vq_history["loss"][-1]),
            "final_perplexity": float(vq_history["perplexity"][-1]),
            "prior_final_nll_nats_per_code": float(prior_history["loss"][-1]),
            "test_reconstruction": common.image_metrics(test_x[:1000], recon),
            "parameters": vq.count_params() + prior.count_params(),
            "train_and_sample_seconds": round(run.elapsed() - start, 1),
        }

    if "vae" in FLAGS.generators:
        keras.utils.set_random_seed(FLAGS.seed)
        vae = tfvq.VAE(shape, latent_dim=FLAGS.vae_latent_dim, reconstruction_loss="bce",
                       hidden_channels=FLAGS.hidden_channels,
                       residual_channels=FLAGS.hidden_channels // 2, seed=FLAGS.seed)
        start = run.elapsed()
        vae_history = common.fit_steps(vae, real_x, FLAGS.vae_steps, FLAGS.batch_size,
                                       FLAGS.seed, learning_rate=1e-3)
        means = common.predict(lambda x: vae.encode(x)[0], real_x)
        sampler = class_conditional_gaussian_sampler(means, real_y, FLAGS.seed)
        synthetic["vae"] = to_uint8(common.predict(lambda z: vae.decode(z), sampler(wanted)))
        recon = common.predict(lambda x: vae(x), test_x[:1000])
        generators["vae"] = {
            "description": "VAE + a full-covariance Gaussian per class over posterior means",
            "latent_dim": FLAGS.vae_latent_dim,
            "final_train_loss": float(vae_history["loss"][-1]),
            "test_reconstruction": common.image_metrics(test_x[:1000], recon),
            "parameters": vae.count_params(),
            "train_and_sample_seconds": round(run.elapsed() - start, 1),
        }

    # The classifiers: one recipe, the training set is the only thing that changes.
    training_sets = {"real": (real_x, real_y)}
    for name, images in synthetic.items():
        training_sets[f"{name}_synthetic"] = (images, wanted)
        training_sets[f"real+{name}_synthetic"] = (np.concatenate([real_x, images]),
                                                   np.concatenate([real_y, wanted]))
    classifiers, recognisable = {}, {name: [] for name in synthetic}
    for set_name, (x, y) in training_sets.items():
        accuracies = []
        for seed in range(FLAGS.classifier_seeds):
            keras.utils.set_random_seed(FLAGS.seed + seed)
            model = common.small_cnn(shape, num_classes, seed=FLAGS.seed + seed)
            model.compile(optimizer=keras.optimizers.Adam(1e-3),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            model.fit(common.train_dataset(x, FLAGS.batch_size, FLAGS.seed + seed, labels=y),
                      steps_per_epoch=FLAGS.classifier_steps, epochs=1, verbose=0)
            accuracies.append(model.evaluate(test_x, test_y, batch_size=500, verbose=0,
                                             return_dict=True)["accuracy"])
            if set_name == "real":
                for name, images in synthetic.items():
                    predicted = model.predict(images, batch_size=500, verbose=0).argmax(axis=1)
                    recognisable[name].append(float(np.mean(predicted == wanted)))
        classifiers[set_name] = {
            "train_examples": len(x),
            "test_accuracy_mean": float(np.mean(accuracies)),
            "test_accuracy_std": float(np.std(accuracies)),
            "test_accuracy_per_seed": accuracies,
        }
    for name in synthetic:
        generators[name]["real_classifier_accuracy_on_synthetic"] = float(
            np.mean(recognisable[name]))

    # Figures: real and generated images, one row per class; accuracy per training set.
    show = min(10, FLAGS.per_class, FLAGS.synthetic_per_class)
    rows = lambda x, y: np.concatenate([x[y == c][:show] for c in range(num_classes)])  # noqa: E731
    tfvq.plots.image_grid(rows(real_x, real_y), nrows=num_classes, cell_size=0.8,
                          title="real", path=run.path("real.png"))
    for name, images in synthetic.items():
        tfvq.plots.image_grid(rows(images, wanted), nrows=num_classes, cell_size=0.8,
                              title=f"{name} samples, one row per class",
                              path=run.path(f"{name}_samples.png"))
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.5), dpi=100)
    ax = fig.subplots()
    names = list(classifiers)
    ax.bar(range(len(names)), [classifiers[n]["test_accuracy_mean"] for n in names],
           yerr=[classifiers[n]["test_accuracy_std"] for n in names], capsize=3)
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{FLAGS.dataset}: {len(real_x)} real labels, small CNN, "
                 f"{FLAGS.classifier_seeds} seeds")
    fig.tight_layout()
    fig.savefig(run.path("accuracy.png"))

    common.write_results(run, {
        "experiment": "learned data augmentation (seed 002)",
        "dataset": FLAGS.dataset,
        "settings": {k: getattr(FLAGS, k) for k in (
            "per_class", "synthetic_per_class", "test_examples", "batch_size", "hidden_channels",
            "num_embeddings", "embedding_dim", "vq_steps", "prior_steps", "prior_channels",
            "prior_layers", "vae_latent_dim", "vae_steps", "classifier_steps",
            "classifier_seeds", "generators", "seed")},
        "real_train_examples": len(real_x),
        "generators": generators,
        "classifiers": classifiers,
        "figures": ["real.png", "accuracy.png"] + [f"{n}_samples.png" for n in synthetic],
    })


if __name__ == "__main__":
    app.run(main)
