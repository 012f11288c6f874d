"""AE, VAE and VQ-VAE: saving, resuming, shapes, metrics, input checks, distribution, NaN."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvq.layers import VectorQuantizer
from tfvq.models import AE, VAE, VQVAE

SHAPE = (8, 8, 1)
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


def _compile(model, lr=1e-2):
    model.compile(optimizer=keras.optimizers.Adam(lr), run_eagerly=True)
    return model


def _evaluate(model, data, **kwargs):
    """`evaluate`, with the VAE noise replayed from the same seed state on every call."""
    seed = getattr(model, "seed_generator", None)
    if seed is not None:
        if not hasattr(model, "_test_seed_state"):
            model._test_seed_state = np.array(seed.state)
        seed.state.assign(model._test_seed_state)
    return model.evaluate(data, verbose=0, return_dict=True, **kwargs)


def _assert_same_variables(a, b, what):
    assert len(a) == len(b), what
    for va, vb in zip(a, b):
        np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=f"{what}: {va.path}")


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_save_load_round_trip_and_resume(kind, tmp_path):
    x = quantized_images(4)
    model = _compile(BUILDERS[kind]())
    model.fit(x, batch_size=4, epochs=1, verbose=0, shuffle=False)  # one step
    path = tmp_path / f"{kind}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer is not None
    _assert_same_variables(model.optimizer.variables, loaded.optimizer.variables, "optimizer")
    _assert_same_variables(model.weights, loaded.weights, "weights")
    # Resumable: one more step of each gives the same weights.
    loaded.compile(optimizer=loaded.optimizer, run_eagerly=True)
    x2 = quantized_images(4, seed=1)
    model.fit(x2, batch_size=4, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x2, batch_size=4, epochs=1, verbose=0, shuffle=False)
    _assert_same_variables(model.weights, loaded.weights, "weights after resuming")
    _assert_same_variables(model.optimizer.variables, loaded.optimizer.variables,
                           "optimizer after resuming")


def test_quantizer_instance_survives_saving(tmp_path):
    model = BUILDERS["vqvae_instance"]()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.quantizer, VectorQuantizer)
    assert loaded.quantizer.commitment_cost == 0.5


def test_ae_shapes():
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


@pytest.mark.parametrize("kind", ["vae_bce", "vae_logistic"])
def test_vae_shapes(kind):
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


def test_vqvae_shapes():
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


EXPECTED_KEYS = {
    "ae_vector": {"loss", "reconstruction_loss", "mse", "psnr"},
    "vae_bce": {"loss", "reconstruction_loss", "mse", "psnr", "kl_loss", "reconstruction_nll"},
    "vae_mse": {"loss", "reconstruction_loss", "mse", "psnr", "kl_loss", "reconstruction_nll"},
    "vae_logistic": {"loss", "reconstruction_loss", "mse", "psnr", "kl_loss", "bits_per_dim",
                     "reconstruction_nll"},
    "vqvae_ema": {"loss", "reconstruction_loss", "mse", "psnr", "vq_loss", "perplexity", "usage"},
    "vqvae_vq": {"loss", "reconstruction_loss", "mse", "psnr", "vq_loss", "perplexity", "usage"},
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_KEYS))
def test_evaluate_metric_keys(kind):
    model = _compile(BUILDERS[kind]())
    logs = model.evaluate(images(4), batch_size=4, verbose=0, return_dict=True)
    assert set(logs) == EXPECTED_KEYS[kind]
    assert all(np.isfinite(v) for v in logs.values())


def test_vqvae_normalized_mse_key_and_value():
    variance = 0.07
    model = _compile(VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, data_variance=variance,
                           **CONV))
    x = images(4)
    logs = model.evaluate(x, batch_size=4, verbose=0, return_dict=True)
    assert set(logs) == EXPECTED_KEYS["vqvae_ema"] | {"normalized_mse"}
    np.testing.assert_allclose(logs["normalized_mse"], logs["mse"] / variance, rtol=1e-5)
    # With data_variance the MSE loss term is the normalised MSE.
    np.testing.assert_allclose(logs["reconstruction_loss"], logs["normalized_mse"], rtol=1e-5)
    # mse is the plain per-pixel MSE of the reconstruction, computed independently here.
    recon = model.predict(x, verbose=0)
    np.testing.assert_allclose(logs["mse"], np.mean((recon - x) ** 2), rtol=1e-5)
    np.testing.assert_allclose(logs["psnr"],
                               np.mean(10 * np.log10(1.0 / np.mean((recon - x) ** 2, axis=(1, 2, 3)))),
                               rtol=1e-4)


@pytest.mark.parametrize("kind", ["vqvae_ema", "vqvae_vq"])
def test_vqvae_loss_is_reconstruction_plus_vq_loss(kind):
    model = _compile(BUILDERS[kind]())
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


def test_vae_loss_is_negative_elbo():
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


@pytest.mark.parametrize("kind", ["ae_vector", "vae_bce", "vqvae_ema"])
def test_images_with_labels_dataset(kind):
    x = images(8)
    y = np.arange(8)
    model = _compile(BUILDERS[kind]())
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    logs = _evaluate(model, ds)
    logs_plain = _evaluate(model, tf.data.Dataset.from_tensor_slices(x).batch(4))
    np.testing.assert_allclose(logs["mse"], logs_plain["mse"], rtol=1e-6)


@pytest.mark.parametrize("kind", ["ae_vector", "vae_bce", "vqvae_ema"])
def test_uint8_images_are_scaled(kind):
    model = _compile(BUILDERS[kind]())
    raw = np.round(images(4) * 255).astype(np.uint8)
    scaled = raw.astype(np.float32) / 255.0
    np.testing.assert_allclose(model.predict(raw, verbose=0), model.predict(scaled, verbose=0),
                               atol=1e-6)
    logs_raw = _evaluate(model, raw, batch_size=4)
    logs_scaled = _evaluate(model, scaled, batch_size=4)
    np.testing.assert_allclose(logs_raw["mse"], logs_scaled["mse"], rtol=1e-5)


@pytest.mark.parametrize("kind", ["ae_vector", "ae_map", "vae_mse", "vae_logistic", "vqvae_ema"])
def test_networks_work_on_centred_images(kind):
    """Encoders see x - 0.5; a decoder whose output is zero reconstructs mid-gray."""
    model = BUILDERS[kind]()
    x = images(3)
    first = model.encoder.layers[0] if isinstance(model.encoder, keras.Sequential) else model.encoder
    assert first.input_offset == -0.5
    first.input_offset = 0.0
    uncentred = keras.ops.convert_to_numpy(model.encoder(x - 0.5))
    first.input_offset = -0.5
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.encoder(x)), uncentred, atol=1e-6)
    for weight in model.decoder.weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    np.testing.assert_allclose(model.predict(x, verbose=0), 0.5, atol=1e-6)


# Bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ae_vector", "vae_bce", "vqvae_ema"])
def test_bad_images(kind):
    model = BUILDERS[kind]()
    with pytest.raises(ValueError, match="shape"):
        model(np.zeros((2, 9, 9, 1), np.float32))
    with pytest.raises(ValueError, match="shape"):
        model(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        model(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="int32"):
        model(np.zeros((2, 8, 8, 1), np.int32))


def test_bad_images_in_fit():
    model = _compile(BUILDERS["ae_vector"]())
    with pytest.raises(ValueError, match="shape"):
        model.fit(np.zeros((4, 8, 8, 3), np.float32), batch_size=4, verbose=0)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="input_shape"):
        AE((8, 8), latent_dim=4, **CONV)
    with pytest.raises(ValueError, match="latent_dim"):
        AE(SHAPE, latent_dim=0, **CONV)
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(SHAPE, latent_dim=0, **CONV)
    with pytest.raises(ValueError, match="beta"):
        VAE(SHAPE, latent_dim=2, beta=-0.1, **CONV)
    with pytest.raises(ValueError, match="reconstruction_loss"):
        AE(SHAPE, latent_dim=4, reconstruction_loss="l1", **CONV)
    with pytest.raises(ValueError, match="reconstruction_loss"):
        VAE(SHAPE, latent_dim=2, reconstruction_loss="huber", **CONV)
    with pytest.raises(ValueError, match="reconstruction_loss"):
        VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, reconstruction_loss="l1", **CONV)
    with pytest.raises(ValueError, match="quantizer"):
        VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, quantizer="gumbel", **CONV)
    with pytest.raises(ValueError, match="data_variance"):
        VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, data_variance=0.0, **CONV)


# MirroredStrategy -----------------------------------------------------------------------


def _tiny(kind):
    if kind == "ae":
        return AE(SHAPE, latent_dim=None, latent_channels=3, **CONV)
    return VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, quantizer="ema", **CONV)


@pytest.fixture(scope="module")
def strategy(mirrored_strategy):
    return mirrored_strategy


@pytest.mark.parametrize("kind", ["ae", "vqvae"])
def test_mirrored_strategy_matches_default(kind, strategy):
    assert strategy.num_replicas_in_sync == 2
    x = images(24, seed=5)
    keras.utils.set_random_seed(0)
    reference = _tiny(kind)
    initial = reference.get_weights()
    with strategy.scope():
        mirrored = _tiny(kind)
        mirrored.set_weights(initial)
        mirrored.compile(optimizer=keras.optimizers.SGD(0.1))
    reference.compile(optimizer=keras.optimizers.SGD(0.1))

    # The loss evaluated on one global batch is that batch's mean, not one replica's.
    eval_ref = reference.evaluate(x[:8], batch_size=8, verbose=0, return_dict=True)
    eval_mir = mirrored.evaluate(x[:8], batch_size=8, verbose=0, return_dict=True)
    np.testing.assert_allclose(eval_mir["loss"], eval_ref["loss"], rtol=1e-5)
    np.testing.assert_allclose(eval_mir["mse"], eval_ref["mse"], rtol=1e-5)

    hist_ref = reference.fit(x, batch_size=8, epochs=2, shuffle=False, verbose=0)
    hist_mir = mirrored.fit(x, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(reference.weights, mirrored.weights):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5, err_msg=a.path)
    np.testing.assert_allclose(hist_mir.history["loss"], hist_ref.history["loss"], rtol=1e-5)
    # Training moved the weights, so the comparison is not vacuous.
    assert any(not np.allclose(w, np.asarray(v)) for w, v in zip(initial, reference.weights))


# NaN -----------------------------------------------------------------------------------


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


# Real data (slow) ----------------------------------------------------------------------

MNIST = (28, 28, 1)


def _mnist(data_dir):
    from tfvq import data

    train = data.load("mnist", split="train[:2048]", batch_size=64, data_dir=data_dir,
                      shuffle=False)
    test = data.load("mnist", split="test[:512]", batch_size=64, data_dir=data_dir,
                     shuffle=False)
    return train, test


def _train_and_compare(model, data_dir, metric, epochs=2, lr=2e-3):
    train, test = _mnist(data_dir)
    model.compile(optimizer=keras.optimizers.Adam(lr))
    before = model.evaluate(test, verbose=0, return_dict=True)
    history = model.fit(train, validation_data=test, epochs=epochs, verbose=0)
    after = history.history[f"val_{metric}"][-1]
    return before[metric], after, history


@pytest.mark.slow
def test_mnist_ae_learns(mnist_data_dir):
    keras.utils.set_random_seed(0)
    model = AE(MNIST, latent_dim=32, hidden_channels=16, residual_channels=8, downsample_stages=2)
    before, after, _ = _train_and_compare(model, mnist_data_dir, "mse")
    assert after < 0.5 * before, (before, after)


@pytest.mark.slow
def test_mnist_vqvae_learns(mnist_data_dir):
    keras.utils.set_random_seed(0)
    model = VQVAE(MNIST, num_embeddings=32, embedding_dim=8, hidden_channels=16,
                  residual_channels=8, num_residual_layers=1, downsample_stages=2)
    before, after, history = _train_and_compare(model, mnist_data_dir, "mse")
    assert after < 0.5 * before, (before, after)
    assert history.history["val_usage"][-1] > 1 / 32


@pytest.mark.slow
def test_mnist_vae_learns(mnist_data_dir):
    keras.utils.set_random_seed(0)
    model = VAE(MNIST, latent_dim=8, reconstruction_loss="bce", hidden_channels=16,
                residual_channels=8, downsample_stages=2, seed=0)
    before, after, history = _train_and_compare(model, mnist_data_dir, "reconstruction_loss")
    # Per-pixel BCE nll: untrained ~0.69 per pixel; trained clearly lower.
    assert after < 0.6 * before, (before, after)
    assert np.isfinite(history.history["val_kl_loss"][-1])


def test_vqvae_perplexity_and_usage_pool_the_whole_pass():
    # evaluate reports the statistics of all codes of the pass, whatever the batch size: a mean
    # of per-batch perplexities would grow with the batch.
    model = VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, quantizer="ema", **CONV)
    model.compile(optimizer="adam")
    x = images(24, seed=3)
    codes = np.asarray(model.encode_to_indices(x)).ravel()
    p = np.bincount(codes, minlength=8) / codes.size
    expected = np.exp(-np.sum(p[p > 0] * np.log(p[p > 0])))
    for batch_size in (2, 24):
        result = model.evaluate(x, batch_size=batch_size, verbose=0, return_dict=True)
        np.testing.assert_allclose(result["perplexity"], expected, rtol=1e-5)
        np.testing.assert_allclose(result["usage"], np.mean(p > 0), rtol=1e-6)


# The quantizer family inside VQVAE: the model reads only the Quantizer interface.

FAMILY = {
    "fsq": dict(quantizer="fsq", num_embeddings=2**8),  # levels (8, 6, 5): 3 channels
    "lfq": dict(quantizer="lfq", num_embeddings=2**6),  # 6 bits: 6 channels
    "rvq": dict(quantizer="rvq", num_embeddings=8, quantizer_options={"num_quantizers": 3}),
    "cosine": dict(quantizer="vq", num_embeddings=8, quantizer_options={"distance": "cosine"}),
    "factorized": dict(quantizer="ema", num_embeddings=8, quantizer_options={"codebook_dim": 2}),
    "rotation": dict(quantizer="ema", num_embeddings=8,
                     quantizer_options={"gradient": "rotation"}),
}


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_every_quantizer_trains_saves_and_resumes_in_vqvae(name, tmp_path):
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
