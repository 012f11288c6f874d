"""Image pipelines from tensorflow-datasets or a folder of files: `load`, `pixel_variance`, `info`.

The pipeline decodes each image once, optionally resizes it, and caches the uint8 result in
memory (filled by `load` itself); every epoch then only shuffles, batches, and runs one
vectorised map per batch (random crop and flip, channels, normalisation) before prefetching, so
that the input pipeline keeps ahead of the training step. Only images of varying size (ImageNet,
most folders) are cropped one by one, before batching.

Where the examples come from is one `_Source`: a tfds builder, or a folder scanned and decoded
by `tfvq.data.folders`; everything from the min-size filter on is the same code for both.
"""

from __future__ import annotations

import math
import os
from typing import Callable, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from tfvq.data import folders, transforms

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
    """What `info` reports about a tfds image dataset or an image folder.

    Attributes:
        name: tfds name, e.g. "cifar10", or the folder's path.
        version: prepared (or default) version, e.g. "3.0.2"; None for a folder.
        image_shape: (height, width, channels); None for sizes that vary between images.
        num_examples: {split name: number of examples}; empty when the data is not prepared.
            For a folder, the readable images of each split.
        class_names: label names (a folder's class subfolders), or None when there are none.
        data_dir: the data dir the builder looked in, or the folder.
    """

    name: str
    version: str | None
    image_shape: tuple
    num_examples: dict
    class_names: list | None
    data_dir: str


def _resolve_data_dir(data_dir: str | None) -> str | None:
    # tfds reads TFDS_DATA_DIR once at import time; reading it here honours later changes too.
    return data_dir or os.environ.get("TFDS_DATA_DIR") or None


def _builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
    try:
        return tfds.builder(name, data_dir=_resolve_data_dir(data_dir))
    except ValueError as err:  # tfds' DatasetNotFoundError, or a name it cannot parse
        reason = str(err).splitlines()[0]
        raise ValueError(
            f"name={name!r} is neither a directory (from {os.getcwd()!r}) nor a "
            f"tensorflow-datasets name: {reason}"
        ) from err


def _feature_keys(features: tfds.features.FeaturesDict) -> tuple[str, str | None]:
    """The keys of the (first) image feature and of the label, if any."""
    image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    if not image_keys:
        raise ValueError(f"load expects a dataset with an Image feature; got features {features}")
    image_key = "image" if "image" in image_keys else image_keys[0]
    return image_key, ("label" if "label" in features else None)


_ON_ERROR = ("skip", "raise")


def _folder(name) -> str | None:
    """The directory `name` names, or None for a tfds name.

    An existing directory is a folder; anything else spelled like a path (a path object,
    absolute, "./", "../", "~", a trailing "/") fails here with a clear error rather than in
    tfds' name parser.
    """
    path = os.path.expanduser(os.fspath(name))
    if os.path.isdir(path):
        return path
    spelled_as_path = (
        isinstance(name, os.PathLike)
        or os.path.isabs(path)
        or path.startswith(("./", "../"))
        or path.endswith(os.sep)
        or str(name).startswith("~")
    )
    if not spelled_as_path:
        return None
    if os.path.exists(path):
        raise ValueError(f"name must be a tfds dataset name or a directory; got file {path!r}")
    raise DataNotFoundError(f"No directory {path!r} (name={name!r} reads as a path)")


def _check_on_error(on_error):
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}; got {on_error!r}")


def info(name, data_dir: str | None = None, *, on_error: str = "skip") -> DatasetInfo:
    """Shape, sizes and class names of a tfds image dataset or of an image folder.

    A tfds dataset is described without reading any example; a folder is scanned (each file
    decoded once, remembered for `load` and `pixel_variance`), see `load` for its layout.

    Args:
        name: tfds dataset name, e.g. "cifar10", or a directory of image files.
        data_dir: TFDS data dir; defaults to $TFDS_DATA_DIR, then tfds' own default. Unused
            for folders.
        on_error: for folders, "skip" warns once about files that are not readable images,
            "raise" raises a ValueError naming the first.

    Returns:
        A `DatasetInfo`. For a folder: version None, image_shape None unless every image has
        one size, channels as `load(channels=None)` would give them.

    Example:
        >>> tfvq.data.info("mnist").image_shape
        (28, 28, 1)
    """
    _check_on_error(on_error)
    path = _folder(name)
    if path is not None:
        scanned = folders.scan(path)
        folders.report_bad(scanned, set(scanned.split_names), on_error, f"tfvq.data.info({path!r})")
        shape = folders.common_shape(scanned.images, scanned.channels)
        return DatasetInfo(
            name=path,
            version=None,
            image_shape=None if None in shape else shape,
            num_examples={s: len(scanned.split(s)) for s in scanned.split_names},
            class_names=list(scanned.class_names) if scanned.class_names else None,
            data_dir=path,
        )
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


