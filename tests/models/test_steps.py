"""The shared train/test steps: a refused batch leaves every model trainable, loss scaling."""

import keras
import numpy as np
import pytest

from tfvq.models import AE, VAE, VQVAE, Colorizer, PixelCNNPrior

from ._common import CONV
RNG = np.random.default_rng(0)


def _rgb(n, size=8):
    return RNG.uniform(0, 1, (n, size, size, 3)).astype("float32")


def _gray(n, size=8):
    return RNG.uniform(0, 1, (n, size, size, 1)).astype("float32")


# (model builder, good batch, refused batch): wrong shapes and dtypes, as a user would pass.
CASES = {
    "ae": (lambda: AE((8, 8, 1), latent_dim=4, **CONV), _gray(8), _gray(8, size=12)),
    "vae": (lambda: VAE((8, 8, 1), latent_dim=3, seed=0, **CONV), _gray(8),
            _gray(8).astype("int32")),
    "vqvae": (lambda: VQVAE((8, 8, 1), num_embeddings=8, embedding_dim=4, **CONV), _gray(8),
              _gray(8, size=12)),
    "colorizer": (lambda: Colorizer((8, 8, 3), head="regression", **CONV),
                  _rgb(8), _gray(8)),
    "prior": (lambda: PixelCNNPrior(num_embeddings=8, latent_shape=(4, 4), hidden_channels=8,
                                    num_layers=2),
              RNG.integers(0, 8, (8, 4, 4)).astype("int32"),
              RNG.integers(0, 8, (8, 5, 4)).astype("int32")),
}


# Each case traces several training steps (XLA ones compile too): the fast set keeps the
# VQ-VAE without XLA, the slow set has them all.
@pytest.mark.parametrize("name, jit_compile", [
    pytest.param(name, jit_compile,
                 marks=() if (name, jit_compile) == ("vqvae", False) else pytest.mark.slow)
    for name in sorted(CASES) for jit_compile in (False, True)])
def test_a_refused_fit_leaves_the_model_trainable(name, jit_compile):
    build, good, bad = CASES[name]
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
    with pytest.raises(ValueError):
        model.fit(bad, batch_size=4, epochs=1, verbose=0)
    before = [np.array(w) for w in model.trainable_weights]
    history = model.fit(good, batch_size=4, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    after = [np.array(w) for w in model.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))
    model.evaluate(good, batch_size=4, verbose=0)  # and evaluates after it too


@pytest.mark.parametrize("name", sorted(CASES))
def test_compile_refuses_a_loss_of_its_own(name):
    model = CASES[name][0]()
    with pytest.raises(ValueError, match="computes its own loss.*got loss='mse'"):
        model.compile(optimizer="adam", loss="mse")


def test_prior_metrics_pool_over_the_pass():
    # Accuracy over an evaluate pass equals the argmax accuracy over all codes, whatever the
    # batch sizes (the last batch here is smaller).
    _, good, _ = CASES["prior"]
    model = CASES["prior"][0]()
    model.compile(optimizer="adam")
    codes = np.concatenate([good, good[:3]])
    logits = model.predict(codes, verbose=0)
    expected = np.mean(np.argmax(logits, -1) == codes)
    result = model.evaluate(codes, batch_size=4, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["accuracy"], expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["vqvae", "colorizer"])
@pytest.mark.slow
def test_models_train_on_tfds_style_dict_elements(name):
    # What tfds.load yields: uint8 images under "image", plus other features.
    import tensorflow as tf

    build, good, _ = CASES[name]
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    pixels = (good * 255).astype("uint8")
    ds = tf.data.Dataset.from_tensor_slices(
        {"image": pixels, "label": np.arange(len(pixels)), "id": [str(i) for i in range(len(pixels))]}
    ).batch(4)
    history = model.fit(ds, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    from_dict = model.evaluate(ds, verbose=0, return_dict=True)
    from_array = model.evaluate(pixels, batch_size=4, verbose=0, return_dict=True)
    for key, value in from_array.items():
        np.testing.assert_allclose(from_dict[key], value, rtol=1e-5, err_msg=key)


@pytest.mark.slow
def test_float_images_out_of_range_warn_once():
    model = CASES["vqvae"][0]()
    model.compile(optimizer="adam")
    good = CASES["vqvae"][1]
    with pytest.warns(UserWarning, match=r"expects float images in \[0, 1\].*got values in "
                                         r"\[\d.*, 2\d\d.*\]"):
        model.fit(good * 255.0, batch_size=4, epochs=1, verbose=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per model: not again
        model.evaluate(good * 255.0, batch_size=4, verbose=0)
        fresh = CASES["vqvae"][0]()
        fresh.compile(optimizer="adam")
        fresh.fit(good, batch_size=4, epochs=1, verbose=0)  # [0, 1]: no warning
        fresh.fit((good * 255).astype("uint8"), batch_size=4, epochs=1, verbose=0)


@pytest.mark.parametrize("name", ["vae_mse", "vqvae_ema"])
def test_a_model_built_under_a_mixed_policy_loads_with_it(name, tmp_path,
                                                         bfloat16_convolutions):
    from ._common import BUILDERS, SHAPE

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = BUILDERS[name]()
    finally:
        keras.config.set_dtype_policy("float32")
    policies = sorted(layer.dtype_policy.name for layer in model._flatten_layers())
    assert set(policies) == {"mixed_bfloat16"}
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert sorted(layer.dtype_policy.name for layer in loaded._flatten_layers()) == policies
    assert keras.config.dtype_policy().name == "float32"  # restored after loading
    x = RNG.random((2,) + SHAPE, dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(loaded.encode(x)), np.asarray(model.encode(x)))
    assert keras.backend.standardize_dtype(model(x).dtype) == "float32"  # images out in float32
