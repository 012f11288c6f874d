"""AE: vector and map latents, argument checks, learning on MNIST."""

import keras
import pytest

from tfvq.models import AE

from ._common import BUILDERS, CONV, MNIST, SHAPE, images, train_on_mnist


def test_vector_and_map_latents():
    x = images(3)
    vector = BUILDERS["ae_vector"]()
    z = vector.encode(x)
    assert tuple(z.shape) == (3, 6)
    assert tuple(vector.decode(z).shape) == (3,) + SHAPE
    assert tuple(vector(x).shape) == (3,) + SHAPE
    spatial = BUILDERS["ae_map"]()
    z = spatial.encode(x)
    assert tuple(z.shape) == (3, 4, 4, 3)
    assert tuple(spatial.decode(z).shape) == (3,) + SHAPE


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="latent_dim"):
        AE(SHAPE, latent_dim=0, **CONV)
    with pytest.raises(ValueError, match="reconstruction_loss"):
        AE(SHAPE, latent_dim=4, reconstruction_loss="l1", **CONV)


@pytest.mark.slow
def test_mnist_ae_learns(mnist_data_dir):
    keras.utils.set_random_seed(0)
    model = AE(MNIST, latent_dim=32, hidden_channels=16, residual_channels=8, downsample_stages=2)
    before, after, _ = train_on_mnist(model, mnist_data_dir, "mse")
    assert after < 0.5 * before, (before, after)
