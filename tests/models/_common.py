"""Tiny AE, VAE and VQ-VAE builders, images and helpers shared by the model tests."""

import keras
import numpy as np

from tfvq.layers import VectorQuantizer
from tfvq.models import AE, VAE, VQVAE

SHAPE = (8, 8, 1)
# One stride-2 stage: 4x4 latent maps.
CONV = dict(hidden_channels=8, residual_channels=4, num_residual_layers=1, downsample_stages=1)


def images(n, seed=0, channels=1):
    """Smooth blobs in [0, 1], so the codes and reconstructions are not all alike."""
    rng = np.random.default_rng(seed)
    h, w = SHAPE[:2]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    centres = rng.uniform(0, 1, size=(n, 2, 1, 1))
    widths = rng.uniform(0.1, 0.4, size=(n, 1, 1))
    blobs = np.exp(-((yy - centres[:, 0]) ** 2 + (xx - centres[:, 1]) ** 2) / widths**2)
    return blobs[..., None].repeat(channels, axis=-1).astype(np.float32)


def quantized_images(n, seed=0):
    """Images on the 256 levels, as 8-bit data scaled to [0, 1] would be."""
    return (np.round(images(n, seed) * 255) / 255).astype(np.float32)


BUILDERS = {
    "ae_vector": lambda: AE(SHAPE, latent_dim=6, **CONV),
    "ae_map": lambda: AE(SHAPE, latent_dim=None, latent_channels=3, **CONV),
    "vae_bce": lambda: VAE(SHAPE, latent_dim=3, reconstruction_loss="bce", seed=1, **CONV),
    "vae_mse": lambda: VAE(SHAPE, latent_dim=3, reconstruction_loss="mse", seed=2, **CONV),
    "vae_logistic": lambda: VAE(SHAPE, latent_dim=3, reconstruction_loss="logistic", seed=3,
                                **CONV),
    "vqvae_ema": lambda: VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, quantizer="ema", **CONV),
    "vqvae_vq": lambda: VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, quantizer="vq", **CONV),
    "vqvae_instance": lambda: VQVAE(
        SHAPE, num_embeddings=8, embedding_dim=4,
        quantizer=VectorQuantizer(8, 4, commitment_cost=0.5, name="quantizer"), **CONV),
}


def compiled(model, lr=1e-2):
    model.compile(optimizer=keras.optimizers.Adam(lr), run_eagerly=True)
    return model


def evaluate(model, data, **kwargs):
    """`evaluate`, with the VAE noise replayed from the same seed state on every call."""
    seed = getattr(model, "seed_generator", None)
    if seed is not None:
        if not hasattr(model, "_test_seed_state"):
            model._test_seed_state = np.array(seed.state)
        seed.state.assign(model._test_seed_state)
    return model.evaluate(data, verbose=0, return_dict=True, **kwargs)


# --- real data (the slow tests) --------------------------------------------------------------

MNIST = (28, 28, 1)


def train_on_mnist(model, data_dir, metric, epochs=2, lr=2e-3):
    """Trains on 2,048 MNIST digits; returns `metric` on 512 test digits before and after."""
    from tfvq import data

    train = data.load("mnist", split="train[:2048]", batch_size=64, data_dir=data_dir,
                      shuffle=False)
    test = data.load("mnist", split="test[:512]", batch_size=64, data_dir=data_dir,
                     shuffle=False)
    model.compile(optimizer=keras.optimizers.Adam(lr))
    before = model.evaluate(test, verbose=0, return_dict=True)
    history = model.fit(train, validation_data=test, epochs=epochs, verbose=0)
    return before[metric], history.history[f"val_{metric}"][-1], history
