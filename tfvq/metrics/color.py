"""Colorization quality: PSNR of the recolored image, ab error and the raw-accuracy AuC.

Zhang, Isola and Efros 2016 ("Colorful Image Colorization", Sec. 3.1, Table 1) score a
colorization by the share of pixels whose predicted ab lies within a distance t of the truth,
swept over t = 0..150, and report the area under that curve normalised to [0, 1] ("AuC").
Predicting gray (ab = 0) already scores high on it, so a colorizer is only useful if it beats
`gray_colorization` on the same images; `colorization_metrics` makes that comparison one call.

Every quantity here is computed from RGB images in [0, 1]: the ab of a prediction is the ab of
the RGB image it produces, so a model and any other recoloring function (the gray baseline,
a classical method) are scored identically, on what a viewer sees.

Example:
    >>> import numpy as np
    >>> rgb = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 3)).astype("float32")
    >>> scores = colorization_metrics(gray_colorization, [rgb])
    >>> sorted(scores)
    ['ab_auc', 'ab_error', 'num_images', 'psnr']
"""

import keras
import numpy as np
from keras import ops

from tfvq import losses
from tfvq.utils.colorspace import lab_to_rgb, rgb_to_lab

# Zhang et al. 2016 sweep the threshold over 0..150 ab units.
DEFAULT_THRESHOLDS = np.arange(151, dtype="float32")

__all__ = [
    "DEFAULT_THRESHOLDS",
    "ab_accuracy",
    "ab_accuracy_auc",
    "ab_distance",
    "ab_error",
    "colorization_metrics",
    "colorization_terms",
    "gray_colorization",
]


def _thresholds(thresholds):
    t = np.asarray(DEFAULT_THRESHOLDS if thresholds is None else thresholds, dtype="float64")
    if t.ndim != 1 or len(t) < 2 or np.any(np.diff(t) <= 0):
        raise ValueError(
            "ab_accuracy_auc expects `thresholds`, a 1-D increasing sequence of at least 2 "
            f"values; got {np.asarray(thresholds).tolist()!r}"
        )
    return t


def _ab_pair(ab_true, ab_pred, fn):
    ab_true = ops.cast(ops.convert_to_tensor(ab_true), "float32")
    ab_pred = ops.cast(ops.convert_to_tensor(ab_pred), "float32")
    for name, value in (("ab_true", ab_true), ("ab_pred", ab_pred)):
        if value.shape[-1] is not None and value.shape[-1] != 2:
            raise ValueError(
                f"{fn} expects `{name}` whose last axis holds (a, b), size 2; got shape "
                f"{tuple(value.shape)}"
            )
    if tuple(ab_true.shape) != tuple(ab_pred.shape):
        raise ValueError(
            f"{fn} expects `ab_true` and `ab_pred` of the same shape; got "
            f"{tuple(ab_true.shape)} and {tuple(ab_pred.shape)}"
        )
    return ab_true, ab_pred


def ab_distance(ab_true, ab_pred):
    """Euclidean distance in the ab plane per pixel: `(..., 2)` -> `(...)`."""
    ab_true, ab_pred = _ab_pair(ab_true, ab_pred, "ab_distance")
    return ops.sqrt(ops.sum(ops.square(ab_true - ab_pred), axis=-1))


def ab_error(ab_true, ab_pred):
    """Mean Euclidean ab distance over all pixels, in ab units (scalar)."""
    return ops.mean(ab_distance(ab_true, ab_pred))


def ab_accuracy(ab_true, ab_pred, thresholds=None):
    """Share of pixels whose ab distance is at most each threshold: `(len(thresholds),)`.

    Args:
        ab_true, ab_pred: ab values `(..., 2)` of the same shape.
        thresholds: increasing distances in ab units; defaults to 0, 1, ..., 150 (the paper).

    Returns:
        The cumulative accuracy curve, one value in [0, 1] per threshold.
    """
    t = _thresholds(thresholds)
    d = ops.reshape(ab_distance(ab_true, ab_pred), (-1, 1))
    hits = ops.cast(d <= ops.convert_to_tensor(t, "float32"), "float32")
    return ops.mean(hits, axis=0)


def _pixel_auc(distance, thresholds):
    """Each pixel's contribution to the normalised AuC, so that their mean is the AuC.

    The trapezoid rule gives AuC = sum_i w_i acc(t_i) / (t_n - t_0) with w_i the trapezoid
    weights; acc(t_i) is the mean of [d <= t_i], so a pixel contributes the summed weights of
    the thresholds at or above its distance. That is a suffix sum picked by `searchsorted`,
    which needs O(pixels) memory instead of the (pixels, thresholds) table of comparisons.
    """
    gaps = np.diff(thresholds)
    weights = np.concatenate([[gaps[0]], gaps[:-1] + gaps[1:], [gaps[-1]]]) / 2.0
    suffix = np.append(np.cumsum(weights[::-1])[::-1], 0.0) / (thresholds[-1] - thresholds[0])
    d = ops.reshape(distance, (-1,))
    first_reached = ops.searchsorted(ops.convert_to_tensor(thresholds, "float32"), d, side="left")
    return ops.take(ops.convert_to_tensor(suffix, "float32"), first_reached)


def ab_accuracy_auc(ab_true, ab_pred, thresholds=None):
    """Area under the `ab_accuracy` curve, normalised to [0, 1] (Zhang et al. 2016's AuC).

    Args:
        ab_true, ab_pred: ab values `(..., 2)` of the same shape.
        thresholds: increasing distances in ab units; defaults to 0, 1, ..., 150 (the paper).

    Returns:
        A scalar: the trapezoid integral of the accuracy curve divided by the threshold range.
        1 means every pixel is exact; predicting gray scores about 0.89 on ImageNet (paper).

    Example:
    >>> import numpy as np
    >>> float(ab_accuracy_auc(np.zeros((4, 2)), np.full((4, 2), 30.0)))  # distance 42.4
    0.71666...
    """
    t = _thresholds(thresholds)
    return ops.mean(_pixel_auc(ab_distance(ab_true, ab_pred), t))


