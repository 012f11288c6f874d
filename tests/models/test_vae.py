"""VAE: posterior and sample shapes, the loss as the negative ELBO, learning on MNIST."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvq.models import VAE

from ._common import BUILDERS, CONV, MNIST, SHAPE, images, train_on_mnist


@pytest.mark.parametrize("kind", ["vae_bce", "vae_logistic"])
def test_shapes(kind):
    model = BUILDERS[kind]()
    x = images(3)
    mean, log_var = model.encode(x)
    assert tuple(mean.shape) == (3, 3) and tuple(log_var.shape) == (3, 3)
    out = model.decode(mean)
    assert tuple(out.shape) == (3,) + SHAPE
    assert tuple(model.sample(5, seed=0).shape) == (5,) + SHAPE
    assert tuple(model(x).shape) == (3,) + SHAPE
    # Decoded images are images: in [0, 1] for bce (sigmoid) and logistic (clipped location).
    assert 0.0 <= float(np.min(out)) and float(np.max(out)) <= 1.0


def test_loss_is_negative_elbo():
    model = BUILDERS["vae_mse"]()
    x = images(4)
    loss, terms = model._loss_terms(tf.constant(x), training=False)
    # loss = per-image nll (summed over pixels) + KL; reconstruction_loss is that nll per value,
    # the unit AE's and VQ-VAE's reconstruction_loss have.
    np.testing.assert_allclose(
        float(loss), float(terms["reconstruction_nll"]) + float(terms["kl_loss"]), rtol=1e-5)
    np.testing.assert_allclose(float(terms["reconstruction_loss"]),
                               float(terms["reconstruction_nll"]) / np.prod(SHAPE), rtol=1e-6)
    model.beta = 0.0
    loss0, terms0 = model._loss_terms(tf.constant(x), training=False)
    np.testing.assert_allclose(float(loss0), float(terms0["reconstruction_nll"]), rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(SHAPE, latent_dim=0, **CONV)
    with pytest.raises(ValueError, match="beta"):
        VAE(SHAPE, latent_dim=2, beta=-0.1, **CONV)
    with pytest.raises(ValueError, match="reconstruction_loss"):
        VAE(SHAPE, latent_dim=2, reconstruction_loss="huber", **CONV)
    with pytest.raises(ValueError, match=r"VAE.sample expects n >= 1 \(an int\); got 0"):
        BUILDERS["vae_bce"]().sample(0)


@pytest.mark.slow
def test_mnist_vae_learns(mnist_data_dir):
    keras.utils.set_random_seed(0)
    model = VAE(MNIST, latent_dim=8, reconstruction_loss="bce", hidden_channels=16,
                residual_channels=8, downsample_stages=2, seed=0)
    before, after, history = train_on_mnist(model, mnist_data_dir, "reconstruction_loss")
    # Per-pixel BCE nll: untrained ~0.69 per pixel; trained clearly lower.
    assert after < 0.6 * before, (before, after)
    assert np.isfinite(history.history["val_kl_loss"][-1])
