"""Seed 000's ImageNet-style preprocessing, shown on real photographs.

    python examples/experiments/preprocessing.py --output_dir=runs/experiments/preprocessing

The pipeline is the one `tfvq.data.load` runs on ImageNet-like data: drop images smaller than
--min_size on either side (`tfvq.data.filter_min_size`), take a random square crop covering
20-100 % of the area and resize it to --crop_size (`tfvq.data.random_resized_crop`), standardise
with the ImageNet mean and std (`tfvq.data.standardize_imagenet`) and undo it for display
(`tfvq.data.unstandardize_imagenet`). ImageNet is not available offline, so the photographs are
scikit-image's bundled samples (varied sizes; gray ones are stacked to RGB). Writes
results.json (kept / dropped images, per-channel statistics after standardisation, the largest
round-trip error) and pipeline.png, dropped.png.
"""

from absl import app, flags

import common

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/experiments/preprocessing", "Where the JSON and PNGs go.")
flags.DEFINE_integer("crop_size", 128, "Side of the square random resized crop.")
flags.DEFINE_integer("min_size", 200, "Images with a side below this are dropped.")
flags.DEFINE_integer("num_crops", 4, "Random crops shown per kept image.")
flags.DEFINE_list("images", ["astronaut", "chelsea", "coffee", "rocket", "camera", "coins",
                             "page", "text", "immunohistochemistry"],
                  "scikit-image sample images to run through the pipeline.")
flags.DEFINE_integer("seed", 0, "Seed of the crops.")


def sample_images(names):
    """{name: uint8 (H, W, 3)} from skimage.data; gray images are stacked to RGB."""
    import numpy as np
    import skimage.data

    images = {}
    for name in names:
        image = np.asarray(getattr(skimage.data, name)())
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        images[name] = image[..., :3].astype(np.uint8)
    return images


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf
    from matplotlib.figure import Figure

    import tfvq

    run = common.Run(FLAGS.output_dir, FLAGS.seed)
    images = sample_images(FLAGS.images)
    names = list(images)

    # The pipeline proper: a tf.data stream of variable-size images, filtered, then cropped.
    ds = tf.data.Dataset.from_generator(
        lambda: ((name, images[name]) for name in names),
        output_signature=(tf.TensorSpec((), tf.string), tf.TensorSpec((None, None, 3), tf.uint8)),
    )
    size_filter = tfvq.data.filter_min_size(FLAGS.min_size)
    kept_ds = ds.filter(lambda name, image: size_filter(image))
    crops, kept = {}, []
    for index, (name, image) in enumerate(kept_ds.as_numpy_iterator()):
        name = name.decode()
        kept.append(name)
        batch = tf.repeat(image[None], FLAGS.num_crops, axis=0)
        crops[name] = tfvq.data.random_resized_crop(
            batch, FLAGS.crop_size, scale=(0.2, 1.0), seed=(FLAGS.seed, index)).numpy()
    dropped = [n for n in names if n not in kept]
    if not kept:
        raise ValueError(f"--min_size={FLAGS.min_size} drops every image; nothing to show")

    all_crops = np.concatenate([crops[n] for n in kept])
    standardized = tfvq.data.standardize_imagenet(all_crops).numpy()
    restored = tfvq.data.unstandardize_imagenet(standardized).numpy()
    roundtrip_error = float(np.max(np.abs(restored - tfvq.data.to_unit(all_crops).numpy())))

    # Figure: per kept image, the original then its crops, their standardised view (each channel
    # mapped from [-2.5, 2.5] to [0, 1], so grey is the ImageNet mean) and the inverse.
    rows, cols = len(kept), 1 + 3 * FLAGS.num_crops
    fig = Figure(figsize=(1.3 * cols, 1.4 * rows), dpi=80)
    axes = fig.subplots(rows, cols, squeeze=False)
    offset = 0
    for r, name in enumerate(kept):
        views = [images[name]]
        titles = [f"{name}\n{images[name].shape[0]}x{images[name].shape[1]}"]
        for c in range(FLAGS.num_crops):
            views.append(crops[name][c])
            titles.append(f"crop {c}")
        for c in range(FLAGS.num_crops):
            views.append(np.clip((standardized[offset + c] + 2.5) / 5.0, 0, 1))
            titles.append("standardized")
        for c in range(FLAGS.num_crops):
            views.append(np.clip(restored[offset + c], 0, 1))
            titles.append("inverse")
        offset += FLAGS.num_crops
        for ax, view, title in zip(axes[r], views, titles):
            ax.imshow(view, interpolation="nearest")
            ax.set_title(title, fontsize=6)
            ax.set_axis_off()
    fig.suptitle(f"min-size {FLAGS.min_size} filter, random resized crop to {FLAGS.crop_size} "
                 f"(scale 0.2-1), ImageNet standardisation and its inverse", fontsize=9)
    fig.tight_layout()
    fig.savefig(run.path("pipeline.png"))

    fig = Figure(figsize=(2.2 * max(1, len(dropped)), 2.4), dpi=80)
    axes = fig.subplots(1, max(1, len(dropped)), squeeze=False)[0]
    for ax in axes:
        ax.set_axis_off()
    for ax, name in zip(axes, dropped):
        ax.imshow(images[name])
        ax.set_title(f"{name} {images[name].shape[0]}x{images[name].shape[1]}", fontsize=7)
    fig.suptitle(f"dropped by the min-size filter (side < {FLAGS.min_size})", fontsize=9)
    fig.savefig(run.path("dropped.png"))

    per_channel = standardized.reshape(-1, 3)
    common.write_results(run, {
        "experiment": "preprocessing (seed 000)",
        "source": "skimage.data sample photographs (ImageNet not available offline)",
        "settings": {"crop_size": FLAGS.crop_size, "min_size": FLAGS.min_size,
                     "num_crops": FLAGS.num_crops, "scale": [0.2, 1.0], "ratio": [1.0, 1.0],
                     "seed": FLAGS.seed},
        "images": {n: {"shape": list(images[n].shape), "kept": n in kept} for n in names},
        "num_images": len(names),
        "num_kept": len(kept),
        "num_dropped": len(dropped),
        "crop_shape": list(all_crops.shape[1:]),
        "standardized_mean": per_channel.mean(axis=0).tolist(),
        "standardized_std": per_channel.std(axis=0).tolist(),
        "roundtrip_max_abs_error": roundtrip_error,
        "figures": ["pipeline.png", "dropped.png"],
    })


if __name__ == "__main__":
    app.run(main)