def _rgb(images, argument):
    images = ops.convert_to_tensor(images)
    dtype = keras.backend.standardize_dtype(images.dtype)
    if dtype == "uint8":
        images = ops.cast(images, "float32") / 255.0
    elif not keras.backend.is_float_dtype(dtype):
        raise ValueError(
            f"colorization metrics expect `{argument}` as float RGB in [0, 1] or uint8; got "
            f"dtype {dtype}"
        )
    if len(images.shape) != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"colorization metrics expect `{argument}` of shape (batch, height, width, 3); got "
            f"shape {tuple(images.shape)}"
        )
    return ops.cast(images, "float32")


def colorization_terms(rgb_true, rgb_pred, thresholds=None):
    """Batch means of the colorization metrics, from true and predicted RGB images.

    Args:
        rgb_true, rgb_pred: `(B, H, W, 3)` RGB images, float in [0, 1] or uint8.
        thresholds: see `ab_accuracy_auc`.

    Returns:
        Dict of scalars: `psnr` (dB, mean over images), `ab_error` (mean ab distance over
        pixels) and `ab_auc` (normalised raw-accuracy AuC over pixels).
    """
    rgb_true, rgb_pred = _rgb(rgb_true, "rgb_true"), _rgb(rgb_pred, "rgb_pred")
    if tuple(rgb_true.shape) != tuple(rgb_pred.shape):
        raise ValueError(
            "colorization metrics expect `rgb_true` and `rgb_pred` of the same shape; got "
            f"{tuple(rgb_true.shape)} and {tuple(rgb_pred.shape)}"
        )
    d = ab_distance(rgb_to_lab(rgb_true)[..., 1:], rgb_to_lab(rgb_pred)[..., 1:])
    return {
        "psnr": ops.mean(losses.psnr(rgb_true, rgb_pred)),
        "ab_error": ops.mean(d),
        "ab_auc": ops.mean(_pixel_auc(d, _thresholds(thresholds))),
    }


def gray_colorization(images):
    """The trivial colorization: each image's own lightness with ab = 0, as RGB in [0, 1].

    The baseline of Zhang et al. 2016's Table 1 ("Gray"): a colorizer has to beat it.

    Args:
        images: `(B, H, W, 3)` RGB images, float in [0, 1] or uint8.

    Returns:
        `(B, H, W, 3)` float32 gray RGB images.
    """
    lab = rgb_to_lab(_rgb(images, "images"))
    return lab_to_rgb(ops.concatenate([lab[..., :1], ops.zeros_like(lab[..., 1:])], axis=-1))


def colorization_metrics(model_or_fn, dataset, thresholds=None, max_batches=None):
    """Scores a colorizer on a dataset of RGB images: PSNR, mean ab error and ab AuC.

    Pixels and images are pooled over the whole dataset (a short last batch counts by its size).

    Args:
        model_or_fn: a `keras.Model` (e.g. `tfvq.Colorizer`) or a function, mapping a batch of
            RGB images `(B, H, W, 3)` to recolored RGB images in [0, 1] of the same shape.
            `gray_colorization` gives the gray baseline.
        dataset: an iterable of RGB batches, or of `(images, anything)` tuples, such as
            `tfvq.data.load("cifar10", "test")`.
        thresholds: see `ab_accuracy_auc`.
        max_batches: stop after this many batches.

    Returns:
        Dict of floats: `psnr`, `ab_error`, `ab_auc` and `num_images`.
    """
    if isinstance(model_or_fn, keras.Model):
        predict = model_or_fn.predict_on_batch
    elif callable(model_or_fn):
        predict = model_or_fn
    else:
        raise ValueError(
            "colorization_metrics expects `model_or_fn`, a keras.Model or a function; got "
            f"{type(model_or_fn).__name__}"
        )
    t = _thresholds(thresholds)
    totals = {"psnr": 0.0, "ab_error": 0.0, "ab_auc": 0.0}
    images_seen, pixels_seen = 0, 0
    for index, batch in enumerate(dataset):
        if max_batches is not None and index >= max_batches:
            break
        rgb = _rgb(batch[0] if isinstance(batch, (tuple, list)) else batch, "dataset images")
        prediction = _rgb(predict(rgb), "predictions")
        if tuple(prediction.shape) != tuple(rgb.shape):
            raise ValueError(
                "colorization_metrics expects `model_or_fn` to return images shaped like its "
                f"input {tuple(rgb.shape)}; got shape {tuple(prediction.shape)}"
            )
        d = ab_distance(rgb_to_lab(rgb)[..., 1:], rgb_to_lab(prediction)[..., 1:])
        n, pixels = int(rgb.shape[0]), int(np.prod(d.shape))
        totals["psnr"] += float(ops.sum(losses.psnr(rgb, prediction)))
        totals["ab_error"] += float(ops.sum(d))
        totals["ab_auc"] += float(ops.sum(_pixel_auc(d, t)))
        images_seen += n
        pixels_seen += pixels
    if images_seen == 0:
        raise ValueError("colorization_metrics expects a dataset with at least one image; got none")
    return {
        "psnr": totals["psnr"] / images_seen,
        "ab_error": totals["ab_error"] / pixels_seen,
        "ab_auc": totals["ab_auc"] / pixels_seen,
        "num_images": images_seen,
    }