class _Source(NamedTuple):
    """Where `_pipeline`'s examples come from: a tfds builder or a scanned folder.

    Attributes:
        name: for messages, e.g. "'cifar10'" or "folder '/data/photos'".
        image_shape: (H, W, C) of the images `read` yields, None where sizes vary.
        read: read(shuffle, seed) -> dataset of {"image": uint8 (H, W, C)[, "label"]}; it
            shuffles file order only (examples are shuffled by the pipeline).
        num_examples: examples `read` yields, None when unknown.
        pixels: H * W of each example in order, when known (folders), to size the cache.
        channels_done: the images already have the requested channels.
    """

    name: str
    image_shape: tuple
    read: Callable[[bool, int | None], tf.data.Dataset]
    num_examples: int | None
    pixels: np.ndarray | None = None
    channels_done: bool = False


def _tfds_source(name, split, data_dir, download, with_labels) -> _Source:
    builder = _builder(name, data_dir)
    image_key, label_key = _feature_keys(builder.info.features)
    if with_labels and label_key is None:
        raise ValueError(f"with_labels=True but {name!r} has no 'label' feature")
    try:
        num = builder.info.splits[split].num_examples
    except (KeyError, ValueError):  # split sizes unknown (e.g. under tfds.testing.mock_data)
        num = None

    def select(example):
        out = {"image": example[image_key]}
        if with_labels:
            out["label"] = example[label_key]
        return out

    def read(shuffle, seed):
        # tfds' own autocache (of encoded records) is off: the pipeline caches decoded images.
        ds = _read_examples(builder, split, bool(shuffle), seed, download, autocache=False)
        return ds.map(select, num_parallel_calls=AUTOTUNE)

    return _Source(repr(name), builder.info.features[image_key].shape, read, num)


def _folder_source(path, split, with_labels, min_size, channels, on_error, caller) -> _Source:
    scanned = folders.scan(path)
    files, splits = folders.select(scanned, split)
    folders.report_bad(scanned, splits, on_error, caller)
    if with_labels:
        if scanned.class_names is None:
            raise ValueError(
                f"with_labels=True but folder {path!r} has no class subfolders to take labels "
                f"from (expected <split folder>/<class>/<image files>)"
            )
        loose = [f.path for f in files if f.label < 0]
        if loose:
            raise ValueError(
                f"with_labels=True but {len(loose)} images of folder {path!r} lie outside the "
                f"class subfolders {list(scanned.class_names)}, e.g. {loose[0]!r}"
            )
    if min_size:
        # The scan knows every size, so small images are not even decoded; the pipeline's own
        # filter then keeps them all.
        files = [f for f in files if f.height >= min_size and f.width >= min_size]
    channels = channels or scanned.channels
    shape = folders.common_shape(files, channels)
    return _Source(
        name=f"folder {path!r}",
        image_shape=shape,
        read=lambda shuffle, seed: folders.dataset(files, channels, with_labels, shuffle, seed,
                                                   shape),  # fmt: skip
        num_examples=len(files),
        pixels=folders.pixel_counts(files),
        channels_done=True,
    )


def _source(name, split, data_dir, download, with_labels, min_size, channels, on_error, caller):
    path = _folder(name)
    if path is None:
        return _tfds_source(name, split, data_dir, download, with_labels)
    return _folder_source(path, split, with_labels, min_size, channels, on_error, caller)


