"""tfvq.layers on every Keras backend: the same numbers, gradients and state as on TensorFlow.

Written for any backend; run it once per backend, each in its own process (Keras reads
`KERAS_BACKEND` when it is first imported):

    KERAS_BACKEND=jax python -m pytest tests/layers/test_backends.py
    KERAS_BACKEND=torch python -m pytest tests/layers/test_backends.py

Off TensorFlow, each case of `backend_cases.py` is compared with the same case computed under
TensorFlow in a subprocess (or read from `$TFVQ_TF_REFERENCE`, which that subprocess writes
when the file is missing, so that several backend runs compute it once). The state updates
(EMA, k-means init, dead-code restarts) are checked against NumPy on every backend, also in a
jitted `stateless_call` step and inside `fit`.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

import backend_cases as cases
from tfvq import layers

BACKEND = keras.backend.backend()
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# Variants whose layers the fast cases already cover, in the slow set: JAX runs eagerly op by
# op, compiling each op once, and every extra conv stack costs it seconds.
_SLOW_CASES = {"residual_block", "encoder_max_pool", "encoder_none", "decoder_avg_pool",
               "colorization_regression", "masked_conv_b", "quantizer_vq_cosine",
               "quantizer_vq_factorized", "quantizer_ema_rotation"}


def _case_params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_CASES else n for n in names]


off_tensorflow = pytest.mark.skipif(
    BACKEND == "tensorflow", reason="TensorFlow is the reference these tests compare with"
)


@pytest.fixture(scope="module")
def tf_reference(tmp_path_factory):
    """Every case's outputs and gradients under TensorFlow (`backend_cases.run_all`)."""
    path = os.environ.get("TFVQ_TF_REFERENCE")
    path = Path(path) if path else tmp_path_factory.mktemp("tf_reference") / "reference.npz"
    if not path.is_file():
        env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        partial = path.with_name(path.name + f".{os.getpid()}.npz")
        subprocess.run(
            [sys.executable, str(HERE / "backend_cases.py"), str(partial)], env=env, check=True,
            cwd=ROOT,
        )
        os.replace(partial, path)
    with np.load(path) as reference:
        return dict(reference)


def assert_matches(results, reference, prefix):
    assert results, prefix
    for key, value in results.items():
        expected = reference[f"{prefix}/{key}"]
        assert value.shape == expected.shape, (key, value.shape, expected.shape)
        if np.issubdtype(expected.dtype, np.integer):
            np.testing.assert_array_equal(value, expected, err_msg=key)
        else:
            scale = max(1.0, float(np.nanmax(np.abs(expected), initial=0.0)))
            np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-4 * scale,
                                       err_msg=key)


# --- Import ----------------------------------------------------------------------------------


_LAYER_SMOKE = """
import sys, types
from pathlib import Path
{stub}
import numpy as np
import keras
import tfvq.layers as L
assert keras.backend.backend() == "{backend}", keras.backend.backend()
{calls}print("tensorflow" in sys.modules)
"""

# One call of each kind of layer (a call may import what an op needs); all of them construct.
_LAYER_CALLS = """
x = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype("float32")
L.VectorQuantizerEMA(16, 8, kmeans_init=True, dead_code_threshold=1.0)(x, training=True)
for key, cls in L.QUANTIZERS.items():
    cls.from_sizes(256 if key == "fsq" else 16, 8)
L.ConvEncoder(8, residual_channels=4)(x[..., :3])
L.ConvDecoder(3, 8, residual_channels=4), L.LabColorizationHead(), L.MaskedConv2D(4, 3, "A")
L.RGBToLab()(np.abs(x[..., :3]) / 4)
L.GatedPixelCNNBlock(8, mask_type="B")
"""

# Makes `tfvq` a bare namespace so that `import tfvq.layers` runs no `tfvq/__init__.py`: what
# tfvq.layers itself needs, whatever the package's own `__init__` imports.
_STUB = (
    "tfvq = types.ModuleType('tfvq'); tfvq.__path__ = [str(Path({root!r}) / 'tfvq')]; "
    "sys.modules['tfvq'] = tfvq"
)


