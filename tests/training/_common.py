"""Tiny VQ-VAE and data shared by the training tests and their worker scripts."""

import numpy as np

IMAGE_SHAPE = (8, 8, 1)


def tiny_vqvae(**overrides):
    import tfvq

    options = dict(input_shape=IMAGE_SHAPE, num_embeddings=16, embedding_dim=4,
                   hidden_channels=8, residual_channels=4, num_residual_layers=1,
                   downsample_stages=1, quantizer="ema")
    options.update(overrides)
    return tfvq.VQVAE(**options)


def images(n, seed=0):
    """Smooth random images in [0, 1]: blobs, so codes are not all alike."""
    rng = np.random.default_rng(seed)
    h, w, c = IMAGE_SHAPE
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    centres = rng.uniform(0, 1, size=(n, 2, 1, 1))
    widths = rng.uniform(0.1, 0.4, size=(n, 1, 1))
    blobs = np.exp(-((yy - centres[:, 0]) ** 2 + (xx - centres[:, 1]) ** 2) / widths**2)
    return blobs[..., None].repeat(c, axis=-1).astype(np.float32)
