"""tensorflow-datasets image pipelines: `load`, `pixel_variance` and `info`.

The pipeline decodes each image once, optionally resizes it, and caches the uint8 result in
memory (filled by `load` itself); every epoch then only shuffles, batches, and runs one
vectorised map per batch (random crop and flip, channels, normalisation) before prefetching, so
that the input pipeline keeps ahead of the training step. Only images of varying size (ImageNet)
are cropped one by one, before batching.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from tfvq.data import transforms

__all__ = ["DataNotFoundError", "DatasetInfo", "NORMALIZATIONS", "info", "load", "pixel_variance"]

AUTOTUNE = tf.data.AUTOTUNE

# name -> batched float32 normaliser; None keeps the uint8 pixels.
_NORMALIZERS = {
    "unit": transforms.to_unit,
    "centered": transforms.to_centered,
    "imagenet": transforms.standardize_imagenet,
    "lab": transforms.to_lab,
}
NORMALIZATIONS = (*_NORMALIZERS, None)

# cache=True keeps decoded images in memory only below this size, so that the default stays
# safe for ImageNet-sized data (1.28M images do not fit in RAM once decoded).
_MAX_CACHE_BYTES = 4 * 2**30

_HOW_TO_PREPARE = (
    "Point data_dir= (or the TFDS_DATA_DIR environment variable) at a TFDS data dir that holds "
    "it, or prepare one offline with `python ../shared/tools/prepare_tfds.py --data_dir DIR` "
    "(mnist, fashion_mnist, cifar10) or `bash scripts/prepare_data.sh [DIR]`; "
    "pass download=True to let tensorflow-datasets download and prepare it."
)


class DataNotFoundError(FileNotFoundError):
    """Raised when a dataset is not prepared in the data dir and downloading is off."""


class DatasetInfo(NamedTuple):
    """What `info` reports about a tfds image dataset.

    Attributes:
        name: tfds name, e.g. "cifar10".
        version: prepared (or default) version, e.g. "3.0.2".
        image_shape: (height, width, channels); None for sizes that vary between images.
        num_examples: {split name: number of examples}; empty when the data is not prepared.
        class_names: label names, or None when the dataset has no class label.
        data_dir: the data dir the builder looked in.
    """

    name: str
    version: str
    image_shape: tuple
    num_examples: dict
    class_names: list | None
    data_dir: str


def _resolve_data_dir(data_dir: str | None) -> str | None:
    # tfds reads TFDS_DATA_DIR once at import time; reading it here honours later changes too.
    return data_dir or os.environ.get("TFDS_DATA_DIR") or None


def _builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
    return tfds.builder(name, data_dir=_resolve_data_dir(data_dir))


def _feature_keys(features: tfds.features.FeaturesDict) -> tuple[str, str | None]:
    """The keys of the (first) image feature and of the label, if any."""
    image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    if not image_keys:
        raise ValueError(f"load expects a dataset with an Image feature; got features {features}")
    image_key = "image" if "image" in image_keys else image_keys[0]
    return image_key, ("label" if "label" in features else None)


def info(name: str, data_dir: str | None = None) -> DatasetInfo:
    """Shape, sizes and class names of a tfds image dataset, without reading any example.

    Args:
        name: tfds dataset name, e.g. "cifar10".
        data_dir: TFDS data dir; defaults to $TFDS_DATA_DIR, then tfds' own default.

    Returns:
        A `DatasetInfo`.

    Example:
        >>> tfvq.data.info("mnist").image_shape
        (28, 28, 1)
    """
    builder = _builder(name, data_dir)
    features = builder.info.features
    image_key, label_key = _feature_keys(features)
    shape = features[image_key].shape
    label = features[label_key] if label_key else None
    return DatasetInfo(
        name=name,
        version=str(builder.version),
        image_shape=None if None in shape else tuple(shape),
        num_examples={s: v.num_examples for s, v in builder.info.splits.items()},
        class_names=list(label.names) if isinstance(label, tfds.features.ClassLabel) else None,
        data_dir=str(builder.data_dir_root),
    )


def _read_examples(builder, split, shuffle_files, seed, download, autocache):
    """The tfds dataset of feature dicts, with a helpful error when the data is missing."""
    if download:
        builder.download_and_prepare()
    read_config = tfds.ReadConfig(shuffle_seed=seed, try_autocache=autocache)
    try:
        return builder.as_dataset(split=split, shuffle_files=shuffle_files, read_config=read_config)
    except AssertionError as err:
        # tfds signals "not prepared" with an AssertionError; anything else is not ours to explain.
        if builder.data_path.exists():
            raise
        raise DataNotFoundError(
            f"No prepared {builder.name!r} (version {builder.version}) in TFDS data dir "
            f"{str(builder.data_dir_root)!r} and download=False. {_HOW_TO_PREPARE}"
        ) from err


def _normalizer(normalize):
    if normalize is None:
        return None
    if normalize not in _NORMALIZERS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}; got {normalize!r}")
    return _NORMALIZERS[normalize]


def _augmentations(augment, image_shape) -> frozenset:
    """The set of {"crop", "flip"} that `augment` asks for."""
    if augment is False or augment is None:
        return frozenset()
    if augment is True:
        # A random resized crop suits photos of varying size (ImageNet, LFW); small fixed-size
        # sets such as CIFAR-10 keep their framing and only get flipped.
        varying = image_shape is None or None in image_shape
        return frozenset({"crop", "flip"} if varying else {"flip"})
    names = {augment} if isinstance(augment, str) else set(augment)
    if not names <= {"crop", "flip"}:
        raise ValueError(
            f"augment must be a bool, 'crop', 'flip' or a sequence of them; got {augment!r}"
        )
    return frozenset(names)


def _estimated_bytes(num_examples, shape) -> float:
    if num_examples is None or shape is None or None in shape:
        return math.inf
    return float(num_examples) * math.prod(shape)


def _convert_channels(image, channels):
    have = image.shape[-1]
    if channels is None or channels == have:
        return image
    if channels == 3 and have == 1:
        return tf.image.grayscale_to_rgb(image)
    if channels == 1 and have == 3:
        return tf.image.rgb_to_grayscale(image)
    raise ValueError(f"channels must be None, 1 or 3 (images have {have}); got {channels!r}")


def _with_random(ds, seed):
    """Adds a random int64 "random" to each element, to seed the stateless random ops.

    The ints come from a seeded stream, so a `seed` reproduces the augmentations exactly while
    every epoch still draws new ones. The stream makes ~20k values/s, so it is used per batch
    wherever the augmentation can run on batches.
    """
    randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(ds, randoms).map(
        lambda ex, r: {**ex, "random": r}, num_parallel_calls=AUTOTUNE
    )


def _seed(ex, salt):
    # Different salts give the crop and the flip independent stateless streams from one int.
    return tf.stack([ex["random"], tf.constant(salt, tf.int64)])


def _pipeline(
    *,
    name,
    split,
    batch_size,
    data_dir,
    image_size,
    normalize,
    augment,
    with_labels,
    shuffle,
    seed,
    cache,
    download,
    min_size,
    channels,
    shuffle_buffer,
    drop_remainder,
    max_examples=None,
) -> tf.data.Dataset:
    """`load`'s pipeline; `max_examples` (for `pixel_variance`) keeps the first examples only."""
    normalizer = _normalizer(normalize)
    builder = _builder(name, data_dir)
    image_key, label_key = _feature_keys(builder.info.features)
    if with_labels and label_key is None:
        raise ValueError(f"with_labels=True but {name!r} has no 'label' feature")
    if shuffle is None:
        shuffle = str(split).startswith("train")
    image_shape = builder.info.features[image_key].shape
    augmentations = _augmentations(augment, image_shape)
    out_size = transforms._as_size(image_size) if image_size is not None else None
    if "crop" in augmentations and out_size is None:
        if None in image_shape:
            raise ValueError(f"augment with 'crop' on {name!r} needs image_size; got None")
        out_size = tuple(image_shape[:2])
    if batch_size and out_size is None and None in image_shape:
        raise ValueError(
            f"{name!r} has images of varying size {image_shape}: pass image_size to batch them"
        )

    # tfds' own autocache (of encoded records) is off: the cache below holds decoded images.
    ds = _read_examples(builder, split, bool(shuffle), seed, download, autocache=False)
    cached_shape = image_shape
    if out_size is not None and "crop" not in augmentations:
        cached_shape = (*out_size, image_shape[-1])
    if cache is True:
        try:
            num = builder.info.splits[split].num_examples
        except (KeyError, ValueError):  # split sizes unknown (e.g. under tfds.testing.mock_data)
            num = None
        if num is not None and max_examples:
            num = min(num, max_examples)
        cache = _estimated_bytes(num, cached_shape) <= _MAX_CACHE_BYTES
        if not cache:
            logging.warning(
                "tfvq.data.load(%r, %r): not caching in memory, the decoded images may take "
                "more than %d GiB (pass cache=PATH to cache on disk, or cache=False).",
                name, split, _MAX_CACHE_BYTES // 2**30,
            )  # fmt: skip

    def select(example):
        out = {"image": example[image_key]}
        if with_labels:
            out["label"] = example[label_key]
        return out

    ds = ds.map(select, num_parallel_calls=AUTOTUNE)
    if min_size:
        ds = ds.filter(transforms.filter_min_size(min_size))
    if max_examples:
        ds = ds.take(max_examples)
    if out_size is not None and "crop" not in augmentations:
        # Resizing is deterministic, so it happens once, before the cache, and stays uint8.
        ds = ds.map(
            lambda ex: {**ex, "image": transforms.resize(ex["image"], out_size)},
            num_parallel_calls=AUTOTUNE,
        )
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
        # Fill the cache now with one full pass. Left to the first epoch, a partly read iterator
        # (e.g. `next(iter(ds))` to peek) races with the next one on the half-written shared
        # cache, and TF 2.21 then sometimes serves a truncated epoch.
        ds.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    # Images of one size are cropped per batch, in one vectorised op; others one by one.
    crop_examples = "crop" in augmentations and (not batch_size or None in image_shape)
    if crop_examples:
        ds = _with_random(ds, seed).map(
            lambda ex: {
                **ex,
                "image": transforms.random_resized_crop(ex["image"], out_size, seed=_seed(ex, 0)),
            },
            num_parallel_calls=AUTOTUNE,
        )
    if batch_size:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    if "flip" in augmentations or ("crop" in augmentations and not crop_examples):
        ds = _with_random(ds, seed)

    def finish(ex):
        image = ex["image"]
        if "crop" in augmentations and not crop_examples:
            image = transforms.random_resized_crop(image, out_size, seed=_seed(ex, 0))
        if "flip" in augmentations:
            image = transforms.random_flip(image, seed=_seed(ex, 1))
        image = _convert_channels(image, channels)
        if normalizer is not None:
            image = normalizer(image)
        return (image, ex["label"]) if with_labels else image

    ds = ds.map(finish, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def load(
    name: str,
    split: str = "train",
    batch_size: int | None = 128,
    data_dir: str | None = None,
    image_size=None,
    normalize: str | None = "unit",
    augment=False,
    with_labels: bool = False,
    shuffle: bool | None = None,
    cache=True,
    *,
    seed: int | None = None,
    download: bool = False,
    min_size: int | None = None,
    channels: int | None = None,
    shuffle_buffer: int = 10_000,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A batched, prefetched `tf.data.Dataset` of images from tensorflow-datasets.

    Works for any tfds dataset with an image feature (`cifar10`, `mnist`, `fashion_mnist`,
    `lfw`, `imagenet2012`, ...). Nothing is downloaded unless `download=True`, so offline use
    fails fast with `DataNotFoundError` rather than hanging.

    Args:
        name: tfds dataset name.
        split: tfds split, slices included ("train[:1000]", "test[50%:]").
        batch_size: examples per batch; None for unbatched examples.
        data_dir: TFDS data dir; defaults to $TFDS_DATA_DIR, then tfds' default
            (~/tensorflow_datasets).
        image_size: int or (height, width) to resize to (bilinear, antialiased); required for
            datasets whose images vary in size.
        normalize: "unit" ([0, 1]), "centered" ([-0.5, 0.5], Sonnet's VQ-VAE recipe),
            "imagenet" (ImageNet mean/std), "lab" (CIE L*a*b*), or None (uint8 as stored).
        augment: False; True for a horizontal flip, plus a random resized crop (scale 0.2-1,
            square) on datasets of varying image size; or "crop", "flip", or both in a tuple.
        with_labels: yield (image, label) instead of images alone.
        shuffle: shuffle files and examples; defaults to True for "train..." splits only.
        cache: True caches the decoded (and resized) uint8 images in memory when they take at
            most 4 GiB; a path caches them in files there; False re-reads every epoch. `load`
            fills the cache before returning (about 10 s for CIFAR-10 train on 2 cores).
        seed: makes shuffling and augmentation reproducible.
        download: let tfds download and prepare missing data.
        min_size: drop images whose height or width is below this, before resizing.
        channels: None keeps the stored channels; 3 turns grayscale into RGB, 1 RGB into gray.
        shuffle_buffer: examples in the shuffle buffer.
        drop_remainder: drop the last incomplete batch (static batch shape).

    Returns:
        `tf.data.Dataset` of (B, H, W, C) float32 images (uint8 when normalize=None), or of
        (images, labels) pairs.

    Raises:
        DataNotFoundError: the data is not prepared in the data dir and download=False.

    Example:
        >>> train = tfvq.data.load("cifar10", "train", batch_size=128, normalize="centered")
        >>> images = next(iter(train))  # (128, 32, 32, 3) float32 in [-0.5, 0.5]
    """
    return _pipeline(
        name=name, split=split, batch_size=batch_size, data_dir=data_dir, image_size=image_size,
        normalize=normalize, augment=augment, with_labels=with_labels, shuffle=shuffle,
        seed=seed, cache=cache, download=download, min_size=min_size, channels=channels,
        shuffle_buffer=shuffle_buffer, drop_remainder=drop_remainder,
    )  # fmt: skip


def pixel_variance(
    name: str,
    split: str = "train",
    data_dir: str | None = None,
    normalize: str | None = "unit",
    max_examples: int | None = None,
    image_size=None,
    batch_size: int = 1000,
) -> float:
    """Variance of all pixel values of a split after normalisation, in one streaming pass.

    The VQ-VAE paper reports the MSE divided by this variance ("normalised MSE"); Sonnet's
    example computes it as `np.var(train_images / 255.0)`. Batch statistics are merged in
    float64 (Chan et al.'s parallel formula), so no pass needs the whole split in memory.

    Args:
        name: tfds dataset name.
        split: tfds split or slice.
        data_dir: TFDS data dir; defaults to $TFDS_DATA_DIR.
        normalize: as in `load`.
        max_examples: use only the first this many examples.
        image_size: resize first, for datasets of varying image size.
        batch_size: examples per streamed batch.

    Returns:
        The variance as a Python float.

    Example:
        >>> var = tfvq.data.pixel_variance("cifar10", normalize="centered")  # about 0.063
    """
    # No cache: one pass only, and a split that would not fit in memory must still stream.
    ds = _pipeline(
        name=name, split=split, batch_size=batch_size, data_dir=data_dir, image_size=image_size,
        normalize=normalize, augment=False, with_labels=False, shuffle=False, seed=None,
        cache=False, download=False, min_size=None, channels=None, shuffle_buffer=0,
        drop_remainder=False, max_examples=max_examples,
    )  # fmt: skip
    count, mean, m2 = 0, 0.0, 0.0
    for images in ds.as_numpy_iterator():
        x = images.astype(np.float64).ravel()
        n, batch_mean = x.size, x.mean()
        batch_m2 = np.square(x - batch_mean).sum()
        delta = batch_mean - mean
        total = count + n
        mean += delta * n / total
        m2 += batch_m2 + delta**2 * count * n / total
        count = total
    if count == 0:
        raise ValueError(f"pixel_variance: split {split!r} of {name!r} holds no examples")
    return m2 / count