def _import_smoke(stub):
    """Whether TensorFlow was loaded: with `stub`, by tfvq.layers' own modules and a call of
    each layer; without, by `import tfvq.layers` through the package's `__init__` (the calls
    run the same modules as with the stub, and take 20-30 s under JAX, so they run once)."""
    script = _LAYER_SMOKE.format(backend=BACKEND,
                                 stub=_STUB.format(root=str(ROOT)) if stub else "",
                                 calls=_LAYER_CALLS if stub else "")
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1] == "True"


@off_tensorflow
def test_layers_run_without_tensorflow():
    """tfvq.layers' own modules import no TensorFlow under JAX or torch."""
    assert not _import_smoke(stub=True), "a tfvq.layers module imported tensorflow"


@off_tensorflow
@pytest.mark.slow
def test_import_tfvq_layers_imports_no_tensorflow():
    """`import tfvq.layers` through the package's `__init__` stays off TensorFlow too."""
    assert not _import_smoke(stub=False), "import tfvq.layers loaded tensorflow"


# --- Same numbers and gradients as TensorFlow --------------------------------------------------


@off_tensorflow
@pytest.mark.parametrize("name", _case_params(cases.CASES))
def test_forward_matches_tensorflow(name, tf_reference):
    assert_matches(cases.forward(name), tf_reference, f"{name}/forward")


@off_tensorflow
@pytest.mark.parametrize("name", _case_params(cases.CASES))
def test_gradients_match_tensorflow(name, tf_reference):
    assert_matches(cases.gradients(name), tf_reference, f"{name}/gradients")


@pytest.mark.parametrize("gradient", ["straight_through", "rotation"])
def test_quantizer_gradients_match_numpy(gradient):
    """Straight-through: the output's gradient reaches x unchanged; the codebook gets
    2 (e - x) / (N D) from the codebook loss. Rotation: (|q| / |x|) R applied to the output
    gradient (a Householder-product reference), plus the commitment term."""
    layer = layers.VectorQuantizer(16, 8, gradient=gradient)
    x = cases.data(1, 12, 8)
    layer(x)
    cases.fill_weights(layer, 0)
    codebook = cases.to_numpy(layer.codebook).astype(np.float64)
    xs = x.astype(np.float64)
    q = codebook[cases.np_nearest(xs, codebook)]
    probe = cases.data(100, *x.shape).astype(np.float64)
    n, d = x.shape
    commitment = 0.25 * 2.0 * (xs - q) / (n * d)
    if gradient == "straight_through":
        expected_dx = probe + commitment
    else:
        expected_dx = np.empty_like(xs)
        for i in range(n):
            e_hat, q_hat = xs[i] / np.linalg.norm(xs[i]), q[i] / np.linalg.norm(q[i])
            r = (e_hat + q_hat) / np.linalg.norm(e_hat + q_hat)
            rotation = np.eye(d) - 2 * np.outer(r, r) + 2 * np.outer(q_hat, e_hat)
            scale = np.linalg.norm(q[i]) / np.linalg.norm(xs[i])
            expected_dx[i] = scale * rotation.T @ probe[i] + commitment[i]
    indices = cases.np_nearest(xs, codebook)
    expected_dcodebook = np.zeros_like(codebook)
    np.add.at(expected_dcodebook, indices, 2.0 * (q - xs) / (n * d))
    got = _gradients_single(layer, x, probe.astype("float32"))
    np.testing.assert_allclose(got["dx"], expected_dx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["dcodebook"], expected_dcodebook, rtol=1e-4, atol=1e-6)


def _gradients_single(layer, x, probe):
    """d/dx and d/dcodebook of `sum(layer(x) * probe) + sum(layer.losses)`, on any backend."""
    results = cases.gradients_for(layer, [x], {}, [probe])
    return {"dx": results["d_input_0"], "dcodebook": results["d_codebook"]}


# --- State: EMA statistics, k-means init, dead-code restarts ------------------------------------


def _stateful(cls, seed=3, **kwargs):
    """An l2 quantizer with NumPy weights, k-means and restarts as `kwargs` say."""
    layer = cls(16, 4, seed=seed, **kwargs)
    layer.build((None, 4))
    cases.fill_weights(layer, 0)
    return layer


