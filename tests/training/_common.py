"""Tiny VQ-VAE and data shared by the training tests and their worker scripts."""

# The blobs of the model tests, at their shape.
from tests.models._common import SHAPE as IMAGE_SHAPE, images

__all__ = ["IMAGE_SHAPE", "images", "tiny_vqvae"]


def tiny_vqvae(**overrides):
    import tfvq

    options = dict(input_shape=IMAGE_SHAPE, num_embeddings=16, embedding_dim=4,
                   hidden_channels=8, residual_channels=4, num_residual_layers=1,
                   downsample_stages=1, quantizer="ema")
    options.update(overrides)
    return tfvq.VQVAE(**options)
