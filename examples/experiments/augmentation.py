"""Seed 002's learned data augmentation: do VQ-VAE images help a classifier with few labels?

    python examples/experiments/augmentation.py --output_dir=runs/experiments/augmentation

The claim under test: "VQ-VAE samples extend a small labelled set and help a classifier". For
every label budget in --labels_per_class (10 and 100 per class: 100 and 1,000 Fashion-MNIST
labels) and every seed in --seeds, the whole pipeline runs again: the seed draws the balanced
labelled subset (`common.balanced_subset`), and every generator and classifier is trained on
that subset only, from that seed.
1. A `tfvq.VQVAE` is trained on the labelled images. Its augmenters:
   - "recon" (reconstruction-based): the VQ-VAE's reconstructions of the labelled images
     (encode, quantize, decode), each labelled with its source image's label;
   - "pixelcnn" (class-conditional generation): a class-conditional `tfvq.PixelCNNPrior`
     (num_classes=10) is trained on the labelled code maps, and code maps drawn from it for
     chosen labels are decoded (`VQVAE.sample(n, prior, labels=...)`).
2. "vae" (with --conditions=...,real+vae): a `tfvq.VAE`, whose class-conditional generator is
   a full-covariance Gaussian per class fitted to the posterior means of that class's images,
   sampled and decoded (a per-class model in latent space; with 10 images per class it is
   nearly degenerate, its covariance of rank 9 plus a small ridge). It is not in the default:
   it is not the VQ-VAE claim, and it would cost a fifth of the 10-minute budget, which the
   VQ-VAE and its prior use instead.
3. The same small CNN (`common.small_cnn`, same initialisation and data order for a given
   seed) is trained for --classifier_steps steps on each training set of --conditions ("real",
   "real+<augmenter>", or "<augmenter>" alone) and scored on the first --test_examples test
   images. The real-data classifier also labels each augmenter's images: how recognisable
   their classes are.

Every augmenter adds --synthetic_ratio images per labelled image (the same number for each,
balanced over the classes), so that the comparison is at equal size. The reconstructions are
not perturbed by default (--resample_fraction=0): they are the plain reconstruction-based
augmentation, one lossy copy of each labelled image, which is what the claim has to beat
without any generative novelty; at ratio 1 they need no perturbation to match the generators'
count. With --resample_fraction=f, a fraction f of each reconstruction's code positions is
redrawn from the class-conditional prior's p(z_ij | z_<ij, y), computed in one pass on the
image's own codes (a one-step perturbation, not a full resampling), which makes
--synthetic_ratio > 1 copies of an image differ.

Reported per budget and condition: the test accuracy per seed, its mean with a 95 % Student-t
interval over the seeds, and the difference from "real" per seed (paired: the same subset,
initialisation and data order) with its mean and 95 % interval; "helps" when that interval
lies above 0, "hurts" below, "no detectable difference" when it contains 0. With 3 seeds
the t quantile is 4.30, so the half-width is 2.48 standard deviations of the paired
differences: small effects are not resolved.
Writes results.json, accuracy.png (per budget: accuracy per condition, and difference from
real, each with its interval) and, from the first seed of each budget,
<labels>_{real,recon,pixelcnn,vae}.png (one row per class). The outcome is reported as
measured, whichever way it goes.

The default is sized to finish within 10 CPU-minutes on 2 cores (both budgets, 3 seeds:
6 pipelines of about 80 CPU-seconds), hence its narrow models, short training and 2,000 test
images: its VQ-VAE reconstructs the test images below 20 dB PSNR (results.json), so it tests
the claim for weak generators. The full budget, the previous version's single-seed defaults
for every seed and the VAE (estimated from the default's per-step costs, not run: about an
hour of CPU):
    --vq_steps=1000 --prior_steps=1000 --vae_steps=1000 --classifier_steps=500
    --hidden_channels=32 --num_embeddings=64 --prior_channels=64 --prior_layers=6
    --test_examples=10000 --conditions=real,real+recon,real+pixelcnn,real+vae
Larger still: --dataset=cifar10 --num_embeddings=256 --hidden_channels=64 --vq_steps=5000
--prior_steps=5000 --vae_steps=5000.
"""

from absl import app, flags

from tfvq.utils.stats import mean_interval