def _draws(layer, batches, seed=3):
    """The rows this backend's SeedGenerator(seed) gives the layer's k-means and restarts.

    Each training call draws k-means' starting rows (with `kmeans_init`), then the restarts'
    rows (with `dead_code_threshold > 0`), from the layer's generator: a fresh generator with
    the same seed repeats them on the same backend.
    """
    generator = keras.random.SeedGenerator(seed)
    draws = []
    for x in batches:
        n = int(np.prod(x.shape[:-1]))
        draw = {}
        for key, wanted in (("kmeans_rows", layer.kmeans_init),
                            ("restart_rows", layer.dead_code_threshold > 0)):
            if wanted:
                rows = keras.random.randint((layer.num_embeddings,), 0, n, seed=generator)
                draw[key] = cases.to_numpy(rows)
        draws.append(draw)
    return draws


def _expected_states(layer, batches):
    state = cases.quantizer_state(layer)
    ema = isinstance(layer, layers.VectorQuantizerEMA)
    decay = layer.decay if ema else layer.usage_decay
    states = []
    for x, draw in zip(batches, _draws(layer, batches)):
        state, _ = cases.np_training_step(
            state, x, ema=ema, decay=decay, kmeans_iters=layer.kmeans_iters,
            threshold=layer.dead_code_threshold, **draw,
        )
        states.append(state)
    return states


def _assert_state(layer, expected):
    for key, value in cases.quantizer_state(layer).items():
        np.testing.assert_allclose(value, expected[key], rtol=1e-4, atol=1e-5, err_msg=key)


STATE_OPTIONS = {
    "plain": {},
    "kmeans_restart": dict(kmeans_init=True, kmeans_iters=3, dead_code_threshold=0.3),
}
# 64 vectors a batch for 16 codes: duplicate k-means seeds separate within the iterations, so
# no two codes sit close enough for float32 and float64 to pick different nearest codes.
BATCHES = [cases.data(10 + i, 4, 16, 4) * (1 + i) for i in range(3)]


@pytest.mark.parametrize("cls", [layers.VectorQuantizer, layers.VectorQuantizerEMA])
@pytest.mark.parametrize("options", list(STATE_OPTIONS))
def test_state_updates_eagerly(cls, options):
    layer = _stateful(cls, **STATE_OPTIONS[options])
    expected = _expected_states(layer, BATCHES)
    for x, state in zip(BATCHES, expected):
        layer(x, training=True)
        _assert_state(layer, state)


# VectorQuantizer's codebook is a trainable variable, and `stateless_call` hands back only the
# non-trainable ones: on JAX its k-means and restarts land in `codebook_offset`, which
# `get_codebook()` (what `quantizer_state` reads) adds back.
STATEFUL = [layers.VectorQuantizer, layers.VectorQuantizerEMA]


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit of layer.stateless_call")
@pytest.mark.parametrize("cls", STATEFUL)
def test_state_updates_in_jitted_stateless_call(cls):
    import jax

    layer = _stateful(cls, **STATE_OPTIONS["kmeans_restart"])
    expected = _expected_states(layer, BATCHES)
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    @jax.jit
    def step(trainable, non_trainable, x):
        _, non_trainable = layer.stateless_call(trainable, non_trainable, x, training=True)
        return non_trainable

    for x, state in zip(BATCHES, expected):
        non_trainable = step(trainable, non_trainable, x)
        # The layer's own variables are untouched until the new values are written back.
        for variable, value in zip(layer.non_trainable_variables, non_trainable):
            variable.assign(value)
        _assert_state(layer, state)


@pytest.mark.parametrize("cls", STATEFUL)
def test_state_updates_inside_fit(cls):
    """Keras' own `fit` (jitted on JAX, eager on torch) of a functional model: the quantizer
    reads the inputs themselves, so its statistics follow NumPy's whatever the Dense learns.
    (Learning rate 0 for VectorQuantizer, whose codebook the optimizer would move too.)"""
    layer = _stateful(cls, **STATE_OPTIONS["kmeans_restart"])
    expected = _expected_states(layer, BATCHES)
    inputs = keras.Input((16, 4), batch_size=4)
    model = keras.Model(inputs, keras.layers.Dense(4)(layer(inputs)))
    learning_rate = 0.0 if cls is layers.VectorQuantizer else 0.01
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    x = np.concatenate(BATCHES)
    model.fit(x, x, batch_size=4, epochs=1, shuffle=False, verbose=0)
    _assert_state(layer, expected[-1])


