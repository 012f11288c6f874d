"""Automatic colorization: lightness in, ab out, as in Zhang, Isola and Efros 2016."""

import keras
from keras import ops

from tfvq.layers import ConvDecoder, ConvEncoder, LabColorizationHead
from tfvq.losses import colorization_terms
from tfvq.models.base import conv_arguments, warn_if_out_of_range
from tfvq.models.steps import SelfSupervisedModel
from tfvq.utils.checks import check_image_shape, check_int
from tfvq.utils.colorspace import lab_to_rgb, rgb_to_lab
from tfvq.utils.elements import split_element

HEADS = ("classification", "regression")


@keras.saving.register_keras_serializable(package="tfvq")
class Colorizer(SelfSupervisedModel):
    """Predicts the colours of an image from its lightness: RGB (or L) in, recolored RGB out.

    "Colorful Image Colorization", Zhang, Isola and Efros 2016. The image is converted to CIE
    L*a*b*; a conv encoder and decoder map the lightness L, centred to [-1, 1], back to a
    full-resolution feature map, and a `LabColorizationHead` predicts ab from it: logits over
    the 262 in-gamut ab bins trained with the class-rebalanced soft-encoded cross-entropy and
    decoded by the annealed mean (`head="classification"`, the paper's method; fit the
    rebalancing weights with `fit_rebalancing` before training), or ab values trained with an
    L2 loss (`head="regression"`, the paper's baseline). The output is the input's own L with
    the predicted ab, back in RGB.

    `fit` / `evaluate` take RGB images (the ab targets come from them) and report `loss`,
    `psnr` (dB, of the recolored RGB), `ab_error` (mean Euclidean ab distance, ab units) and
    `ab_auc` (the paper's raw-accuracy AuC, normalised to [0, 1]); see `tfvq.metrics.color`,
    whose `gray_colorization` baseline (ab = 0) a trained model should beat. `predict` takes
    RGB images in [0, 1] (or uint8), or L alone: a 1-channel float image is read as L* in
    [0, 100] and a 1-channel uint8 image as 8-bit gray pixels.

    Args:
        input_shape: (height, width, 3) of the RGB images (or (height, width, 1) to build the
            model for L input; both are accepted either way).
        head: "classification", "regression", or a `LabColorizationHead` instance.
        head_options: keyword arguments of the `LabColorizationHead` built from a string
            `head` (e.g. `temperature`, `rebalance_lambda`, `regression_loss`).
        feature_channels: channels of the default decoder's full-resolution output, which the
            head projects to ab or bin logits.
        hidden_channels, residual_channels, num_residual_layers, downsample_stages, downsample:
            the default conv stacks (see `tfvq.layers.ConvEncoder`); the decoder mirrors the
            encoder, so the resolution comes back to the input's.
        encoder: optional layer replacing the default encoder; it gets L as `(B, H, W, 1)`,
            scaled to [-1, 1].
        decoder: optional layer replacing the default decoder; it must return features
            `(B, H, W, C)` at the input's full resolution.

    Example:
    >>> import numpy as np
    >>> model = Colorizer((16, 16, 3), hidden_channels=8, residual_channels=4)
    >>> rgb = np.random.default_rng(0).uniform(0, 1, (4, 16, 16, 3)).astype("float32")
    >>> weights = model.fit_rebalancing(rgb)                # (262,), from the training images
    >>> model.compile(optimizer="adam")
    >>> history = model.fit(rgb, epochs=1, verbose=0)
    >>> tuple(model.predict(rgb[..., :1] * 100, verbose=0).shape)   # from L alone
    (4, 16, 16, 3)
    """

    metric_names = ("loss", "psnr", "ab_error", "ab_auc")
    _layer_arguments = ("encoder", "decoder", "head")

    def __init__(self, input_shape=(32, 32, 3), head="classification", head_options=None,
                 feature_channels=64, hidden_channels=64, residual_channels=32,
                 num_residual_layers=2, downsample_stages=2, downsample="stride", encoder=None,
                 decoder=None, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = check_image_shape(self, input_shape)
        if self.image_shape[-1] not in (1, 3):
            raise ValueError(
                "Colorizer expects input_shape (height, width, 3) for RGB or (height, width, 1) "
                f"for L; got input_shape={tuple(input_shape)!r}"
            )
        self.feature_channels = check_int(self, "feature_channels", feature_channels)
        self._custom_encoder = encoder is not None
        self._custom_decoder = decoder is not None
        conv = conv_arguments(self, hidden_channels, downsample_stages, downsample,
                              num_residual_layers, residual_channels)
        self.encoder = encoder or ConvEncoder(name="encoder", **conv)
        self.decoder = decoder or ConvDecoder(feature_channels, name="decoder", **conv)
        self.head_options = dict(head_options or {})
        if isinstance(head, LabColorizationHead):
            if self.head_options:
                raise ValueError(
                    "Colorizer expects head_options only with head='classification' or "
                    f"'regression'; got a LabColorizationHead and head_options={head_options!r}"
                )
            self.head_kind = None
            self.head = head
        elif head in HEADS:
            self.head_kind = head
            self.head = LabColorizationHead(mode=head, name="head", **self.head_options)
        else:
            raise ValueError(
                f"Colorizer expects head in {HEADS} or a LabColorizationHead; got {head!r}"
            )
        self._trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}
        self(ops.zeros((1,) + self.image_shape))  # creates every weight

    def build(self, input_shape):
        # Built in __init__: loading a .keras file needs no further build.
        self.built = True

    # Inputs ------------------------------------------------------------------------------

    def _pixels(self, data, argument):
        """Float images from what a user or a dataset passes, checked against input_shape."""
        x, _ = split_element(data, "Colorizer")
        x = ops.convert_to_tensor(x)
        dtype = keras.backend.standardize_dtype(x.dtype)
        if dtype != "uint8" and not keras.backend.is_float_dtype(dtype):
            raise ValueError(
                f"Colorizer expects `{argument}` as float images (RGB in [0, 1], or L in "
                f"[0, 100]) or uint8 images; got dtype {dtype}"
            )
        shape = tuple(x.shape)
        height, width = self.image_shape[:2]
        # A dimension is None when tf.function relaxed the shape after a retrace (e.g. predict
        # called with RGB, then with L): only known sizes can be checked.
        if (
            len(shape) != 4
            or shape[-1] not in (1, 3, None)
            or any(s is not None and s != e for s, e in zip(shape[1:3], (height, width)))
        ):
            raise ValueError(
                f"Colorizer expects `{argument}` of shape (batch, {height}, {width}, 3) for RGB "
                f"or (batch, {height}, {width}, 1) for L; got shape {shape}"
            )
        return x, dtype

    def _lightness(self, images):
        """L* `(B, H, W, 1)` in [0, 100], float32, from RGB, gray uint8 or L images."""
        x, dtype = self._pixels(images, "images")
        x = ops.cast(x, "float32") / 255.0 if dtype == "uint8" else ops.cast(x, "float32")
        # One gray channel broadcasts to three equal ones.
        lightness = rgb_to_lab(x + ops.zeros((3,)))[..., :1]
        if dtype == "uint8" or x.shape[-1] == 3:
            return lightness
        if x.shape[-1] == 1:
            return x
        # Channels unknown while tracing: a select, since XLA compiles both branches of a cond.
        return ops.where(ops.shape(x)[-1] == 1, x[..., :1], lightness)

    def _images(self, data):
        """RGB in [0, 1] for `fit` / `evaluate`, which need colour for their ab targets."""
        x, dtype = self._pixels(data, "images")
        if x.shape[-1] == 1:
            raise ValueError(
                "Colorizer trains and evaluates on RGB images, whose ab are the targets; got "
                f"shape {tuple(x.shape)} (L alone is for predict)"
            )
        x = ops.cast(x, "float32")
        return x / 255.0 if dtype == "uint8" else x

    # Model -------------------------------------------------------------------------------

    def _head_outputs(self, lightness, training=False):
        """Head outputs (bin logits or ab) from L* `(B, H, W, 1)`."""
        x = ops.cast((lightness - 50.0) / 50.0, self.compute_dtype)
        features = self.decoder(self.encoder(x, training=training), training=training)
        if len(features.shape) != 4 or any(
            s is not None and s != e for s, e in zip(features.shape[1:3], self.image_shape[:2])
        ):
            raise ValueError(
                "Colorizer expects the decoder to return features (batch, "
                f"{self.image_shape[0]}, {self.image_shape[1]}, channels), the input's full "
                f"resolution; got shape {tuple(features.shape)}"
            )
        return self.head(features, training=training)

    def _check_data(self, x):
        # L alone (one channel) lies in [0, 100]; only RGB is held to [0, 1].
        images, _ = split_element(x, "Colorizer")
        if getattr(images, "shape", (None,))[-1] == 3:
            warn_if_out_of_range(self, x)

    def predict_ab(self, images, training=False):
        """Predicted ab `(B, H, W, 2)` of RGB (or L) images, in ab units."""
        return self.head.decode(self._head_outputs(self._lightness(images), training))

    def call(self, inputs, training=False):
        lightness = self._lightness(inputs)
        ab = self.head.decode(self._head_outputs(lightness, training))
        return lab_to_rgb(ops.concatenate([lightness, ops.cast(ab, "float32")], axis=-1))

    def _step_inputs(self, data):
        return self._images(data)

    def _loss_terms(self, x, training):
        lab = rgb_to_lab(x)
        lightness, ab_true = lab[..., :1], lab[..., 1:]
        outputs = self._head_outputs(lightness, training)
        loss = self.head.loss(ab_true, outputs)
        recolored = lab_to_rgb(ops.concatenate([lightness, self.head.decode(outputs)], axis=-1))
        terms = colorization_terms(x, ops.stop_gradient(recolored))
        return loss + self._added_losses(self.encoder, self.decoder), terms

    def fit_rebalancing(self, images, max_batches=None):
        """Fits the classification head's class-rebalancing weights (paper Eq. 4) to images.

        Args:
            images: RGB images `(N, H, W, 3)` or an iterable of RGB batches (or of
                `(images, anything)` tuples), e.g. `tfvq.data.load("cifar10", "train")`:
                the training set, or a sample of it.
            max_batches: stop after this many batches of an iterable.

        Returns:
            The weights, a NumPy array `(Q,)` (also stored in the head and saved with it).
        """
        if self.head.mode != "classification":
            raise ValueError(
                "Colorizer.fit_rebalancing needs a classification head; got "
                f"head mode={self.head.mode!r}"
            )
        batches = [images] if hasattr(images, "shape") else images

        def ab_batches():
            for index, batch in enumerate(batches):
                if max_batches is not None and index >= max_batches:
                    return
                yield ops.convert_to_numpy(rgb_to_lab(self._images(batch))[..., 1:])

        return self.head.fit_rebalancing(ab_batches())

    # Config ------------------------------------------------------------------------------

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "input_shape": self.image_shape,
            "head": self.head_kind or serialize(self.head),
            "head_options": self.head_options,
            "feature_channels": self.feature_channels,
            **self._conv_config,
            "encoder": serialize(self.encoder) if self._custom_encoder else None,
            "decoder": serialize(self.decoder) if self._custom_decoder else None,
        }