import common

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/experiments/augmentation", "Where the JSON and PNGs go.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR).")
flags.DEFINE_string("dataset", "fashion_mnist", "tfds dataset with 10 classes.")
flags.DEFINE_list("labels_per_class", ["10", "100"], "Label budgets: labelled images per class.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Whole-pipeline seeds (subset, generators, CNN).")
flags.DEFINE_list("conditions", ["real", "real+recon", "real+pixelcnn"],
                  "Classifier training sets: real, real+<augmenter> or <augmenter>, with "
                  "augmenters recon, pixelcnn, vae.")
flags.DEFINE_integer("synthetic_ratio", 1, "Images each augmenter adds per labelled image.")
flags.DEFINE_float("resample_fraction", 0.0,
                   "Fraction of code positions of each reconstruction redrawn from the prior.")
flags.DEFINE_integer("test_examples", 2000, "Test images the classifiers are scored on.")
flags.DEFINE_integer("batch_size", 64, "Batch size of every model.")
flags.DEFINE_integer("hidden_channels", 16, "Width of the VQ-VAE / VAE conv stacks.")
flags.DEFINE_integer("num_embeddings", 32, "VQ-VAE codebook size.")
flags.DEFINE_integer("embedding_dim", 16, "VQ-VAE code size.")
flags.DEFINE_integer("vq_steps", 400, "VQ-VAE training steps.")
flags.DEFINE_integer("prior_steps", 400, "PixelCNN prior training steps.")
flags.DEFINE_integer("prior_channels", 32, "PixelCNN prior width.")
flags.DEFINE_integer("prior_layers", 4, "PixelCNN prior gated blocks.")
flags.DEFINE_integer("vae_latent_dim", 16, "VAE latent size.")
flags.DEFINE_integer("vae_steps", 300, "VAE training steps.")
flags.DEFINE_integer("classifier_steps", 200, "Classifier training steps (same for every set).")

AUGMENTERS = ("recon", "pixelcnn", "vae")


def verdict(interval):
    """What an interval of differences from "real" says: helps, hurts or neither."""
    if interval["low"] is None:
        return "undetermined (one seed)"
    if interval["low"] > 0:
        return "helps"
    if interval["high"] < 0:
        return "hurts"
    return "no detectable difference"


def parse_conditions(conditions):
    """{condition: augmenter or None} for "real", "real+<augmenter>" and "<augmenter>"."""
    parsed = {}
    for condition in conditions:
        parts = condition.split("+")
        if parts == ["real"]:
            parsed[condition] = (True, None)
        elif len(parts) == 2 and parts[0] == "real" and parts[1] in AUGMENTERS:
            parsed[condition] = (True, parts[1])
        elif len(parts) == 1 and parts[0] in AUGMENTERS:
            parsed[condition] = (False, parts[0])
        else:
            raise ValueError(f"--conditions: {condition!r} is not real, real+X or X with X in "
                             f"{list(AUGMENTERS)}")
    if "real" not in parsed:
        raise ValueError("--conditions must hold 'real': the differences are taken from it")
    return parsed


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


class Clock:
    """Wall and CPU seconds (all threads of this process) since the last `lap`."""

    def __init__(self):
        import time

        self._time = time
        self._start = (time.time(), time.process_time())

    def lap(self):
        now = (self._time.time(), self._time.process_time())
        spent = {"wall_s": round(now[0] - self._start[0], 1),
                 "cpu_s": round(now[1] - self._start[1], 1)}
        self._start = now
        return spent


def reconstructions(vq, prior, images, labels, copies, fraction, seed):
    """`copies` reconstructions of every image; `fraction` of the codes redrawn from `prior`."""
    import numpy as np

    if fraction <= 0:
        return np.tile(to_uint8(common.predict(lambda x: vq(x), images)), (copies, 1, 1, 1))
    rng = np.random.default_rng(seed)
    codes = common.predict(vq.encode_to_indices, images)
    index = np.arange(len(images))
    logits = common.predict(lambda i: prior((codes[i], labels[i])), index)
    out = []
    for _ in range(copies):
        # Gumbel-max: a draw from softmax(logits) at every position, kept where the mask is.
        draws = np.argmax(logits - np.log(-np.log(rng.uniform(size=logits.shape))), axis=-1)
        mask = rng.uniform(size=codes.shape) < fraction
        changed = np.where(mask, draws, codes).astype(np.int32)
        out.append(to_uint8(common.predict(lambda c: vq.decode_indices(c), changed)))
    return np.concatenate(out)


