"""Interpolation in latent space and VQ-VAE sampling through a PixelCNN prior."""

import keras
import numpy as np
import pytest

import tfvq
from tfvq.models import interpolate

SMALL = dict(hidden_channels=8, residual_channels=4, num_residual_layers=1)


def _models():
    return {
        "ae": tfvq.AE((16, 16, 1), latent_dim=6, **SMALL),
        "vae": tfvq.VAE((16, 16, 1), latent_dim=3, seed=0, **SMALL),
        "vqvae": tfvq.VQVAE((16, 16, 1), num_embeddings=8, embedding_dim=4, **SMALL),
    }


@pytest.mark.parametrize("kind", ["ae", "vae", "vqvae"])
def test_interpolation_endpoints_are_reconstructions(kind):
    keras.utils.set_random_seed(0)
    model = _models()[kind]
    images = np.random.default_rng(0).random((2, 16, 16, 1)).astype("float32")
    strip = keras.ops.convert_to_numpy(interpolate(model, images[0], images[1], steps=5))
    assert strip.shape == (5, 16, 16, 1)
    recon = keras.ops.convert_to_numpy(model(images, training=False))
    np.testing.assert_allclose(strip[0], recon[0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], recon[1], atol=1e-5)
    batch = interpolate(model, images, images[::-1], steps=3)
    assert tuple(batch.shape) == (2, 3, 16, 16, 1)


def test_ae_interpolation_midpoint_decodes_the_mean_latent():
    keras.utils.set_random_seed(0)
    model = _models()["ae"]
    images = np.random.default_rng(1).random((2, 16, 16, 1)).astype("float32")
    z = keras.ops.convert_to_numpy(model.encode(images))
    expected = keras.ops.convert_to_numpy(model.decode(((z[0] + z[1]) / 2)[None]))[0]
    strip = keras.ops.convert_to_numpy(interpolate(model, images[0], images[1], steps=3))
    np.testing.assert_allclose(strip[1], expected, atol=1e-5)


def test_interpolate_rejects_bad_arguments():
    model = _models()["ae"]
    x = np.zeros((16, 16, 1), "float32")
    with pytest.raises(ValueError, match="steps"):
        interpolate(model, x, x, steps=1)
    with pytest.raises(ValueError, match="one shape"):
        interpolate(model, x, np.zeros((8, 8, 1), "float32"))
    with pytest.raises(ValueError, match="AE, VAE or VQVAE"):
        interpolate(object(), x, x)


def test_vqvae_sample_decodes_prior_codes():
    keras.utils.set_random_seed(0)
    model = _models()["vqvae"]
    prior = tfvq.PixelCNNPrior(8, (4, 4), hidden_channels=8, num_layers=2)
    images = keras.ops.convert_to_numpy(model.sample(3, prior, seed=7))
    assert images.shape == (3, 16, 16, 1)
    expected = model.decode_indices(prior.sample(3, seed=7))
    np.testing.assert_allclose(images, keras.ops.convert_to_numpy(expected), atol=1e-6)
    with pytest.raises(ValueError, match=r"codebook_size=8 codes on a \(4, 4\) map"):
        model.sample(1, tfvq.PixelCNNPrior(8, (2, 2), hidden_channels=8, num_layers=2))


def test_vqvae_sample_checks_the_prior_against_the_quantizer_not_num_embeddings():
    # A quantizer instance with 16 codes in a model whose num_embeddings says 512.
    model = tfvq.VQVAE((16, 16, 1), quantizer=tfvq.layers.VectorQuantizer(16, 4), hidden_channels=8,
                       residual_channels=4, num_residual_layers=1)
    assert model.quantizer.codebook_size == 16 and model.num_embeddings == 512
    assert model.sample(2, tfvq.PixelCNNPrior(16, (4, 4), hidden_channels=8, num_layers=1),
                        seed=0).shape == (2, 16, 16, 1)
    with pytest.raises(ValueError, match="codebook_size=16"):
        model.sample(1, tfvq.PixelCNNPrior(512, (4, 4), hidden_channels=8, num_layers=1))


def test_residual_vqvae_samples_from_a_prior_over_its_first_level():
    import tensorflow as tf

    model = tfvq.VQVAE((16, 16, 1), quantizer="rvq", num_embeddings=8, embedding_dim=4,
                       quantizer_options={"num_quantizers": 2}, hidden_channels=8,
                       residual_channels=4, num_residual_layers=1)
    images = tf.data.Dataset.from_tensor_slices(np.random.rand(6, 16, 16, 1).astype("float32"))
    codes = np.concatenate(list(tfvq.data.codes.codes_dataset(model, images.batch(3))
                                .as_numpy_iterator()))
    np.testing.assert_array_equal(codes, np.asarray(model.encode_to_indices(
        np.stack(list(images.as_numpy_iterator()))))[..., 0])
    prior = tfvq.PixelCNNPrior(8, (4, 4), hidden_channels=8, num_layers=1)
    samples = keras.ops.convert_to_numpy(model.sample(2, prior, seed=1))
    first = prior.sample(2, seed=1)
    np.testing.assert_allclose(
        samples, keras.ops.convert_to_numpy(model.decode_indices(first[..., None])), atol=1e-6)
