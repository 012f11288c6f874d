"""What ImageAutoencoder gives AE, VAE and VQ-VAE alike: saving and resuming, metrics, inputs,
centred networks, distribution."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvq.models import AE, VQVAE

from ._common import BUILDERS, CONV, SHAPE, compiled, evaluate, images, quantized_images


def _assert_same_variables(a, b, what):
    assert len(a) == len(b), what
    for va, vb in zip(a, b):
        np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=f"{what}: {va.path}")


# --- saving ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.slow
def test_save_load_round_trip_and_resume(kind, tmp_path):
    x = quantized_images(4)
    model = compiled(BUILDERS[kind]())
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


# --- metrics ---------------------------------------------------------------------------------

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
    model = compiled(BUILDERS[kind]())
    logs = model.evaluate(images(4), batch_size=4, verbose=0, return_dict=True)
    assert set(logs) == EXPECTED_KEYS[kind]
    assert all(np.isfinite(v) for v in logs.values())


def test_normalized_mse_key_and_value():
    variance = 0.07
    model = compiled(VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, data_variance=variance,
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


# --- inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ae_vector", "vae_bce", "vqvae_ema"])
def test_images_with_labels_dataset(kind):
    x = images(8)
    y = np.arange(8)
    model = compiled(BUILDERS[kind]())
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    logs = evaluate(model, ds)
    logs_plain = evaluate(model, tf.data.Dataset.from_tensor_slices(x).batch(4))
    np.testing.assert_allclose(logs["mse"], logs_plain["mse"], rtol=1e-6)


@pytest.mark.parametrize("kind", ["ae_vector", "vae_bce", "vqvae_ema"])
def test_uint8_images_are_scaled(kind):
    model = compiled(BUILDERS[kind]())
    raw = np.round(images(4) * 255).astype(np.uint8)
    scaled = raw.astype(np.float32) / 255.0
    np.testing.assert_allclose(model.predict(raw, verbose=0), model.predict(scaled, verbose=0),
                               atol=1e-6)
    logs_raw = evaluate(model, raw, batch_size=4)
    logs_scaled = evaluate(model, scaled, batch_size=4)
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


# --- bad inputs ------------------------------------------------------------------------------


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
    model = compiled(BUILDERS["ae_vector"]())
    with pytest.raises(ValueError, match="shape"):
        model.fit(np.zeros((4, 8, 8, 3), np.float32), batch_size=4, verbose=0)


@pytest.mark.parametrize("input_shape", [(8, 8), (8, 0, 1), (8, 8.5, 1)])
def test_bad_input_shape(input_shape):
    with pytest.raises(ValueError, match=r"AE expects input_shape \(height, width, channels\)"):
        AE(input_shape, latent_dim=4, **CONV)


def test_bad_data_variance():
    with pytest.raises(ValueError, match="data_variance"):
        VQVAE(SHAPE, num_embeddings=8, embedding_dim=4, data_variance=0.0, **CONV)


# --- distribution ----------------------------------------------------------------------------


# Slow: tests/training/test_distributed.py keeps a mirrored model step in the fast set.
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ae_map", "vqvae_ema"])
def test_mirrored_strategy_matches_default(kind, mirrored_strategy):
    assert mirrored_strategy.num_replicas_in_sync == 2
    x = images(24, seed=5)
    keras.utils.set_random_seed(0)
    reference = BUILDERS[kind]()
    initial = reference.get_weights()
    with mirrored_strategy.scope():
        mirrored = BUILDERS[kind]()
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
