"""VQVAE: codes, the VQ loss against NumPy, pooled code statistics, NaN batches, every quantizer
of the family, sampling through a PixelCNN prior, learning on MNIST."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvq.data.codes import codes_dataset
from tfvq.layers import VectorQuantizer
from tfvq.models import VQVAE, PixelCNNPrior

from ._common import BUILDERS, CONV, MNIST, SHAPE, compiled, images, train_on_mnist


def test_codes_round_trip():
    model = BUILDERS["vqvae_ema"]()
    x = images(3)
    assert tuple(model.encode(x).shape) == (3, 4, 4, 4)
    indices = model.encode_to_indices(x)
    assert tuple(indices.shape) == (3, 4, 4)
    assert keras.backend.standardize_dtype(indices.dtype) == "int32"
    idx = np.asarray(indices)
    assert idx.min() >= 0 and idx.max() < 8
    decoded = model.decode_indices(indices)
    assert tuple(decoded.shape) == (3,) + SHAPE
    # In inference the model is encode -> nearest code -> decode.
    np.testing.assert_allclose(np.asarray(decoded), np.asarray(model(x)), atol=1e-6)


def test_quantizer_instance_survives_saving(tmp_path):
    model = BUILDERS["vqvae_instance"]()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.quantizer, VectorQuantizer)
    assert loaded.quantizer.commitment_cost == 0.5


@pytest.mark.parametrize("kind", ["vqvae_ema", "vqvae_vq"])
def test_loss_is_reconstruction_plus_vq_loss(kind):
    model = compiled(BUILDERS[kind]())
    x = images(4)
    logs = model.evaluate(x, batch_size=4, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], logs["reconstruction_loss"] + logs["vq_loss"],
                               rtol=1e-6)
    loss, terms = model._loss_terms(tf.constant(x), training=False)
    np.testing.assert_allclose(float(loss), float(terms["reconstruction_loss"] + terms["vq_loss"]),
                               rtol=1e-6)
    np.testing.assert_allclose(float(loss), logs["loss"], rtol=1e-6)
    # The vq loss itself, from an independent computation of the nearest codes.
    latents = np.asarray(model.encode(x)).reshape(-1, 4)
    codebook = np.asarray(model.quantizer.codebook)
    nearest = codebook[np.argmin(((latents[:, None] - codebook[None]) ** 2).sum(-1), axis=1)]
    err = np.mean((nearest - latents) ** 2)
    beta = model.commitment_cost
    expected = beta * err if kind == "vqvae_ema" else (1 + beta) * err
    np.testing.assert_allclose(logs["vq_loss"], expected, rtol=1e-4)


@pytest.mark.slow
def test_perplexity_and_usage_pool_the_whole_pass():
    # evaluate reports the statistics of all codes of the pass, whatever the batch size: a mean
    # of per-batch perplexities would grow with the batch.
    model = BUILDERS["vqvae_ema"]()
    model.compile(optimizer="adam")
    x = images(24, seed=3)
    codes = np.asarray(model.encode_to_indices(x)).ravel()
    p = np.bincount(codes, minlength=8) / codes.size
    expected = np.exp(-np.sum(p[p > 0] * np.log(p[p > 0])))
    for batch_size in (2, 24):
        result = model.evaluate(x, batch_size=batch_size, verbose=0, return_dict=True)
        np.testing.assert_allclose(result["perplexity"], expected, rtol=1e-5)
        np.testing.assert_allclose(result["usage"], np.mean(p > 0), rtol=1e-6)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="reconstruction_loss"):
        VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, reconstruction_loss="l1", **CONV)
    with pytest.raises(ValueError, match="quantizer"):
        VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, quantizer="gumbel", **CONV)


# --- NaN batches -----------------------------------------------------------------------------


class _RecordCodebook(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.codebooks, self.ema_dw, self.cluster_size = [], [], []

    def on_train_batch_end(self, batch, logs=None):
        quantizer = self.model.quantizer
        self.codebooks.append(np.array(quantizer.codebook))
        self.ema_dw.append(np.array(quantizer.ema_dw))
        self.cluster_size.append(np.array(quantizer.cluster_size))


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.slow
def test_terminate_on_nan_keeps_ema_codebook(jit_compile):
    model = VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, quantizer="ema", decay=0.5, **CONV)
    model.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=jit_compile)
    x = images(12)
    x[5, 2, 3, 0] = np.nan  # the second batch of 4
    initial = np.array(model.quantizer.codebook)
    record = _RecordCodebook()
    history = model.fit(x, batch_size=4, epochs=3, shuffle=False, verbose=0,
                        callbacks=[record, keras.callbacks.TerminateOnNaN()])
    assert model.stop_training
    assert len(history.history.get("loss", [])) < 3
    assert len(record.codebooks) == 2  # stopped after the NaN batch
    after_first = record.codebooks[0]
    assert not np.array_equal(after_first, initial)  # the EMA did learn from batch 1
    codebook = np.array(model.quantizer.codebook)
    assert np.all(np.isfinite(codebook))
    np.testing.assert_array_equal(codebook, after_first)
    np.testing.assert_array_equal(np.array(model.quantizer.ema_dw), record.ema_dw[0])
    np.testing.assert_array_equal(np.array(model.quantizer.cluster_size), record.cluster_size[0])


# --- the quantizer family: the model reads only the Quantizer interface ----------------------

FAMILY = {
    "fsq": dict(quantizer="fsq", num_embeddings=2**8),  # levels (8, 6, 5): 3 channels
    "lfq": dict(quantizer="lfq", num_embeddings=2**6),  # 6 bits: 6 channels
    "rvq": dict(quantizer="rvq", num_embeddings=8, quantizer_options={"num_quantizers": 3}),
    "cosine": dict(quantizer="vq", num_embeddings=8, quantizer_options={"distance": "cosine"}),
    "factorized": dict(quantizer="ema", num_embeddings=8, quantizer_options={"codebook_dim": 2}),
    "rotation": dict(quantizer="ema", num_embeddings=8,
                     quantizer_options={"gradient": "rotation"}),
}


# The options of the plain VQ layer (tested in tests/layers) are slow here; every quantizer
# class stays in the fast set.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow)
                                  if n in ("cosine", "factorized", "rotation", "lfq") else n
                                  for n in sorted(FAMILY)])
def test_every_quantizer_trains_saves_and_resumes(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = VQVAE(SHAPE, embedding_dim=4, **FAMILY[name], **CONV)
    quantizer = model.quantizer
    # The encoder's width follows the quantizer, whatever embedding_dim says.
    assert model.encode(images(2)).shape[-1] == quantizer.embedding_dim
    codes = np.asarray(model.encode_to_indices(images(3)))
    levels = () if quantizer.num_codebooks == 1 else (quantizer.num_codebooks,)
    assert codes.shape == (3, 4, 4) + levels
    assert 0 <= codes.min() and codes.max() < quantizer.codebook_size
    assert model.decode_indices(codes).shape == (3,) + SHAPE
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(images(16), batch_size=8, epochs=4, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    assert 0 < history.history["usage"][-1] <= 1
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.quantizer) is type(quantizer)
    np.testing.assert_array_equal(loaded.predict(images(3), verbose=0),
                                  model.predict(images(3), verbose=0))
    np.testing.assert_array_equal(np.asarray(loaded.encode_to_indices(images(3))),
                                  np.asarray(model.encode_to_indices(images(3))))


# --- sampling through a PixelCNN prior -------------------------------------------------------


def test_sample_decodes_prior_codes():
    keras.utils.set_random_seed(0)
    model = BUILDERS["vqvae_ema"]()
    prior = PixelCNNPrior(8, (4, 4), hidden_channels=8, num_layers=2)
    samples = keras.ops.convert_to_numpy(model.sample(3, prior, seed=7))
    assert samples.shape == (3,) + SHAPE
    expected = model.decode_indices(prior.sample(3, seed=7))
    np.testing.assert_allclose(samples, keras.ops.convert_to_numpy(expected), atol=1e-6)
    with pytest.raises(ValueError, match=r"codebook_size=8 codes on a \(4, 4\) map"):
        model.sample(1, PixelCNNPrior(8, (2, 2), hidden_channels=8, num_layers=2))


def test_sample_checks_the_prior_against_the_quantizer_not_num_embeddings():
    # A quantizer instance with 16 codes in a model whose num_embeddings says 512.
    model = VQVAE(SHAPE, quantizer=VectorQuantizer(16, 4), **CONV)
    assert model.quantizer.codebook_size == 16 and model.num_embeddings == 512
    assert model.sample(2, PixelCNNPrior(16, (4, 4), hidden_channels=8, num_layers=1),
                        seed=0).shape == (2,) + SHAPE
    with pytest.raises(ValueError, match="codebook_size=16"):
        model.sample(1, PixelCNNPrior(512, (4, 4), hidden_channels=8, num_layers=1))


def test_residual_vqvae_samples_from_a_prior_over_its_first_level():
    model = VQVAE(SHAPE, quantizer="rvq", num_embeddings=8, embedding_dim=4,
                  quantizer_options={"num_quantizers": 2}, **CONV)
    x = images(6)
    codes = np.concatenate(list(codes_dataset(model, tf.data.Dataset.from_tensor_slices(x).batch(3))
                                .as_numpy_iterator()))
    np.testing.assert_array_equal(codes, np.asarray(model.encode_to_indices(x))[..., 0])
    prior = PixelCNNPrior(8, (4, 4), hidden_channels=8, num_layers=1)
    samples = keras.ops.convert_to_numpy(model.sample(2, prior, seed=1))
    first = prior.sample(2, seed=1)
    np.testing.assert_allclose(
        samples, keras.ops.convert_to_numpy(model.decode_indices(first[..., None])), atol=1e-6)


@pytest.mark.slow
def test_mnist_vqvae_learns(mnist_data_dir):
    keras.utils.set_random_seed(0)
    model = VQVAE(MNIST, num_embeddings=32, embedding_dim=8, hidden_channels=16,
                  residual_channels=8, num_residual_layers=1, downsample_stages=2)
    before, after, history = train_on_mnist(model, mnist_data_dir, "mse")
    assert after < 0.5 * before, (before, after)
    assert history.history["val_usage"][-1] > 1 / 32