def _cache_bytes(source, cached_shape, max_examples) -> float:
    """Bytes of the decoded uint8 images the cache would hold (inf when unknown)."""
    num = source.num_examples
    if num is not None and max_examples:
        num = min(num, max_examples)
    if None in cached_shape and source.pixels is not None:
        return float(source.pixels[:max_examples or None].sum()) * cached_shape[-1]
    return _estimated_bytes(num, cached_shape)


def _pipeline(
    source: _Source,
    *,
    split,
    batch_size,
    image_size,
    normalize,
    augment,
    with_labels,
    shuffle,
    seed,
    cache,
    min_size,
    channels,
    shuffle_buffer,
    drop_remainder,
    max_examples=None,
) -> tf.data.Dataset:
    """`load`'s pipeline; `max_examples` (for `pixel_variance`) keeps the first examples only."""
    normalizer = _normalizer(normalize)
    name = source.name
    if shuffle is None:
        shuffle = str(split).startswith("train")
    image_shape = source.image_shape
    augmentations = _augmentations(augment, image_shape)
    out_size = transforms._as_size(image_size) if image_size is not None else None
    if "crop" in augmentations and out_size is None:
        if None in image_shape:
            raise ValueError(f"augment with 'crop' on {name} needs image_size; got None")
        out_size = tuple(image_shape[:2])
    if batch_size and out_size is None and None in image_shape:
        raise ValueError(
            f"{name} has images of varying size {image_shape}: pass image_size to batch them"
        )

    ds = source.read(bool(shuffle), seed)
    cached_shape = image_shape
    if out_size is not None and "crop" not in augmentations:
        cached_shape = (*out_size, image_shape[-1])
    if cache is True:
        cache = _cache_bytes(source, cached_shape, max_examples) <= _MAX_CACHE_BYTES
        if not cache:
            logging.warning(
                "tfvq.data.load(%s, %r): not caching in memory, the decoded images may take "
                "more than %d GiB (pass cache=PATH to cache on disk, or cache=False).",
                name, split, _MAX_CACHE_BYTES // 2**30,
            )  # fmt: skip

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
        if not source.channels_done:
            image = _convert_channels(image, channels)
        if normalizer is not None:
            image = normalizer(image)
        return (image, ex["label"]) if with_labels else image

    ds = ds.map(finish, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def load(
    name,
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
    on_error: str = "skip",
) -> tf.data.Dataset:
    """A batched, prefetched `tf.data.Dataset` of images from tensorflow-datasets or a folder.

    Works for any tfds dataset with an image feature (`cifar10`, `mnist`, `fashion_mnist`,
    `lfw`, `imagenet2012`, ...). Nothing is downloaded unless `download=True`, so offline use
    fails fast with `DataNotFoundError` rather than hanging.

    `name` may instead be a directory: its JPEG, PNG (8 or 16 bit), BMP, GIF (first frame) and
    WebP files, found recursively, in sorted path order. If it holds `train`, `test` or
    `validation` folders, those are the splits; otherwise all of it is "train". Each split's
    subfolders are the classes (labels index the sorted folder names). Every file is decoded
    once up front (remembered while the folder is unchanged); files that do not decode, and
    other files (e.g. .txt; hidden files aside), are skipped with one warning naming them.

    Args:
        name: tfds dataset name, or a directory (str or path) of image files.
        split: split, slices included ("train[:1000]", "test[50%:]", "train[-500:]"); on a
            folder they slice its readable images in sorted order, as tfds would.
        batch_size: examples per batch; None for unbatched examples.
        data_dir: TFDS data dir; defaults to $TFDS_DATA_DIR, then tfds' default
            (~/tensorflow_datasets). Unused for folders.
        image_size: int or (height, width) to resize to (bilinear, antialiased); required for
            datasets whose images vary in size.
        normalize: "unit" ([0, 1]), "centered" ([-0.5, 0.5], Sonnet's VQ-VAE recipe),
            "imagenet" (ImageNet mean/std), "lab" (CIE L*a*b*), or None (uint8 as stored).
        augment: False; True for a horizontal flip, plus a random resized crop (scale 0.2-1,
            square) on datasets of varying image size; or "crop", "flip", or both in a tuple.
        with_labels: yield (image, label) instead of images alone (a folder's labels are
            int64 class indices; lfw's are the people's names, as strings).
        shuffle: shuffle files and examples; defaults to True for "train..." splits only.
        cache: True caches the decoded (and resized) uint8 images in memory when they take at
            most 4 GiB; a path caches them in files there; False re-reads every epoch. `load`
            fills the cache before returning (about 10 s for CIFAR-10 train on 2 cores).
        seed: makes shuffling and augmentation reproducible.
        download: let tfds download and prepare missing data.
        min_size: drop images whose height or width is below this, before resizing.
        channels: None keeps the stored channels (for a folder: 3 if any of its images is
            stored in colour, GIFs included, else 1); 3 turns grayscale into RGB, 1 RGB into
            gray. Alpha channels of a folder's images are dropped.
        shuffle_buffer: examples in the shuffle buffer.
        drop_remainder: drop the last incomplete batch (static batch shape).
        on_error: for folders, "skip" skips unreadable files with one warning, "raise"
            raises a ValueError naming the first.

    Returns:
        `tf.data.Dataset` of (B, H, W, C) float32 images (uint8 when normalize=None), or of
        (images, labels) pairs.

    Raises:
        DataNotFoundError: the data is not prepared in the data dir and download=False, or
            a path-like `name` is not a directory.
        ValueError: an unknown split (naming the available ones), or a bad argument.

    Example:
        >>> train = tfvq.data.load("cifar10", "train", batch_size=128, normalize="centered")
        >>> images = next(iter(train))  # (128, 32, 32, 3) float32 in [-0.5, 0.5]
        >>> photos = tfvq.data.load("photos/", "train[:90%]", 32, image_size=128,
        ...                         augment="crop", min_size=32, with_labels=True)
    """
    _normalizer(normalize)
    _check_on_error(on_error)
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3; got {channels!r}")
    source = _source(name, split, data_dir, download, with_labels, min_size, channels, on_error,
                     f"tfvq.data.load({name!r}, {split!r})")  # fmt: skip
    return _pipeline(
        source, split=split, batch_size=batch_size, image_size=image_size, normalize=normalize,
        augment=augment, with_labels=with_labels, shuffle=shuffle, seed=seed, cache=cache,
        min_size=min_size, channels=channels, shuffle_buffer=shuffle_buffer,
        drop_remainder=drop_remainder,
    )  # fmt: skip


def pixel_variance(
    name,
    split: str = "train",
    data_dir: str | None = None,
    normalize: str | None = "unit",
    max_examples: int | None = None,
    image_size=None,
    batch_size: int = 1000,
    *,
    min_size: int | None = None,
    channels: int | None = None,
    on_error: str = "skip",
) -> float:
    """Variance of all pixel values of a split after normalisation, in one streaming pass.

    The VQ-VAE paper reports the MSE divided by this variance ("normalised MSE"); Sonnet's
    example computes it as `np.var(train_images / 255.0)`. Batch statistics are merged in
    float64 (Chan et al.'s parallel formula), so no pass needs the whole split in memory.

    Args:
        name: tfds dataset name, or a directory of image files (as in `load`).
        split: split or slice.
        data_dir: TFDS data dir; defaults to $TFDS_DATA_DIR.
        normalize: as in `load`.
        max_examples: use only the first this many examples.
        image_size: resize first; without it, images of varying size are read one by one.
        batch_size: examples per streamed batch.
        min_size: as in `load`.
        channels: as in `load`.
        on_error: as in `load`.

    Returns:
        The variance as a Python float.

    Example:
        >>> var = tfvq.data.pixel_variance("cifar10", normalize="centered")  # about 0.063
    """
    _normalizer(normalize)
    _check_on_error(on_error)
    source = _source(name, split, data_dir, False, False, min_size, channels, on_error,
                     f"tfvq.data.pixel_variance({name!r}, {split!r})")  # fmt: skip
    if image_size is None and None in source.image_shape:
        batch_size = None  # sizes vary: merge image by image rather than refuse to batch
    # No cache: one pass only, and a split that would not fit in memory must still stream.
    ds = _pipeline(
        source, split=split, batch_size=batch_size, image_size=image_size, normalize=normalize,
        augment=False, with_labels=False, shuffle=False, seed=None, cache=False,
        min_size=min_size, channels=channels, shuffle_buffer=0, drop_remainder=False,
        max_examples=max_examples,
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
