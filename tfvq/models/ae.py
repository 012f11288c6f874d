"""Deterministic convolutional autoencoder."""

import keras

from tfvq.models.base import ImageAutoencoder, conv_arguments
from tfvq.utils.checks import check_int


@keras.saving.register_keras_serializable(package="tfvq")
class AE(ImageAutoencoder):
    """Plain autoencoder: conv encoder to a flat vector or a latent map, conv decoder back.

    The baseline of the AE-design experiment (MSE vs BCE, stride vs pooling). With
    `latent_dim` the latent is a vector (a dense layer after the conv stack); with
    `latent_dim=None` it is the conv map itself, with `latent_channels` channels.

    Args:
        input_shape: (height, width, channels).
        latent_dim: size of a flat latent vector, or None for a spatial latent map.
        latent_channels: channels of the latent map when `latent_dim` is None.
        reconstruction_loss: "mse" or "bce" (logits decoder; the per-pixel mean is the loss).
        hidden_channels, residual_channels, num_residual_layers, downsample_stages, downsample:
            the conv stacks (see `tfvq.layers.ConvEncoder`).
        data_variance, data_range, encoder, decoder: see `ImageAutoencoder`.

    `encode` gives (B, latent_dim) vectors, or (B, h, w, latent_channels) maps.

    Example:
    >>> a = AE(input_shape=(28, 28, 1), latent_dim=16, hidden_channels=8, residual_channels=4)
    >>> tuple(a.encode(keras.ops.zeros((2, 28, 28, 1))).shape)
    (2, 16)
    """

    def __init__(self, input_shape=(32, 32, 3), latent_dim=None, latent_channels=16,
                 reconstruction_loss="mse", hidden_channels=64, residual_channels=32,
                 num_residual_layers=1, downsample_stages=2, downsample="stride",
                 data_variance=None, data_range=1.0, encoder=None, decoder=None, **kwargs):
        if reconstruction_loss not in ("mse", "bce"):
            raise ValueError(f"AE expects reconstruction_loss in ('mse', 'bce'); got {reconstruction_loss!r}")
        super().__init__(input_shape, reconstruction_loss, data_variance, data_range, encoder,
                         decoder, **kwargs)
        self.latent_dim = None if latent_dim is None else check_int(self, "latent_dim", latent_dim)
        self.latent_channels = check_int(self, "latent_channels", latent_channels)
        conv = conv_arguments(self, hidden_channels, downsample_stages, downsample,
                              num_residual_layers, residual_channels)
        if latent_dim is None:
            self.encoder = encoder or self._map_encoder(conv, latent_channels)
            self.decoder = decoder or self._map_decoder(conv)
        else:
            self.encoder = encoder or self._vector_encoder(conv, latent_dim)
            self.decoder = decoder or self._vector_decoder(conv)
        self._finish_init()

    def call(self, inputs, training=False):
        return self.decode(self.encode(inputs, training=training), training=training)

    def _loss_terms(self, x, training):
        output = self.decoder(self._encode(x, training), training=training)
        terms, _ = self._reconstruction_terms(x, output)
        return terms["reconstruction_loss"] + self._regularization(), terms

    def get_config(self):
        return {
            **self._base_config(),
            "latent_dim": self.latent_dim,
            "latent_channels": self.latent_channels,
        }
