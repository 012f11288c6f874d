"""`import tfvq` stays light: keras-tuner and tfvq's plotting load only when first used.

Keras 3 itself imports matplotlib.pyplot and scikit-learn when they are installed
(`keras.visualization`, `keras.wrappers`), so the rule checked for those two is that tfvq adds
none of their modules to what `import tensorflow, keras` already loads; keras-tuner must not be
loaded at all. Each import runs in a fresh interpreter, since this test process has long
imported everything.
"""

import json
import os
import subprocess
import sys

import pytest

import tfvq

# Fresh interpreters importing TensorFlow: seconds each.
pytestmark = pytest.mark.slow

HEAVY = ("keras_tuner", "matplotlib", "sklearn")
LAZY = ("tfvq.plots", "tfvq.tuning")


def _modules_after(statement, then=""):
    """The names in `sys.modules` after `statement` in a fresh interpreter, which runs `then`
    (assertions) afterwards."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))\n{then}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _heavy(modules):
    return {m for m in modules if m.split(".")[0] in HEAVY}


@pytest.fixture(scope="module")
def baseline():
    return _modules_after("import tensorflow, keras")


# Run after the snapshot of `import tfvq`, in the same process (one TensorFlow start fewer).
LAZY_ACCESS = """
import tfvq
assert 'tuning' in tfvq.__all__ and 'plots' in dir(tfvq)
assert callable(tfvq.tuning.search) and callable(tfvq.plots.image_grid)
assert 'keras_tuner' in sys.modules and 'tfvq.plots' in sys.modules
from tfvq import plots, tuning
assert plots is sys.modules['tfvq.plots'] and tuning is sys.modules['tfvq.tuning']
"""


@pytest.mark.parametrize(
    "statement, then",
    [("import tfvq", LAZY_ACCESS), ("from tfvq import VQVAE", "")],
    ids=["import-tfvq", "from-tfvq-import-VQVAE"],
)
def test_import_loads_no_tuner_and_no_plotting(baseline, statement, then):
    # With `then`, the subprocess also checks that tfvq.tuning and tfvq.plots load on access.
    modules = _modules_after(statement, then)
    assert "tfvq.models" in modules  # the import did happen
    assert not {m for m in modules if m.split(".")[0] == "keras_tuner"}, statement
    added = _heavy(modules) - _heavy(baseline)
    assert not added, f"`{statement}` loads {sorted(added)} on top of tensorflow and keras"
    assert not set(LAZY) & modules, f"`{statement}` loads {sorted(set(LAZY) & modules)}"


def test_every_public_name_resolves():
    for name in tfvq.__all__:
        assert getattr(tfvq, name) is not None, name
    assert tfvq.plots.search_results is not None
    assert tfvq.tuning.VQVAEHyperModel is not None


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        tfvq.nonexistent  # noqa: B018
    assert not hasattr(tfvq, "nonexistent")


def test_a_saved_model_loads_after_a_plain_import_tfvq(tmp_path):
    """`import tfvq` registers the models with Keras, as `keras.models.load_model` needs."""
    path = tmp_path / "model.keras"
    tfvq.models.AE(input_shape=(8, 8, 1), hidden_channels=4, residual_channels=2,
                   latent_channels=2).save(path)
    code = f"import keras, tfvq\nprint(type(keras.models.load_model({str(path)!r})).__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "AE"
