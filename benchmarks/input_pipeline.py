"""Throughput of the `tfvq.data.load` input pipeline, in images per second.

`load` fills its in-memory cache of decoded images before returning; one more untimed pass over
the split then lets tf.data's autotuner settle, and the timed run reads `--num_batches` batches
(repeating the split as needed) exactly as `model.fit` would, minus the model. Compare the result
with the training step's images/s: the pipeline should be several times faster.

`--dataset=folder` reads a directory of image files instead (`--folder`, or a few hundred JPEGs
of 160-300 px cropped from skimage's photos into a temporary directory), crops them to
`--image_size` with a random resized crop, and compares against the 128-px VQ-VAE (64 hidden
channels, 2 stride-2 stages: a 32x32 code map); it times the in-memory cache and, as the case of
a folder too large for memory, `cache=False` (every JPEG decoded again each epoch).

    python benchmarks/input_pipeline.py --dataset=cifar10 --data_dir=~/tensorflow_datasets
    python benchmarks/input_pipeline.py --dataset=folder --batch_size=32 --image_size=128 \
        --crop --min_size=32 --seconds=5 --train_steps=5
"""

import itertools
import json
import os
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "cifar10", "tfds dataset name, or 'folder' for --folder.")
flags.DEFINE_string("split", "train", "tfds split.")
flags.DEFINE_integer("batch_size", 128, "Images per batch.")
flags.DEFINE_string("data_dir", None, "TFDS data dir; defaults to $TFDS_DATA_DIR.")
flags.DEFINE_integer("num_batches", 1000, "Timed batches.")
flags.DEFINE_integer("runs", 3, "Timed runs; the best one is reported (least disturbed).")
flags.DEFINE_string("normalize", "centered", "unit, centered, imagenet, lab or none.")
flags.DEFINE_bool("augment", False, "Random flips (and crops for photos of varying size).")
flags.DEFINE_bool("crop", False, "Random resized crop only (augment='crop'); overrides --augment.")
flags.DEFINE_integer("image_size", None, "Resize (or crop) to this square size.")
flags.DEFINE_integer("min_size", None, "Drop images with a side below this.")
flags.DEFINE_float("seconds", None, "Time each run for this long instead of --num_batches.")
flags.DEFINE_string("folder", None, "Image folder for --dataset=folder; default: build one.")
flags.DEFINE_integer("folder_files", 400, "JPEGs to build when --folder is not given.")
flags.DEFINE_integer("train_steps", 20, "Timed VQ-VAE train steps to compare against (0: skip).")
flags.DEFINE_integer("hidden_channels", None,
                     "VQ-VAE width to compare against; default 128 (paper), 64 for folders.")


def pipeline_images_per_second(name, batch_size, data_dir, num_batches, split="train", runs=1,
                               seconds=None, **load_kwargs):  # fmt: skip
    """Images per second that `tfvq.data.load` delivers once its cache is warm.

    Args:
        name: tfds dataset name, e.g. "cifar10", or an image folder.
        batch_size: images per batch.
        data_dir: TFDS data dir (None for $TFDS_DATA_DIR).
        num_batches: batches to time; the split is repeated if it has fewer.
        split: tfds split.
        runs: timed runs; the fastest is returned.
        seconds: if given, each run reads batches for this long instead of `num_batches`.
        **load_kwargs: passed to `tfvq.data.load` (normalize, augment, image_size, ...).

    Returns:
        Images per second of the best run, as a float.

    Example:
        >>> pipeline_images_per_second("cifar10", 128, "~/tensorflow_datasets", 200)
    """
    import tfvq.data

    ds = tfvq.data.load(name, split, batch_size, data_dir=data_dir, **load_kwargs)
    for _ in ds:  # warm-up epoch: autotuning and the first shuffle buffer fill are not timed
        pass
    ds = ds.repeat()
    best = 0.0
    for _ in range(runs):
        iterator = iter(ds)
        next(iterator)  # iterator start-up (thread pools, shuffle buffer) is not throughput
        images, start = 0, time.perf_counter()
        batches = iterator if seconds else itertools.islice(iterator, num_batches)
        for batch in batches:
            images += int(batch.shape[0])
            if seconds and time.perf_counter() - start >= seconds:
                break
        best = max(best, images / (time.perf_counter() - start))
    return best


