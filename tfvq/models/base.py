"""What AE, VAE and VQ-VAE share: input checks, loss terms, metrics, default conv stacks."""

import warnings

import keras
import numpy as np
from keras import ops

from tfvq import losses
from tfvq.layers import ConvDecoder, ConvEncoder
from tfvq.models.steps import SelfSupervisedModel
from tfvq.utils.checks import check_image_shape
from tfvq.utils.elements import split_element


class ImageAutoencoder(SelfSupervisedModel):
    """Base of the image models: input checks, loss terms and the metrics they report.

    A subclass builds `self.encoder` / `self.decoder` and implements `_loss_terms(x, training)`
    returning the scalar loss (mean over this replica's examples) and a dict of metric values.
    Inputs are float images in [0, 1], or uint8 images that are scaled to [0, 1] first; a
    dataset may yield `images` or `(images, anything)`. Inside, the networks work on
    [-0.5, 0.5] as in Sonnet's recipe, which trains markedly faster than raw [0, 1]
    (benchmarks/RESULTS.md): the default encoders subtract 0.5, and every decoder's output,
    a custom one's too, is read as the offset from mid-gray (`tfvq.losses.MID_GRAY`).

    Args:
        input_shape: (height, width, channels) of one image.
        reconstruction_loss: "mse", "bce" or "logistic" (see `tfvq.losses.Likelihood`).
        data_variance: per-pixel variance of the training data; when given, the MSE term is
            divided by it (the VQ-VAE paper's normalised MSE) and `normalized_mse` is reported.
        data_range: max - min of the pixel values, for PSNR (1 for [0, 1] or [-0.5, 0.5]).
        encoder, decoder: optional Keras layers replacing the default conv stacks.
    """

    metric_names = ("loss", "reconstruction_loss", "mse", "psnr")
    _layer_arguments = ("encoder", "decoder")

    def __init__(self, input_shape, reconstruction_loss="mse", data_variance=None,
                 data_range=1.0, encoder=None, decoder=None, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = check_image_shape(self, input_shape)
        if data_variance is not None and data_variance <= 0:
            raise ValueError(f"data_variance must be > 0; got {data_variance}")
        self.likelihood = losses.Likelihood(reconstruction_loss)
        self.reconstruction_loss = reconstruction_loss
        self.data_variance = None if data_variance is None else float(data_variance)
        self.data_range = float(data_range)
        self._custom_encoder = encoder is not None
        self._custom_decoder = decoder is not None
        names = list(self.metric_names)
        if self.data_variance is not None:
            names.append("normalized_mse")
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}

    def _finish_init(self):
        """Creates every weight by running one image through the model."""
        self(ops.zeros((1,) + self.image_shape))

    def build(self, input_shape):
        # Built in __init__ (`_finish_init`): loading a .keras file needs no further build.
        self.built = True

    # Default conv stacks -----------------------------------------------------------------

    def _map_encoder(self, conv_kwargs, output_channels):
        return ConvEncoder(output_channels=output_channels, input_offset=-losses.MID_GRAY,
                           name="encoder", **conv_kwargs)

    def _map_decoder(self, conv_kwargs):
        channels = self.image_shape[-1] * self.likelihood.channel_multiplier
        return ConvDecoder(channels, name="decoder", **conv_kwargs)

    def _vector_encoder(self, conv_kwargs, units):
        """Conv stack, then a dense layer to a flat latent of `units`."""
        return keras.Sequential(
            [ConvEncoder(input_offset=-losses.MID_GRAY, **conv_kwargs), keras.layers.Flatten(),
             keras.layers.Dense(units)],
            name="encoder",
        )

    def _vector_decoder(self, conv_kwargs):
        """Dense layer back to the encoder's last map, then the mirrored conv stack."""
        encoder = ConvEncoder(**conv_kwargs)
        height, width, _ = self.image_shape
        map_shape = (height // encoder.factor, width // encoder.factor, conv_kwargs["hidden_channels"])
        return keras.Sequential(
            [
                keras.layers.Dense(losses.num_dims(map_shape), activation="relu"),
                keras.layers.Reshape(map_shape),
                self._map_decoder(conv_kwargs),
            ],
            name="decoder",
        )

    # Encoding and decoding ---------------------------------------------------------------

    def encode(self, x, training=False):
        """Latents of images `x` (checked and scaled as `fit` does); their form is the model's."""
        return self._encode(self._images(x), training)

    def decode(self, latents, training=False):
        """Images in [0, 1] from latents, in the variable dtype (float32 under a mixed policy,
        as Keras advises for a model's outputs: bfloat16 keeps only 8 bits of a pixel)."""
        image = self.likelihood.to_image(self.decoder(latents, training=training))
        return ops.cast(image, self.variable_dtype)

    def _encode(self, x, training):
        """The latents of checked images: the encoder's output unless a model says otherwise."""
        return self.encoder(x, training=training)

    # Inputs ------------------------------------------------------------------------------

    def _check_data(self, x):
        warn_if_out_of_range(self, x)

    def _images(self, data):
        """Checks and converts what a dataset yields (or what a user passes) to float images."""
        x, _ = split_element(data, type(self).__name__)
        x = ops.convert_to_tensor(x)
        dtype = keras.backend.standardize_dtype(x.dtype)
        if dtype == "uint8":
            x = ops.cast(x, "float32") / 255.0
        elif "float" not in dtype:
            raise ValueError(
                f"{type(self).__name__} expects float images (scaled to [0, 1] or similar) or "
                f"uint8 images; got dtype {dtype}"
            )
        shape = tuple(x.shape)
        expected = self.image_shape
        if len(shape) != 4 or any(
            s is not None and s != e for s, e in zip(shape[1:], expected)
        ):
            raise ValueError(
                f"{type(self).__name__} expects images of shape (batch,) + {expected}; got "
                f"shape {shape}"
            )
        return ops.cast(x, self.compute_dtype)

    # Loss terms --------------------------------------------------------------------------

    def _reconstruction_terms(self, x, output, reduce=ops.mean):
        """Metric values every model reports; `reconstruction_loss` is the loss term."""
        x = ops.cast(x, "float32")
        output = ops.cast(output, "float32")
        image = self.likelihood.to_image(output)
        mse = losses.mean_squared_error(x, image)
        if self.likelihood.name == "mse" and reduce is ops.mean:
            # Per-pixel mean: normalised by the data variance when given (Sonnet's recipe).
            term = mse if self.data_variance is None else mse / self.data_variance
        elif reduce is ops.mean:
            term = self.likelihood.nll(x, output) / losses.num_dims(self.image_shape)
        else:
            term = self.likelihood.nll(x, output)
        terms = {
            "reconstruction_loss": ops.mean(term),
            "mse": ops.mean(mse),
            "psnr": ops.mean(losses.psnr(x, image, self.data_range)),
        }
        if self.data_variance is not None:
            terms["normalized_mse"] = terms["mse"] / self.data_variance
        return terms, term

    def _step_inputs(self, data):
        return self._images(data)

    def _regularization(self):
        """Losses the encoder and decoder add (weight regularizers, custom `add_loss`).

        The quantizer's loss is taken from its return value instead of `self.losses`: under
        `MirroredStrategy` the replicas share one layer object and its list of added losses,
        and a replica waiting in the codebook all-reduce would read another replica's loss.
        """
        return self._added_losses(self.encoder, self.decoder)

    # Config ------------------------------------------------------------------------------

    def _base_config(self):
        config = {
            "input_shape": self.image_shape,
            "reconstruction_loss": self.reconstruction_loss,
            "data_variance": self.data_variance,
            "data_range": self.data_range,
            "encoder": keras.saving.serialize_keras_object(self.encoder) if self._custom_encoder else None,
            "decoder": keras.saving.serialize_keras_object(self.decoder) if self._custom_decoder else None,
        }
        return {**super().get_config(), **config, **getattr(self, "_conv_config", {})}


def conv_arguments(model, hidden_channels, downsample_stages, downsample, num_residual_layers,
                   residual_channels):
    """The keyword arguments of a model's default `ConvEncoder` / `ConvDecoder`, kept on it.

    Each becomes an attribute of `model`, and the dict, `model._conv_config`, part of its config.
    """
    conv = dict(hidden_channels=hidden_channels, downsample_stages=downsample_stages,
                downsample=downsample, num_residual_layers=num_residual_layers,
                residual_channels=residual_channels)
    for name, value in conv.items():
        setattr(model, name, value)
    model._conv_config = conv
    return conv


def warn_if_out_of_range(model, x):
    """Warns once per model when float arrays given to fit/evaluate/predict leave [0, 1].

    A VQ-VAE fed 0..255 floats trains with a loss in the tens of thousands and no other sign
    of the mistake. Arrays are checked (min and max, one pass); datasets are not, since reading
    one batch ahead can cost a shuffle buffer of decoded images.
    """
    if getattr(model, "_range_warned", False):
        return
    try:
        import tensorflow as tf

        if isinstance(x, tf.data.Dataset):
            return
        images, _ = split_element(x, type(model).__name__)
        array = np.asarray(images)
    except (ValueError, TypeError):
        return
    if array.size == 0 or not np.issubdtype(array.dtype, np.floating):
        return
    low, high = float(np.nanmin(array)), float(np.nanmax(array))
    if low < -1e-3 or high > 1.0 + 1e-3:
        model._range_warned = True
        warnings.warn(
            f"{type(model).__name__} expects float images in [0, 1] (or uint8 in 0..255); got "
            f"values in [{low:.4g}, {high:.4g}]. Divide by 255, or pass uint8 images.",
            stacklevel=4,
        )