def train_vqvae(real_x, real_y, wanted, need, seed, num_classes):
    """The VQ-VAE augmenters ("recon", "pixelcnn" as `need` asks) and their statistics."""
    import keras
    import numpy as np

    import tfvq

    clock = Clock()
    keras.utils.set_random_seed(seed)
    vq = tfvq.VQVAE(real_x.shape[1:], num_embeddings=FLAGS.num_embeddings,
                    embedding_dim=FLAGS.embedding_dim, hidden_channels=FLAGS.hidden_channels,
                    residual_channels=FLAGS.hidden_channels // 2, num_residual_layers=1,
                    quantizer_options=dict(kmeans_init=True, dead_code_threshold=1.0))
    history = common.fit_steps(vq, real_x, FLAGS.vq_steps, FLAGS.batch_size, seed)
    stats = {"final_train_loss": float(history["loss"][-1]),
             "final_perplexity": float(history["perplexity"][-1]),
             "vqvae_time": clock.lap()}
    codes = common.predict(vq.encode_to_indices, real_x)
    prior = None
    if "pixelcnn" in need or ("recon" in need and FLAGS.resample_fraction > 0):
        keras.utils.set_random_seed(seed)
        prior = tfvq.PixelCNNPrior(FLAGS.num_embeddings, codes.shape[1:],
                                   hidden_channels=FLAGS.prior_channels,
                                   num_layers=FLAGS.prior_layers, num_classes=num_classes)
        prior_history = common.fit_steps(prior, codes, FLAGS.prior_steps, FLAGS.batch_size,
                                         seed, labels=real_y)
        stats["prior_final_nll_nats_per_code"] = float(prior_history["loss"][-1])
        stats["prior_time"] = clock.lap()
    images = {}
    if "recon" in need:
        images["recon"] = reconstructions(vq, prior, real_x, real_y, FLAGS.synthetic_ratio,
                                          FLAGS.resample_fraction, seed)
        stats["labelled_reconstruction"] = common.image_metrics(
            np.tile(real_x, (FLAGS.synthetic_ratio, 1, 1, 1)),
            images["recon"].astype(np.float32) / 255.0)
    if "pixelcnn" in need:
        parts = np.array_split(wanted, max(1, len(wanted) // 500))
        images["pixelcnn"] = to_uint8(np.concatenate([
            np.asarray(vq.sample(len(part), prior, seed=1000 * seed + i, labels=part))
            for i, part in enumerate(parts)]))
    stats["sample_time"] = clock.lap()
    stats["code_map"] = list(codes.shape[1:])
    stats["parameters"] = vq.count_params() + (prior.count_params() if prior else 0)
    return vq, images, stats


def train_vae(real_x, real_y, wanted, seed):
    """The "vae" augmenter's images and statistics."""
    import keras

    import tfvq

    clock = Clock()
    keras.utils.set_random_seed(seed)
    vae = tfvq.VAE(real_x.shape[1:], latent_dim=FLAGS.vae_latent_dim, reconstruction_loss="bce",
                   hidden_channels=FLAGS.hidden_channels,
                   residual_channels=FLAGS.hidden_channels // 2, seed=seed)
    history = common.fit_steps(vae, real_x, FLAGS.vae_steps, FLAGS.batch_size, seed)
    means = common.predict(lambda x: vae.encode(x)[0], real_x)
    sampler = class_conditional_gaussian_sampler(means, real_y, seed)
    images = to_uint8(common.predict(lambda z: vae.decode(z), sampler(wanted)))
    return vae, images, {"final_train_loss": float(history["loss"][-1]),
                         "parameters": vae.count_params(), "vae_time": clock.lap()}


def classify(x, y, test_x, test_y, seed, num_classes, also=()):
    """Test accuracy of the small CNN trained on (x, y), and its accuracy on each of `also`."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(seed)
    model = common.small_cnn(x.shape[1:], num_classes, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(common.train_dataset(x, FLAGS.batch_size, seed, labels=y),
              steps_per_epoch=FLAGS.classifier_steps, epochs=1, verbose=0)
    accuracy = model.evaluate(test_x, test_y, batch_size=500, verbose=0,
                              return_dict=True)["accuracy"]
    on_others = [float(np.mean(model.predict(images, batch_size=500, verbose=0).argmax(1)
                               == labels)) for images, labels in also]
    return float(accuracy), on_others


def one_pipeline(pool_x, pool_y, test_x, test_y, per_class, seed, conditions, num_classes,
                 figure_prefix=None):
    """One budget and seed: subset, augmenters, classifiers. Per-seed numbers and timings."""
    import numpy as np

    import tfvq

    chosen = common.balanced_subset(pool_y, per_class, seed)
    real_x, real_y = pool_x[chosen], pool_y[chosen]
    wanted = np.repeat(np.arange(num_classes), FLAGS.synthetic_ratio * per_class)
    need = {augmenter for _, augmenter in conditions.values() if augmenter}
    synthetic, generators = {}, {}
    if need & {"recon", "pixelcnn"}:
        vq, images, generators["vqvae"] = train_vqvae(real_x, real_y, wanted, need, seed,
                                                      num_classes)
        recon = common.predict(lambda x: vq(x), test_x[:1000])
        generators["vqvae"]["test_reconstruction"] = common.image_metrics(test_x[:1000], recon)
        synthetic.update({name: (x, np.tile(real_y, FLAGS.synthetic_ratio) if name == "recon"
                                 else wanted) for name, x in images.items()})
    if "vae" in need:
        vae, images, generators["vae"] = train_vae(real_x, real_y, wanted, seed)
        recon = common.predict(lambda x: vae(x), test_x[:1000])
        generators["vae"]["test_reconstruction"] = common.image_metrics(test_x[:1000], recon)
        synthetic["vae"] = (images, wanted)

    clock = Clock()
    accuracies, sizes, recognised = {}, {}, {}
    for condition, (with_real, augmenter) in conditions.items():
        parts = ([(real_x, real_y)] if with_real else []) + (
            [synthetic[augmenter]] if augmenter else [])
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        also = list(synthetic.values()) if condition == "real" else []
        accuracies[condition], on_synthetic = classify(x, y, test_x, test_y, seed, num_classes,
                                                       also)
        sizes[condition] = len(x)
        if condition == "real":
            recognised = dict(zip(synthetic, on_synthetic))
    timing = {"classifiers": clock.lap()}

    if figure_prefix:
        show = min(10, per_class)
        rows = lambda x, y: np.concatenate(  # noqa: E731 - one row per class
            [x[y == c][:show] for c in range(num_classes)])
        named = {"real": (real_x, real_y), **synthetic}
        for name, (x, y) in named.items():
            title = {"real": "labelled real images", "recon": "VQ-VAE reconstructions",
                     "pixelcnn": "class-conditional PixelCNN samples",
                     "vae": "per-class Gaussian VAE samples"}[name]
            tfvq.plots.image_grid(rows(x, y), nrows=num_classes, cell_size=0.8,
                                  title=f"{title}, {len(real_x)} labels, one row per class",
                                  path=f"{figure_prefix}_{name}.png")
    return {"accuracy": accuracies, "train_examples": sizes, "recognised": recognised,
            "generators": generators, "timing": timing}


def summarise_budget(per_seed, seeds, conditions, per_class, num_classes):
    """Per-condition intervals and paired differences from "real" over the seeds."""
    import numpy as np

    real = np.array([run["accuracy"]["real"] for run in per_seed])
    table = {}
    for condition in conditions:
        values = np.array([run["accuracy"][condition] for run in per_seed])
        entry = {"train_examples": per_seed[0]["train_examples"][condition],
                 "test_accuracy_per_seed": values.tolist(),
                 "test_accuracy": mean_interval(values)}
        if condition != "real":
            difference = mean_interval(values - real)
            entry.update(difference_vs_real_per_seed=(values - real).tolist(),
                         difference_vs_real=difference, verdict=verdict(difference))
        table[condition] = entry
    recognised = {name: mean_interval([run["recognised"][name] for run in per_seed])
                  for name in per_seed[0]["recognised"]}
    generators = {}
    for name in per_seed[0]["generators"]:
        generators[name] = {"per_seed": [run["generators"][name] for run in per_seed]}
    return {"labels_per_class": per_class, "labels": per_class * num_classes,
            "real_train_examples": per_class * num_classes, "seeds": list(seeds),
            "conditions": table,
            "real_classifier_accuracy_on_synthetic": recognised,
            "generators": generators,
            "classifier_time_per_seed": [run["timing"]["classifiers"] for run in per_seed]}


def accuracy_figure(budgets, dataset, path):
    """Per budget: accuracy per condition and difference from real, with 95 % intervals."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(budgets), 6.0), dpi=100)
    axes = np.asarray(fig.subplots(2, len(budgets), squeeze=False))
    for column, budget in enumerate(budgets.values()):
        table = budget["conditions"]
        names = list(table)
        for row, key in enumerate(("test_accuracy", "difference_vs_real")):
            ax = axes[row, column]
            shown = [n for n in names if key in table[n]]
            means = [table[n][key]["mean"] for n in shown]
            halves = [table[n][key]["half_width"] or 0.0 for n in shown]
            ax.bar(range(len(shown)), means, yerr=halves, capsize=4, color="#9ecae1",
                   edgecolor="#3182bd")
            for i, n in enumerate(shown):
                values = table[n][key + "_per_seed"]
                ax.plot([i] * len(values), values, "k.", markersize=4)
            ax.set_xticks(range(len(shown)), shown, rotation=20, fontsize=8)
            if row == 0:
                low = min(min(table[n]["test_accuracy_per_seed"]) for n in shown)
                ax.set_ylim(max(0.0, low - 0.1), min(1.0, max(
                    m + h for m, h in zip(means, halves)) + 0.03))
                ax.set_title(f"{dataset}, {budget['labels']} labels, "
                             f"{len(budget['seeds'])} seeds", fontsize=9)
                ax.set_ylabel("test accuracy (95 % interval)")
            else:
                ax.axhline(0.0, color="k", linewidth=0.8)
                ax.set_ylabel("minus real, paired by seed (95 %)")
    fig.tight_layout()
    fig.savefig(path)


def main(argv):
    del argv
    import tfvq

    budgets_per_class = [int(v) for v in FLAGS.labels_per_class]
    seeds = [int(v) for v in FLAGS.seeds]
    if not budgets_per_class or not seeds:
        raise ValueError("--labels_per_class and --seeds need at least one value each")
    conditions = parse_conditions(FLAGS.conditions)
    run = common.Run(FLAGS.output_dir, seeds[0])
    info = tfvq.data.info(FLAGS.dataset, FLAGS.data_dir)
    num_classes = len(info.class_names)
    pool_x, pool_y = common.load_arrays(FLAGS.dataset, "train", FLAGS.data_dir,
                                        max(20 * max(budgets_per_class) * num_classes, 2000))
    test_x, test_y = common.load_arrays(FLAGS.dataset, "test", FLAGS.data_dir, FLAGS.test_examples)

    budgets, figures = {}, ["accuracy.png"]
    for per_class in budgets_per_class:
        per_seed = []
        for i, seed in enumerate(seeds):
            prefix = run.path(str(per_class * num_classes)) if i == 0 else None
            per_seed.append(one_pipeline(pool_x, pool_y, test_x, test_y, per_class, seed,
                                         conditions, num_classes, prefix))
            print(f"{per_class * num_classes} labels, seed {seed}: {per_seed[-1]['accuracy']}",
                  flush=True)
        budgets[str(per_class * num_classes)] = summarise_budget(per_seed, seeds, conditions,
                                                                 per_class, num_classes)
        names = ["real"] + sorted({a for _, a in conditions.values() if a})
        figures += [f"{per_class * num_classes}_{name}.png" for name in names]
    accuracy_figure(budgets, FLAGS.dataset, run.path("accuracy.png"))

    common.write_results(run, {
        "experiment": "learned data augmentation (seed 002)",
        "claim": "VQ-VAE samples extend a small labelled set and help a classifier",
        "dataset": FLAGS.dataset,
        "settings": {k: getattr(FLAGS, k) for k in (
            "labels_per_class", "seeds", "conditions", "synthetic_ratio", "resample_fraction",
            "test_examples", "batch_size", "hidden_channels", "num_embeddings",
            "embedding_dim", "vq_steps", "prior_steps", "prior_channels", "prior_layers",
            "vae_latent_dim", "vae_steps", "classifier_steps")},
        "interval": "95 % Student-t interval over seeds (scipy.stats.t, n - 1 dof); "
                    "differences are paired by seed",
        "augmenters": {
            "recon": "VQ-VAE reconstructions of the labelled images, their labels"
                     + (f", {FLAGS.resample_fraction:g} of the codes redrawn from the prior"
                        if FLAGS.resample_fraction > 0 else ""),
            "pixelcnn": "VQ-VAE + class-conditional gated PixelCNN prior over its code maps",
            "vae": "VAE + a full-covariance Gaussian per class over posterior means",
        },
        "budgets": budgets,
        "figures": figures,
    })


if __name__ == "__main__":
    app.run(main)