def build_photo_folder(directory, num_files=400, min_side=160, max_side=300, seed=0):
    """Writes `num_files` JPEGs of mixed sizes cut from skimage's photos, one class per photo.

    Each file is a random crop (sides drawn independently in [min_side, max_side]) of a photo
    scaled by 0.6-1, so no two files are alike; camera (gray) keeps its single channel.

    Args:
        directory: where to write `<photo>/<index>.jpg`.
        num_files: files to write.
        min_side: smallest crop side, in pixels.
        max_side: largest crop side, in pixels.
        seed: NumPy seed of the crops.

    Returns:
        `directory`.

    Example:
        >>> build_photo_folder("/tmp/photos", 100)
    """
    import numpy as np
    import skimage.data
    from PIL import Image

    names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry")
    photos = {name: Image.fromarray(getattr(skimage.data, name)()) for name in names}
    rng = np.random.default_rng(seed)
    for i in range(num_files):
        name = names[i % len(names)]
        photo = photos[name]
        scale = rng.uniform(0.6, 1.0)
        scaled = photo.resize((round(photo.width * scale), round(photo.height * scale)),
                              Image.BILINEAR)  # fmt: skip
        height = int(rng.integers(min_side, min(max_side, scaled.height) + 1))
        width = int(rng.integers(min_side, min(max_side, scaled.width) + 1))
        top = int(rng.integers(0, scaled.height - height + 1))
        left = int(rng.integers(0, scaled.width - width + 1))
        os.makedirs(os.path.join(directory, name), exist_ok=True)
        scaled.crop((left, top, left + width, top + height)).save(
            os.path.join(directory, name, f"{i:05d}.jpg"), quality=90
        )
    return directory


def train_step_images_per_second(batch_size, steps, image_shape=(32, 32, 3), hidden_channels=128,
                                 downsample_stages=2):  # fmt: skip
    """Images/s the VQ-VAE's train step consumes (K=512, D=64, no XLA), fed from memory."""
    import numpy as np

    import tfvq

    model = tfvq.VQVAE(image_shape, num_embeddings=512, embedding_dim=64,
                       hidden_channels=hidden_channels, downsample_stages=downsample_stages)
    model.compile(optimizer="adam", jit_compile=False)
    images = np.random.default_rng(0).random((batch_size,) + image_shape, dtype=np.float32)
    model.train_on_batch(images)  # trace and compile outside the timing
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images)
    return batch_size * steps / (time.perf_counter() - start)


def main(argv):
    del argv
    data_dir = os.path.expanduser(FLAGS.data_dir) if FLAGS.data_dir else None
    normalize = None if FLAGS.normalize.lower() == "none" else FLAGS.normalize
    augment = "crop" if FLAGS.crop else FLAGS.augment
    is_folder = FLAGS.dataset == "folder" or bool(FLAGS.folder)
    name = FLAGS.dataset
    if is_folder:
        if FLAGS.image_size is None:
            raise app.UsageError("--dataset=folder needs --image_size (the photos vary in size)")
        name = FLAGS.folder and os.path.expanduser(FLAGS.folder)
        if not name:
            name = build_photo_folder(tempfile.mkdtemp(prefix="tfvq_photos_"), FLAGS.folder_files)
    start = time.perf_counter()
    load_kwargs = dict(normalize=normalize, augment=augment, image_size=FLAGS.image_size,
                       min_size=FLAGS.min_size)  # fmt: skip
    rate = pipeline_images_per_second(
        name, FLAGS.batch_size, data_dir, FLAGS.num_batches, split=FLAGS.split, runs=FLAGS.runs,
        seconds=FLAGS.seconds, **load_kwargs,
    )  # fmt: skip
    result = {
        "dataset": name,
        "split": FLAGS.split,
        "batch_size": FLAGS.batch_size,
        "normalize": FLAGS.normalize,
        "augment": augment,
        "image_size": FLAGS.image_size,
        "min_size": FLAGS.min_size,
        "images_per_second": round(rate, 1),
    }
    if is_folder:
        import tfvq.data

        info = tfvq.data.info(name)
        result["files"] = sum(info.num_examples.values())
        streaming = pipeline_images_per_second(
            name, FLAGS.batch_size, data_dir, FLAGS.num_batches, split=FLAGS.split,
            runs=FLAGS.runs, seconds=FLAGS.seconds, cache=False, **load_kwargs,
        )  # fmt: skip
        result["images_per_second_no_cache"] = round(streaming, 1)
    result["total_seconds"] = round(time.perf_counter() - start, 1)
    if FLAGS.train_steps:
        size = FLAGS.image_size if is_folder else 32
        hidden = FLAGS.hidden_channels or (64 if is_folder else 128)
        consumed = train_step_images_per_second(FLAGS.batch_size, FLAGS.train_steps,
                                                (size, size, 3), hidden)  # fmt: skip
        result["vqvae_train_step_images_per_second"] = round(consumed, 1)
        result["vqvae_hidden_channels"] = hidden
        result["pipeline_over_train_step"] = round(rate / consumed, 1)
        if is_folder:
            result["no_cache_over_train_step"] = round(streaming / consumed, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
