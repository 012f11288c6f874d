"""Reconstruction likelihoods, KL term, PSNR and colour terms shared by the tfvq models.

Each reconstruction function returns one value per example, so a model can average (AE,
VQ-VAE) or feed per-example sums into an ELBO (VAE) without knowing which likelihood it uses.
The per-batch colour terms live here rather than in `tfvq.metrics.color` because the
`Colorizer` reports them while it trains, and models must not import `tfvq.metrics` (which
imports models to score them).
"""

import keras
import numpy as np
from keras import ops
from tensorflow_probability import distributions as tfd

from tfvq.utils.colorspace import rgb_to_lab

RECONSTRUCTION_LOSSES = ("mse", "bce", "logistic")
_LEVELS = 255.0  # 8-bit images: 256 levels, 0..255
# Decoders predict the offset of a pixel from mid-gray, so a zero output is a mid-gray image
# (as a zero logit is for "bce"): Sonnet's recipe of training on [-0.5, 0.5]. Without it the
# last bias has to travel ~0.5 at Adam's ~lr per step, and the notebook VQ-VAE spent its first
# few hundred steps predicting a constant image (benchmarks/RESULTS.md).
MID_GRAY = 0.5


def _per_example(values, reduce):
    axes = tuple(range(1, len(values.shape)))
    return reduce(values, axis=axes)


def mean_squared_error(x, x_hat):
    """Mean squared error per example: (B,)."""
    return _per_example(ops.square(x - x_hat), ops.mean)


def psnr(x, x_hat, data_range=1.0):
    """Peak signal-to-noise ratio in dB per example, for data spanning `data_range`: (B,)."""
    mse = ops.maximum(mean_squared_error(x, x_hat), 1e-10)
    return 10.0 * ops.log(data_range**2 / mse) / ops.log(10.0)


def gaussian_kl(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per example, in nats, via tfp: (B,)."""
    posterior = tfd.Normal(mean, ops.exp(0.5 * log_var))
    prior = tfd.Normal(ops.zeros_like(mean), ops.ones_like(mean))
    return _per_example(tfd.kl_divergence(posterior, prior), ops.sum)


class Likelihood:
    """How a decoder's raw output becomes an image and a reconstruction cost.

    `"mse"`: the output plus `MID_GRAY` is the image; the cost is the squared error (a Gaussian
    of fixed variance). `"bce"`: the output is Bernoulli logits over pixel intensities in
    [0, 1]. `"logistic"`: the output holds a location (relative to `MID_GRAY`) and a log-scale
    per channel of a logistic discretized to 256 levels (Salimans et al. 2017, PixelCNN++, one
    component), whose NLL gives honest bits/dim for 8-bit images scaled to [0, 1].

    Args:
        name: "mse", "bce" or "logistic".
    """

    def __init__(self, name):
        if name not in RECONSTRUCTION_LOSSES:
            raise ValueError(
                f"reconstruction_loss must be one of {RECONSTRUCTION_LOSSES}; got {name!r}"
            )
        self.name = name

    @property
    def channel_multiplier(self):
        """Decoder output channels per image channel."""
        return 2 if self.name == "logistic" else 1

    def location(self, output):
        """The predicted pixel values in image units, unclipped (the mean for "mse")."""
        if self.name == "bce":
            return ops.sigmoid(output)
        if self.name == "logistic":
            output, _ = ops.split(output, 2, axis=-1)
        return output + MID_GRAY

    def to_image(self, output):
        if self.name == "logistic":
            return ops.clip(self.location(output), 0.0, 1.0)
        return self.location(output)

    def nll(self, x, output):
        """Per-example cost summed over pixels (nats for "bce" and "logistic"): (B,)."""
        if self.name == "mse":
            return _per_example(ops.square(x - self.location(output)), ops.sum)
        if self.name == "bce":
            return _per_example(
                ops.binary_crossentropy(x, output, from_logits=True), ops.sum
            )
        _, log_scale = ops.split(output, 2, axis=-1)
        scale = ops.exp(ops.maximum(log_scale, -7.0))
        return discretized_nll(tfd.Logistic, x, self.location(output), scale)


def discretized_nll(family, x, loc, scale):
    """NLL in nats per example of 8-bit images `x` in [0, 1] under a discretized `family`.

    The continuous distribution `family(loc, scale)` (e.g. `tfd.Logistic`, `tfd.Normal`; in
    [0, 1] units) is integrated over each of the 256 levels' bins, the two end bins absorbing
    the tails (PixelCNN++), so the result is a proper probability of the 8-bit values.

    Returns:
        (B,) sums over all values of -log P(x).
    """
    # QuantizedDistribution gives P(k) = CDF(k) - CDF(k - 1) (bins (k - 1, k]); shifting the
    # distribution down by half a level centres the bins on the levels: CDF(k + .5) - CDF(k - .5).
    pixels = tfd.QuantizedDistribution(
        family(loc * _LEVELS - 0.5, scale * _LEVELS), low=0.0, high=_LEVELS
    )
    return -_per_example(pixels.log_prob(ops.round(x * _LEVELS)), ops.sum)


def num_dims(shape):
    """Number of values in one example of `shape` (batch axis excluded)."""
    size = 1
    for d in shape:
        size *= int(d)
    return size


def bits_per_dim(nll_nats, dims):
    """Converts a per-example NLL in nats over 8-bit values in [0, 1] to bits per dimension.

    Because the likelihood is over values scaled by 1/255, a continuous density would need the
    log(255) change of variables; the discretized logistic already lives on the 256 levels, so
    no correction applies to it.
    """
    return nll_nats / (dims * ops.log(2.0))


# Colour terms (Zhang, Isola and Efros 2016, Sec. 3.1): see `tfvq.metrics.color` for the
# dataset-level scores built on them.

# Zhang et al. 2016 sweep the threshold over 0..150 ab units.
DEFAULT_THRESHOLDS = np.arange(151, dtype="float32")


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
        thresholds: see `tfvq.metrics.color.ab_accuracy_auc`.

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
        "psnr": ops.mean(psnr(rgb_true, rgb_pred)),
        "ab_error": ops.mean(d),
        "ab_auc": ops.mean(_pixel_auc(d, _thresholds(thresholds))),
    }


__all__ = [
    "DEFAULT_THRESHOLDS",
    "Likelihood",
    "RECONSTRUCTION_LOSSES",
    "ab_distance",
    "bits_per_dim",
    "colorization_terms",
    "discretized_nll",
    "gaussian_kl",
    "mean_squared_error",
    "num_dims",
    "psnr",
]
