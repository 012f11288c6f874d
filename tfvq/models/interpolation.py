"""Straight-line interpolation between two images in a model's latent space."""

from keras import ops

from tfvq.models.ae import AE
from tfvq.models.vae import VAE
from tfvq.models.vqvae import VQVAE
from tfvq.utils.checks import check_int


def interpolate(model, x1, x2, steps=8):
    """Decodes points evenly spaced on the line between the latents of `x1` and `x2`.

    AE: its latent; VAE: the posterior means (e.g. to blend faces); VQ-VAE: the continuous
    pre-quantization latents, quantized before decoding, so every step is a valid code map.
    The first and last steps are the model's reconstructions of `x1` and `x2`.

    Args:
        model: a trained `AE`, `VAE` or `VQVAE`.
        x1, x2: images (H, W, C), or batches (B, H, W, C) of the same shape.
        steps: number of points, endpoints included (>= 2).

    Returns:
        (steps, H, W, C) images for single images, (B, steps, H, W, C) for batches.

    Example:
    >>> model = tfvq.VAE((16, 16, 1), latent_dim=2, hidden_channels=8, residual_channels=4)
    >>> images = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 1)).astype("float32")
    >>> strip = interpolate(model, images[0], images[1], steps=8)
    >>> tuple(strip.shape)
    (8, 16, 16, 1)
    >>> tuple(interpolate(model, images, images[::-1], steps=3).shape)   # batches
    (2, 3, 16, 16, 1)
    """
    if not isinstance(model, (AE, VAE, VQVAE)):
        raise ValueError(f"interpolate expects an AE, VAE or VQVAE; got {type(model).__name__}")
    check_int("interpolate", "steps", steps, minimum=2)
    x1, x2 = ops.convert_to_tensor(x1), ops.convert_to_tensor(x2)
    if tuple(x1.shape) != tuple(x2.shape):
        raise ValueError(f"interpolate expects x1 and x2 of one shape; got {x1.shape} and {x2.shape}")
    single = len(x1.shape) == 3
    if single:
        x1, x2 = x1[None], x2[None]
    z1, z2 = _latent(model, x1), _latent(model, x2)
    t = ops.reshape(ops.linspace(0.0, 1.0, steps), (1, steps) + (1,) * (len(z1.shape) - 1))
    path = (1.0 - t) * z1[:, None] + t * z2[:, None]
    flat = ops.reshape(path, (-1,) + tuple(z1.shape[1:]))
    if isinstance(model, VQVAE):
        flat = model.quantizer(flat, training=False)
    images = model.decode(flat)
    images = ops.reshape(images, (-1, steps) + tuple(images.shape[1:]))
    return images[0] if single else images


def _latent(model, x):
    if isinstance(model, VAE):
        mean, _ = model.encode(x)
        return mean
    return model.encode(x)
