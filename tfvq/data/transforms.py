"""Image transforms for tf.data pipelines, usable alone on tensors.

Convention shared by every function here: integer images (uint8, or any integer dtype) hold
pixel values in [0, 255]; floating images are already in [0, 1]. Normalisers therefore accept
both a raw decoded image and the output of `to_unit`, and inverses return [0, 1] floats ready
for `matplotlib.pyplot.imshow`. Functions work on a single image (H, W, C) and on a batch
(B, H, W, C) unless said otherwise.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import tensorflow as tf

# Per-channel RGB statistics of ImageNet train in [0, 1], the values used throughout torchvision
# and Keras applications; grayscale images use their channel averages.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "filter_min_size",
    "from_centered",
    "random_flip",
    "random_resized_crop",
    "resize",
    "standardize_imagenet",
    "to_centered",
    "to_lab",
    "to_unit",
    "unstandardize_imagenet",
]


def to_unit(image) -> tf.Tensor:
    """Scales an image to float32 in [0, 1].

    Args:
        image: integer image in [0, 255] (divided by 255) or float image in [0, 1] (cast only).

    Returns:
        float32 tensor of the same shape.

    Example:
        >>> to_unit(tf.constant([[[0, 255]]], tf.uint8)).numpy().tolist()
        [[[0.0, 1.0]]]
    """
    image = tf.convert_to_tensor(image)
    if image.dtype.is_integer:
        return tf.cast(image, tf.float32) / 255.0
    return tf.cast(image, tf.float32)


def to_centered(image) -> tf.Tensor:
    """Scales an image to float32 in [-0.5, 0.5], the VQ-VAE recipe of DeepMind Sonnet's example.

    Args:
        image: integer image in [0, 255] or float image in [0, 1].

    Returns:
        float32 tensor of the same shape, `unit - 0.5`.

    Example:
        >>> to_centered(tf.constant([0, 255], tf.uint8)).numpy().tolist()
        [-0.5, 0.5]
    """
    return to_unit(image) - 0.5


def from_centered(image) -> tf.Tensor:
    """Inverse of `to_centered`: maps [-0.5, 0.5] back to [0, 1].

    Args:
        image: float tensor produced by `to_centered` (or a model output on that scale).

    Returns:
        float32 tensor, `image + 0.5` (not clipped).

    Example:
        >>> from_centered(to_centered(tf.constant([0, 255], tf.uint8))).numpy().tolist()
        [0.0, 1.0]
    """
    return tf.cast(image, tf.float32) + 0.5


def _imagenet_stats(channels: int):
    if channels == 3:
        return tf.constant(IMAGENET_MEAN), tf.constant(IMAGENET_STD)
    if channels == 1:
        return (
            tf.constant([sum(IMAGENET_MEAN) / 3.0]),
            tf.constant([sum(IMAGENET_STD) / 3.0]),
        )
    raise ValueError(
        f"ImageNet standardisation expects images with 1 or 3 channels; got {channels}"
    )


def standardize_imagenet(image) -> tf.Tensor:
    """Standardises an image with the ImageNet per-channel mean and standard deviation.

    Computes `(unit - mean) / std` with `IMAGENET_MEAN` / `IMAGENET_STD`; a one-channel image
    uses their averages.

    Args:
        image: integer image in [0, 255] or float image in [0, 1], last axis 1 or 3 channels.

    Returns:
        float32 tensor of the same shape, roughly zero mean and unit variance on ImageNet.

    Example:
        >>> x = standardize_imagenet(tf.zeros((2, 32, 32, 3), tf.uint8))
        >>> round(float(unstandardize_imagenet(x).numpy().max()), 6)
        0.0
    """
    image = to_unit(image)
    mean, std = _imagenet_stats(image.shape[-1])
    return (image - mean) / std


def unstandardize_imagenet(image) -> tf.Tensor:
    """Inverse of `standardize_imagenet`: back to [0, 1] for pictures.

    Args:
        image: float tensor on the standardised scale, last axis 1 or 3 channels.

    Returns:
        float32 tensor, `image * std + mean` (not clipped; clip before saving a picture).

    Example:
        >>> x = tf.random.uniform((4, 4, 3))
        >>> y = unstandardize_imagenet(standardize_imagenet(x))
    """
    image = tf.cast(image, tf.float32)
    mean, std = _imagenet_stats(image.shape[-1])
    return image * std + mean


def to_lab(image) -> tf.Tensor:
    """Converts an RGB image to CIE L*a*b* (D65) with `tfvq.utils.colorspace.rgb_to_lab`.

    A one-channel image is treated as gray RGB, so it gets a = b = 0.

    Args:
        image: integer image in [0, 255] or float image in [0, 1], last axis 1 or 3 channels.

    Returns:
        float32 tensor of shape (..., 3): L in [0, 100], a and b roughly in [-128, 127].

    Example:
        >>> lab = to_lab(tf.constant([[[255, 255, 255]]], tf.uint8))  # L = 100, a = b = 0
    """
    # Imported here so that tfvq.data does not need tfvq.utils.colorspace unless Lab is used.
    from tfvq.utils.colorspace import rgb_to_lab

    image = to_unit(image)
    if image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    return tf.cast(rgb_to_lab(image), tf.float32)


def _cast_like(image: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """Casts resampled float pixels back to `dtype`, rounding and clipping for integers."""
    if dtype.is_integer:
        return tf.saturate_cast(tf.round(image), dtype)
    return tf.cast(image, dtype)


def _as_size(size) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    if len(size) != 2:
        raise ValueError(f"size (or image_size) must be an int or (height, width); got {size!r}")
    return (int(size[0]), int(size[1]))


def resize(image, size) -> tf.Tensor:
    """Resizes an image or a batch bilinearly with antialiasing, keeping its dtype.

    Args:
        image: (H, W, C) or (B, H, W, C) tensor.
        size: int for a square output, or (height, width).

    Returns:
        Tensor of the input dtype (integers rounded) with spatial shape `size`.

    Example:
        >>> resize(tf.zeros((250, 250, 3), tf.uint8), 64).shape
        TensorShape([64, 64, 3])
    """
    image = tf.convert_to_tensor(image)
    resized = tf.image.resize(image, _as_size(size), method="bilinear", antialias=True)
    return _cast_like(resized, image.dtype)


def _seed_pair(seed) -> tf.Tensor:
    """A shape-(2,) seed for the stateless random ops from an int or a pair."""
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.zeros_like(seed)])
    return tf.cast(seed, tf.int64)


def _uniform(shape, seed) -> tf.Tensor:
    if seed is None:
        return tf.random.uniform(shape)
    return tf.random.stateless_uniform(shape, seed=_seed_pair(seed))


def _crop_windows(height, width, u, scale, ratio):
    """Integer windows (top, left, height, width), each of shape (B,), from uniforms u (B, 4)."""
    height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[:, 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = tf.exp(log_lo + (log_hi - log_lo) * u[:, 1])
    crop_w, crop_h = tf.sqrt(area * aspect), tf.sqrt(area / aspect)
    # Shrinking both sides by the same factor keeps the aspect ratio of a window that overflows.
    shrink = tf.minimum(1.0, tf.minimum(width / crop_w, height / crop_h))
    crop_h = tf.clip_by_value(tf.round(crop_h * shrink), 1.0, height)
    crop_w = tf.clip_by_value(tf.round(crop_w * shrink), 1.0, width)
    # Every offset that keeps the window inside the image is equally likely.
    top = tf.minimum(tf.floor(u[:, 2] * (height - crop_h + 1.0)), height - crop_h)
    left = tf.minimum(tf.floor(u[:, 3] * (width - crop_w + 1.0)), width - crop_w)
    return tuple(tf.cast(v, tf.int32) for v in (top, left, crop_h, crop_w))


def _sample_grid(start, length, out):
    """Bilinear source rows (B, out) of windows [start, start + length), half-pixel centres."""
    start, length = tf.cast(start, tf.float32)[:, None], tf.cast(length, tf.float32)[:, None]
    pos = (tf.range(out, dtype=tf.float32)[None] + 0.5) * length / out - 0.5
    # Samples past the window's edge repeat the edge pixel, as tf.image.resize does.
    pos = tf.clip_by_value(pos, 0.0, length - 1.0)
    lower = tf.floor(pos)
    upper = tf.minimum(lower + 1.0, length - 1.0)
    return tf.cast(start + lower, tf.int32), tf.cast(start + upper, tf.int32), pos - lower


def _upsample_windows(images, windows, size):
    """Bilinear resize of one window per image, vectorised over the batch (no antialiasing)."""
    top, left, crop_h, crop_w = windows
    y0, y1, wy = _sample_grid(top, crop_h, size[0])
    x0, x1, wx = _sample_grid(left, crop_w, size[1])
    images = tf.cast(images, tf.float32)
    rows0 = tf.gather(images, y0, axis=1, batch_dims=1)
    rows1 = tf.gather(images, y1, axis=1, batch_dims=1)
    rows = rows0 + wy[:, :, None, None] * (rows1 - rows0)
    cols0 = tf.gather(rows, x0, axis=2, batch_dims=1)
    cols1 = tf.gather(rows, x1, axis=2, batch_dims=1)
    return cols0 + wx[:, None, :, None] * (cols1 - cols0)


def random_resized_crop(
    image,
    size,
    scale: Sequence[float] = (0.2, 1.0),
    ratio: Sequence[float] = (1.0, 1.0),
    seed=None,
) -> tf.Tensor:
    """Crops a random window of the image and resizes it to `size` x `size`.

    The window covers a fraction of the image area drawn uniformly from `scale`, with an aspect
    ratio (width / height) drawn log-uniformly from `ratio` (square by default, as in the
    seed experiment). A window that would not fit is shrunk, keeping its aspect ratio, until it
    does. Resizing is bilinear with antialiasing. A batch gets an independent window per image;
    when no window can be larger than the output (e.g. CIFAR-10 cropped back to 32 x 32), where
    antialiasing changes nothing, the batch is resampled in one vectorised pass.

    Args:
        image: (H, W, C) or (B, H, W, C) tensor, any dtype (integers are rounded back).
        size: output side (int) or (height, width).
        scale: range of the window's share of the image area.
        ratio: range of the window's width / height.
        seed: None for the stateful random ops, or an int / shape-(2,) int tensor for the
            stateless ones (same seed, same windows; a single image gets the window that the
            first image of a batch would get).

    Returns:
        Tensor of the input dtype and shape (size, size, C) or (B, size, size, C).

    Example:
        >>> crop = random_resized_crop(tf.zeros((48, 64, 3), tf.uint8), 32, seed=0)
        >>> crop.shape
        TensorShape([32, 32, 3])
    """
    image = tf.convert_to_tensor(image)
    size = _as_size(size)
    if image.shape.rank not in (3, 4):
        raise ValueError(
            f"random_resized_crop expects (H, W, C) or (B, H, W, C); got shape {image.shape}"
        )
    batch = image if image.shape.rank == 4 else image[None]
    shape = tf.shape(batch)
    windows = _crop_windows(shape[1], shape[2], _uniform((shape[0], 4), seed), scale, ratio)

    if image.shape.rank == 3:
        top, left, crop_h, crop_w = (v[0] for v in windows)
        return resize(image[top : top + crop_h, left : left + crop_w], size)
    static_h, static_w = image.shape[1], image.shape[2]
    upsampling_only = static_h is not None and static_w is not None
    if upsampling_only and static_h <= size[0] and static_w <= size[1]:
        return _cast_like(_upsample_windows(image, windows, size), image.dtype)

    def crop_one(args):
        one, (top, left, crop_h, crop_w) = args
        return resize(one[top : top + crop_h, left : left + crop_w], size)

    return tf.map_fn(
        crop_one,
        (image, windows),
        fn_output_signature=tf.TensorSpec((*size, image.shape[-1]), image.dtype),
    )


def random_flip(image, seed=None) -> tf.Tensor:
    """Flips an image left-right with probability 1/2 (each image of a batch independently).

    Args:
        image: (H, W, C) or (B, H, W, C) tensor.
        seed: None, or an int / shape-(2,) int tensor for a deterministic stateless flip.

    Returns:
        Tensor of the same shape and dtype.

    Example:
        >>> random_flip(tf.zeros((8, 32, 32, 3)), seed=1).shape
        TensorShape([8, 32, 32, 3])
    """
    if seed is None:
        return tf.image.random_flip_left_right(image)
    return tf.image.stateless_random_flip_left_right(image, seed=_seed_pair(seed))


def filter_min_size(min_size: int = 32, image_key: str = "image") -> Callable[..., tf.Tensor]:
    """A `Dataset.filter` predicate keeping images whose height and width are >= `min_size`.

    Works on datasets of images, of (image, label, ...) tuples (the image comes first) and of
    feature dicts as tensorflow-datasets yields them.

    Args:
        min_size: smallest accepted side, in pixels.
        image_key: key of the image in dict elements.

    Returns:
        A function returning a scalar boolean tensor.

    Example:
        >>> images = tf.data.Dataset.from_generator(
        ...     lambda: (tf.zeros((s, s, 3), tf.uint8) for s in (16, 32, 48)),
        ...     output_signature=tf.TensorSpec((None, None, 3), tf.uint8))
        >>> [int(x.shape[0]) for x in images.filter(filter_min_size(32))]
        [32, 48]
    """

    def predicate(element, *rest):
        image = element[image_key] if isinstance(element, dict) else element
        shape = tf.shape(image)
        return tf.logical_and(shape[-3] >= min_size, shape[-2] >= min_size)

    return predicate