# --- Training and .keras round trips ----------------------------------------------------------


# On TensorFlow each layer's own tests round-trip it through `.keras` already (with every
# option), so there this run is in the slow set (22 s of the fast set's time on AVX2).
@(pytest.mark.slow if BACKEND == "tensorflow" else lambda test: test)
@pytest.mark.parametrize("name", _case_params(n for n in cases.CASES if "pixelcnn" not in n))
def test_roundtrip_through_keras_file(name, tmp_path):
    model, inputs = cases.as_model(name)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    expected, got = model.predict(inputs, verbose=0), loaded.predict(inputs, verbose=0)
    for e, g in zip(keras.tree.flatten(expected), keras.tree.flatten(got)):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(e))
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(cases.to_numpy(b), cases.to_numpy(a), err_msg=a.path)


def test_roundtrip_pixelcnn_blocks(tmp_path):
    for name in ("masked_conv_a", "gated_pixelcnn_a", "gated_pixelcnn_b_condition"):
        model, inputs = cases.as_model(name)
        model.save(tmp_path / f"{name}.keras")
        loaded = keras.models.load_model(tmp_path / f"{name}.keras")
        for e, g in zip(keras.tree.flatten(model(inputs)), keras.tree.flatten(loaded(inputs))):
            np.testing.assert_array_equal(cases.to_numpy(g), cases.to_numpy(e))


@pytest.mark.parametrize("key", list(layers.QUANTIZERS))
@pytest.mark.slow
def test_quantizer_trains_in_fit(key):
    """A Dense -> quantizer -> Dense model trains with `fit`: finite losses, weights move."""
    cls = layers.QUANTIZERS[key]
    quantizer = cls.from_sizes(256 if key == "fsq" else 16, 8)
    inputs = keras.Input((5, 6))
    outputs = keras.layers.Dense(6)(quantizer(keras.layers.Dense(quantizer.embedding_dim)(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    x = cases.data(0, 16, 5, 6)
    before = [cases.to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(x, x, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    moved = [not np.array_equal(b, cases.to_numpy(w)) for b, w in zip(before, model.trainable_weights)]
    assert all(moved[:2]), moved  # the encoder Dense gets gradients through the quantizer


# --- End to end: a conv VQ autoencoder on real MNIST ------------------------------------------


def _mnist(data_dir, split):
    """MNIST as float32 NumPy in [0, 1], read by tfds from the prepared files (no download)."""
    import tensorflow_datasets as tfds

    images = tfds.as_numpy(tfds.load("mnist", split=split, data_dir=data_dir, download=False,
                                     batch_size=-1))["image"]
    return images.astype("float32") / 255.0


@pytest.mark.slow
def test_conv_vq_autoencoder_learns_mnist(mnist_data_dir):
    """ConvEncoder -> VectorQuantizerEMA -> ConvDecoder, a functional model trained with this
    backend's `fit` for 300 steps: the reconstruction error falls well below its start."""
    train, test = _mnist(mnist_data_dir, "train[:9600]"), _mnist(mnist_data_dir, "test[:512]")
    inputs = keras.Input((28, 28, 1))
    latents = layers.ConvEncoder(32, residual_channels=8, output_channels=16,
                                 input_offset=-0.5)(inputs)
    quantized = layers.VectorQuantizerEMA(64, 16, decay=0.95, kmeans_init=True,
                                          dead_code_threshold=0.1, seed=0)(latents)
    outputs = layers.ConvDecoder(1, 32, residual_channels=8)(quantized)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="mse")
    before = model.evaluate(test, test, batch_size=256, verbose=0)
    history = model.fit(train, train, batch_size=32, epochs=1, verbose=0)  # 300 steps
    after = model.evaluate(test, test, batch_size=256, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # Total loss = reconstruction MSE + the quantizer's commitment term; the MSE alone falls too.
    reconstruction = float(np.mean((model.predict(test, verbose=0) - test) ** 2))
    assert after < 0.5 * before, (before, after)
    assert reconstruction < 0.04, reconstruction  # predicting the mean image scores about 0.07
