"""interpolate: straight lines in the latent space of AE, VAE and VQ-VAE."""

import keras
import numpy as np
import pytest

from tfvq.models import interpolate

from ._common import BUILDERS, SHAPE, images

KINDS = ["ae_vector", "vae_bce", "vqvae_ema"]


@pytest.mark.parametrize("kind", KINDS)
def test_endpoints_are_reconstructions(kind):
    keras.utils.set_random_seed(0)
    model = BUILDERS[kind]()
    x = images(2)
    strip = keras.ops.convert_to_numpy(interpolate(model, x[0], x[1], steps=5))
    assert strip.shape == (5,) + SHAPE
    recon = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(strip[0], recon[0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], recon[1], atol=1e-5)
    batch = interpolate(model, x, x[::-1], steps=3)
    assert tuple(batch.shape) == (2, 3) + SHAPE


def test_ae_midpoint_decodes_the_mean_latent():
    keras.utils.set_random_seed(0)
    model = BUILDERS["ae_vector"]()
    x = images(2, seed=1)
    z = keras.ops.convert_to_numpy(model.encode(x))
    expected = keras.ops.convert_to_numpy(model.decode(((z[0] + z[1]) / 2)[None]))[0]
    strip = keras.ops.convert_to_numpy(interpolate(model, x[0], x[1], steps=3))
    np.testing.assert_allclose(strip[1], expected, atol=1e-5)


def test_bad_arguments():
    model = BUILDERS["ae_vector"]()
    x = np.zeros(SHAPE, "float32")
    with pytest.raises(ValueError, match=r"interpolate expects steps >= 2 \(an int\); got 1"):
        interpolate(model, x, x, steps=1)
    with pytest.raises(ValueError, match="one shape"):
        interpolate(model, x, np.zeros((4, 4, 1), "float32"))
    with pytest.raises(ValueError, match="AE, VAE or VQVAE"):
        interpolate(object(), x, x)
