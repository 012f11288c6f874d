"""Colour layers: RGB <-> Lab conversion and the ab prediction head of a colorization model."""

import functools

import keras
import numpy as np
from keras import ops

from tfvq.utils.colorspace import lab_to_rgb, rgb_to_lab

# Cube-face samples per edge for the gamut computation. Projecting the RGB cube's surface onto
# the ab plane covers the same ab set as the whole cube (every line along L through the solid
# leaves it through the surface), so sampling the six faces is enough. 512 finds every cell that
# 1024 finds; 256 (the 8-bit grid) misses one sliver cell.
_GAMUT_SAMPLES_PER_EDGE = 512
_CHUNK = 16384  # rows per distance matrix in fit_rebalancing, to bound memory at ~20 MB


@functools.lru_cache(maxsize=None)
def _gamut_bins(grid_size):
    edge = np.linspace(0.0, 1.0, _GAMUT_SAMPLES_PER_EDGE, dtype="float32")
    u, v = (g.ravel() for g in np.meshgrid(edge, edge, indexing="ij"))
    faces = [
        np.insert(np.stack([u, v], axis=1), axis, value, axis=1)
        for axis in range(3)
        for value in (0.0, 1.0)
    ]
    lab = ops.convert_to_numpy(rgb_to_lab(np.concatenate(faces)))
    # Dedupe via a flat key: np.unique(axis=0) on millions of rows takes seconds.
    cells = np.round(lab[:, 1:] / grid_size).astype("int64")
    low = cells.min(axis=0)
    span = cells[:, 1].max() - low[1] + 1
    keys = np.unique((cells[:, 0] - low[0]) * span + (cells[:, 1] - low[1]))
    cells = np.stack([keys // span + low[0], keys % span + low[1]], axis=1)
    return (cells * grid_size).astype("float32")


def in_gamut_ab_bins(grid_size=10.0):
    """Centres of the ab grid cells that some sRGB colour falls into, shape `(Q, 2)`.

    Cells are centred on multiples of `grid_size` (a cell covers centre +- grid_size / 2), as in
    Zhang et al. 2016. A cell is kept when the ab of at least one sRGB colour, at any lightness,
    lies inside it. Sorted by a, then b. With `grid_size=10` this gives Q = 262.
    """
    return _gamut_bins(float(grid_size)).copy()


def _squared_distances(ab, bins):
    # |x - c|^2 expanded, so the result is (..., Q) without a (..., Q, 2) intermediate.
    cross = ops.einsum("...i,qi->...q", ab, bins)
    sq = ops.sum(ab * ab, axis=-1, keepdims=True) + ops.sum(bins * bins, axis=-1)
    return ops.maximum(sq - 2.0 * cross, 0.0)


def _check_channels(layer, shape, expected, argument, meaning):
    if shape[-1] is not None and shape[-1] != expected:
        raise ValueError(
            f"{layer} expects `{argument}` whose last axis is {meaning}={expected}; "
            f"got shape {tuple(shape)}"
        )


@keras.saving.register_keras_serializable(package="tfvq")
class RGBToLab(keras.layers.Layer):
    """Converts sRGB images in [0, 1] to CIE L*a*b* (D65, 2 degree observer).

    A layer around `tfvq.utils.rgb_to_lab`, which follows the CIE 1976 L*a*b* definition with the
    sRGB transfer curve and agrees with `skimage.color.rgb2lab` to 1e-3. No weights.

    Call arguments:
        inputs: float tensor `(..., 3)`, gamma-encoded sRGB in [0, 1], channels last.

    Returns:
        Tensor of the same shape: L in [0, 100], a and b roughly in [-110, 110].

    Example:
    >>> import numpy as np
    >>> lab = RGBToLab()(np.random.rand(2, 8, 8, 3).astype("float32"))  # (2, 8, 8, 3)
    """

    def build(self, input_shape):
        _check_channels("RGBToLab", input_shape, 3, "inputs", "channels (R, G, B)")

    def call(self, inputs):
        return rgb_to_lab(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="tfvq")
class LabToRGB(keras.layers.Layer):
    """Converts CIE L*a*b* images (D65, 2 degree observer) to sRGB in [0, 1].

    A layer around `tfvq.utils.lab_to_rgb`, the inverse of `RGBToLab`; it agrees with
    `skimage.color.lab2rgb` to 1e-3. Lab colours outside the sRGB gamut (common for predicted ab)
    are clipped to [0, 1] per channel. No weights.

    Call arguments:
        inputs: float tensor `(..., 3)` holding L, a, b, channels last.

    Returns:
        Tensor of the same shape, gamma-encoded sRGB in [0, 1].

    Example:
    >>> import numpy as np
    >>> rgb = LabToRGB()(np.array([[[50.0, 20.0, -30.0]]], "float32"))  # (1, 1, 3)
    """

    def build(self, input_shape):
        _check_channels("LabToRGB", input_shape, 3, "inputs", "channels (L, a, b)")

    def call(self, inputs):
        return lab_to_rgb(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="tfvq")
class LabColorizationHead(keras.layers.Layer):
    """Predicts the ab channels of an image from decoder features, as ab values or bin logits.

    Zhang, Isola and Efros 2016, "Colorful Image Colorization". In `"classification"` mode a 1x1
    convolution gives logits over Q quantized ab bins (grid 10). Ground truth is soft-encoded
    over its `num_neighbors` nearest bins with a Gaussian of width `sigma` (Sec. 2.1), the loss is
    the cross-entropy weighted by class rebalancing, w = ((1 - lambda) p~ + lambda / Q)^-1
    normalised so that E_p~[w] = 1, with p~ the Gaussian-smoothed empirical bin distribution
    (Eq. 2-4; fit it with `fit_rebalancing`), and `decode` turns logits into ab with the annealed
    mean at temperature T (Eq. 5). In `"regression"` mode the convolution is followed by
    `ab_range * tanh`, trained with MSE (the paper's L2 baseline) or Huber.

    The bins are computed here, not copied: a cell is kept when the ab of some sRGB colour, at
    any lightness, lies inside it (`in_gamut_ab_bins`). This gives Q = 262 bins, not the paper's
    313. The paper does not say how its in-gamut set was found (its code ships a fixed table),
    presumably with a looser test than "an sRGB colour reaches this cell"; neither the convex
    hull of the sRGB ab gamut (233 bin centres inside) nor the cells touching that hull (269)
    gives 313, so we keep the strict, reproducible rule: no bin that no sRGB image can produce.

    Args:
        mode: `"classification"` (bin logits) or `"regression"` (ab values).
        grid_size: ab bin spacing. Defaults to 10 (the paper).
        ab_range: scale of the tanh output in regression mode. Defaults to 110.
        num_neighbors: bins sharing each soft-encoded target. Defaults to 5 (the paper).
        sigma: Gaussian width of the soft encoding, in ab units. Defaults to 5 (the paper).
        temperature: annealed-mean temperature of `decode`; 1 is the mean, towards 0 the mode.
            Defaults to 0.38 (the paper).
        rebalance_lambda: mix of the smoothed prior with a uniform one in the rebalancing
            weights. Defaults to 0.5 (the paper).
        rebalance_sigma: Gaussian width, in ab units, smoothing the empirical bin distribution.
            Defaults to 5 (the paper).
        regression_loss: `"mse"` or `"huber"`, for regression mode.
        huber_delta: where the Huber loss turns linear, in ab units. Defaults to 1.
        kernel_initializer: initializer of the 1x1 convolution.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: features `(B, H, W, C)`.

    Returns:
        Logits `(B, H, W, Q)` in classification mode, ab `(B, H, W, 2)` in regression mode.
        `decode` maps either to ab, `loss(ab_true, outputs)` gives the training loss.

    Example:
    >>> import numpy as np
    >>> head = LabColorizationHead(mode="classification")
    >>> ab = np.random.uniform(-40, 40, (2, 8, 8, 2)).astype("float32")
    >>> weights = head.fit_rebalancing(ab)                   # (262,)
    >>> logits = head(np.random.rand(2, 8, 8, 16).astype("float32"))  # (2, 8, 8, 262)
    >>> loss = head.loss(ab, logits)                         # scalar
    >>> ab_pred = head.decode(logits)                        # (2, 8, 8, 2)
    """

    def __init__(
        self,
        mode="classification",
        grid_size=10.0,
        ab_range=110.0,
        num_neighbors=5,
        sigma=5.0,
        temperature=0.38,
        rebalance_lambda=0.5,
        rebalance_sigma=5.0,
        regression_loss="mse",
        huber_delta=1.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in ("classification", "regression"):
            raise ValueError(
                f"LabColorizationHead expects mode='classification' or 'regression'; got {mode!r}"
            )
        if regression_loss not in ("mse", "huber"):
            raise ValueError(
                "LabColorizationHead expects regression_loss='mse' or 'huber'; "
                f"got {regression_loss!r}"
            )
        for name, value in [
            ("grid_size", grid_size),
            ("ab_range", ab_range),
            ("sigma", sigma),
            ("temperature", temperature),
            ("rebalance_sigma", rebalance_sigma),
            ("huber_delta", huber_delta),
        ]:
            if not value > 0:
                raise ValueError(f"LabColorizationHead expects {name} > 0; got {name}={value}")
        if not 0.0 <= rebalance_lambda <= 1.0:
            raise ValueError(
                "LabColorizationHead expects rebalance_lambda in [0, 1]; "
                f"got rebalance_lambda={rebalance_lambda}"
            )
        self.mode = mode
        self.grid_size = grid_size
        self.ab_range = ab_range
        self.num_neighbors = num_neighbors
        self.sigma = sigma
        self.temperature = temperature
        self.rebalance_lambda = rebalance_lambda
        self.rebalance_sigma = rebalance_sigma
        self.regression_loss = regression_loss
        self.huber_delta = huber_delta
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        if mode == "classification":
            self.bins = in_gamut_ab_bins(grid_size)
            self.num_bins = len(self.bins)
            if not 1 <= num_neighbors <= self.num_bins:
                raise ValueError(
                    f"LabColorizationHead expects num_neighbors in [1, {self.num_bins}] "
                    f"(the number of bins); got num_neighbors={num_neighbors}"
                )
            # Uniform until fit_rebalancing; a weight so that a fitted prior is saved with it.
            self.rebalancing_weights = self.add_weight(
                shape=(self.num_bins,),
                initializer="ones",
                trainable=False,
                name="rebalancing_weights",
            )
        else:
            self.bins = None
            self.num_bins = None
        self.projection = keras.layers.Conv2D(
            self.num_bins or 2,
            1,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="projection",
        )

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "LabColorizationHead expects inputs of shape (batch, height, width, channels) "
                f"with known channels; got shape {tuple(input_shape)}"
            )
        self.projection.build(input_shape)

    def call(self, inputs):
        outputs = self.projection(inputs)
        if self.mode == "regression":
            return self.ab_range * ops.tanh(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_bins or 2)

    def _ab(self, ab, argument):
        ab = ops.cast(ab, "float32")
        _check_channels("LabColorizationHead", ab.shape, 2, argument, "channels (a, b)")
        return ab

    def _classification_only(self, method):
        if self.mode != "classification":
            raise ValueError(
                f"LabColorizationHead.{method} needs mode='classification'; got mode={self.mode!r}"
            )

    def encode(self, ab):
        """Soft-encodes ab `(..., 2)` into bin probabilities `(..., Q)` (paper Sec. 2.1)."""
        self._classification_only("encode")
        ab = self._ab(ab, "ab")
        d2 = _squared_distances(ab, ops.convert_to_tensor(self.bins))
        _, nearest = ops.top_k(-d2, k=self.num_neighbors)
        mask = sum(ops.one_hot(nearest[..., i], self.num_bins) for i in range(self.num_neighbors))
        # Shifting by the nearest distance leaves the normalised weights unchanged but keeps
        # the exponentials from all underflowing for ab far from every bin.
        d2 = d2 - ops.min(d2, axis=-1, keepdims=True)
        weights = ops.exp(-d2 / (2.0 * self.sigma**2)) * mask
        return ops.stop_gradient(weights / ops.sum(weights, axis=-1, keepdims=True))

    def decode(self, outputs, temperature=None):
        """Maps the head's outputs to ab `(..., 2)`: the annealed mean (Eq. 5) of bin logits."""
        if self.mode == "regression":
            return outputs
        temperature = self.temperature if temperature is None else temperature
        if not temperature > 0:
            raise ValueError(
                f"LabColorizationHead.decode expects temperature > 0; got temperature={temperature}"
            )
        logits = ops.cast(outputs, "float32")
        _check_channels("LabColorizationHead", logits.shape, self.num_bins, "outputs", "bins")
        # softmax(log(softmax(z)) / T) == softmax(z / T): the log-normaliser cancels.
        probs = ops.softmax(logits / temperature, axis=-1)
        return ops.einsum("...q,qi->...i", probs, ops.convert_to_tensor(self.bins))

    def loss(self, ab_true, outputs):
        """Mean per-pixel loss of `outputs` (this head's call result) against ab `(..., 2)`."""
        ab_true = self._ab(ab_true, "ab_true")
        outputs = ops.cast(outputs, "float32")
        if self.mode == "regression":
            _check_channels("LabColorizationHead", outputs.shape, 2, "outputs", "channels (a, b)")
            error = ops.abs(ab_true - outputs)
            if self.regression_loss == "mse":
                return ops.mean(ops.square(error))
            quadratic = ops.minimum(error, self.huber_delta)
            return ops.mean(0.5 * quadratic**2 + self.huber_delta * (error - quadratic))
        _check_channels("LabColorizationHead", outputs.shape, self.num_bins, "outputs", "bins")
        targets = self.encode(ab_true)
        cross_entropy = -ops.sum(targets * ops.log_softmax(outputs, axis=-1), axis=-1)
        # Each pixel is weighted by the rebalancing weight of its most likely target bin (Eq. 3).
        weights = ops.take(
            ops.cast(self.rebalancing_weights, "float32"), ops.argmax(targets, axis=-1)
        )
        return ops.mean(weights * cross_entropy)

    def fit_rebalancing(self, ab):
        """Sets the class-rebalancing weights from ground-truth ab values (paper Eq. 4).

        Args:
            ab: an array `(..., 2)` of ab values, or an iterable of such arrays (for example a
                `tf.data.Dataset` of ab batches), typically a training set.

        Returns:
            The weights, a NumPy array `(Q,)` whose expectation under the smoothed empirical
            bin distribution is 1.
        """
        self._classification_only("fit_rebalancing")
        bins = ops.convert_to_tensor(self.bins)
        counts = np.zeros(self.num_bins)
        for batch in [ab] if hasattr(ab, "shape") else ab:
            batch = np.asarray(batch, dtype="float32")
            _check_channels("LabColorizationHead.fit_rebalancing", batch.shape, 2, "ab", "ab")
            batch = batch.reshape(-1, 2)
            for start in range(0, len(batch), _CHUNK):
                nearest = ops.argmin(_squared_distances(batch[start : start + _CHUNK], bins), -1)
                counts += np.bincount(ops.convert_to_numpy(nearest), minlength=self.num_bins)
        if counts.sum() == 0:
            raise ValueError(
                "LabColorizationHead.fit_rebalancing expects at least one ab value; got none"
            )
        centres = self.bins.astype("float64")
        kernel = np.exp(
            -((centres[:, None] - centres[None]) ** 2).sum(-1) / (2.0 * self.rebalance_sigma**2)
        )
        prior = kernel @ (counts / counts.sum())
        prior /= prior.sum()
        weights = 1.0 / ((1.0 - self.rebalance_lambda) * prior + self.rebalance_lambda / len(prior))
        weights /= (prior * weights).sum()
        self.rebalancing_weights.assign(weights.astype("float32"))
        return weights.astype("float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "mode": self.mode,
                "grid_size": self.grid_size,
                "ab_range": self.ab_range,
                "num_neighbors": self.num_neighbors,
                "sigma": self.sigma,
                "temperature": self.temperature,
                "rebalance_lambda": self.rebalance_lambda,
                "rebalance_sigma": self.rebalance_sigma,
                "regression_loss": self.regression_loss,
                "huber_delta": self.huber_delta,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
