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
x = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype("float32")
for key, cls in L.QUANTIZERS.items():
    q = cls.from_sizes(256 if key == "fsq" else 16, 8)
    q(x[..., : q.embedding_dim], training=True)
L.ConvDecoder(3, 8, residual_channels=4)(L.ConvEncoder(8, residual_channels=4)(x[..., :3]))
L.LabToRGB()(L.RGBToLab()(np.abs(x[..., :3]) / 4))
L.GatedPixelCNNBlock(8, mask_type="B")(x, x)
print("tensorflow" in sys.modules)
"""

# Makes `tfvq` a bare namespace so that `import tfvq.layers` runs no `tfvq/__init__.py`: what
# tfvq.layers itself needs, whatever the package's own `__init__` imports.
_STUB = (
    "tfvq = types.ModuleType('tfvq'); tfvq.__path__ = [str(Path({root!r}) / 'tfvq')]; "
    "sys.modules['tfvq'] = tfvq"
)


def _import_smoke(stub):
    script = _LAYER_SMOKE.format(backend=BACKEND, stub=_STUB.format(root=str(ROOT)) if stub else "")
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
    if _import_smoke(stub=False):
        pytest.xfail("tfvq/__init__.py imports TensorFlow-only subpackages eagerly")


# --- Same numbers and gradients as TensorFlow --------------------------------------------------


@off_tensorflow
@pytest.mark.parametrize("name", list(cases.CASES))
def test_forward_matches_tensorflow(name, tf_reference):
    assert_matches(cases.forward(name), tf_reference, f"{name}/forward")


@off_tensorflow
@pytest.mark.parametrize("name", list(cases.CASES))
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
