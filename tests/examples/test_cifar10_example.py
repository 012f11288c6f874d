"""The main job, end to end at a tiny setting: two workers from the command line; in-process, on
a folder of photos, the files written and resumption."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "cifar10.py"
# The in-process runs: a folder of photos, a tiny model.
TINY = dict(image_size=32, min_size=32, steps_per_epoch=3, batch_size=4, eval_examples=4,
            hidden_channels=8, residual_channels=4, num_residual_layers=1, num_embeddings=16,
            embedding_dim=4, jit_compile=False)


def _run_two_workers(run_workers, tmp_path, cifar10_data_dir, epochs):
    """Both workers of the example on their own output folders; their outputs."""
    return run_workers(lambda index: [
        sys.executable, str(SCRIPT), f"--output_dir={tmp_path / f'worker{index}'}",
        f"--data_dir={cifar10_data_dir}", "--strategy=multiworker", f"--epochs={epochs}",
        "--steps_per_epoch=6", "--eval_examples=64", "--jit_compile=false",
        "--batch_size=16", "--hidden_channels=8", "--residual_channels=4",
        "--num_residual_layers=1", "--num_embeddings=16", "--embedding_dim=4",
    ])


def _check_same_weights(outputs, metrics):
    fingerprints = [re.findall(r"Worker (\d) final weights sha256 ([0-9a-f]{64})", out)
                    for out in outputs]
    assert fingerprints[0] == [("0", metrics["weights_sha256"])], outputs[0][-2000:]
    assert fingerprints[1] == [("1", metrics["weights_sha256"])], outputs[1][-2000:]


@pytest.mark.slow
def test_cifar10_example_on_two_workers(tmp_path, cifar10_data_dir, run_workers):
    # The example itself, as a user runs it on two machines: both train and evaluate (collective
    # steps), the chief alone writes files, and both end with the same weights.
    outputs = _run_two_workers(run_workers, tmp_path, cifar10_data_dir, epochs=1)
    chief, other = tmp_path / "worker0", tmp_path / "worker1"
    for name in ("metrics.json", "reconstructions.png", "training_curves.png", "model.keras",
                 "history.csv"):
        assert (chief / name).stat().st_size > 0, name
        assert not (other / name).exists(), name
    metrics = json.loads((chief / "metrics.json").read_text())
    assert metrics["workers"] == 2 and metrics["steps"] == 6
    _check_same_weights(outputs, metrics)

    # The same command with one more epoch: the chief's saved model and history decide for
    # both (the other worker's folder holds neither), the other worker takes the chief's
    # weights and optimizer state, and both train on from epoch 1. Before, the other worker
    # trained from epoch 0 and the collectives of the two failed.
    outputs = _run_two_workers(run_workers, tmp_path, cifar10_data_dir, epochs=2)
    metrics = json.loads((chief / "metrics.json").read_text())
    assert metrics["steps"] == 12  # the optimizer's iterations went on from 6
    assert len((chief / "history.csv").read_text().strip().splitlines()) == 3  # header + 2
    assert all("Continuing" in out for out in outputs)
    _check_same_weights(outputs, metrics)


def _photo_folder(root):
    """Real photos at mixed sizes in two class folders, one file broken."""
    from PIL import Image
    from skimage import data

    photos = {"cat": data.chelsea(), "coffee": data.coffee()}
    for label, photo in photos.items():
        (root / label).mkdir(parents=True)
        for i in range(6):
            top, left, side = 10 * i, 15 * i, 120 + 20 * i
            crop = Image.fromarray(photo[top:top + side, left:left + int(side * 1.3)])
            crop.save(root / label / f"{i}.jpg", quality=90)
    (root / "cat" / "broken.jpg").write_bytes(b"not a jpeg at all")
    Image.fromarray(data.camera()[:10, :10]).save(root / "cat" / "tiny.png")  # < min_size
    return root


@pytest.mark.slow
def test_train_and_evaluate_on_a_folder_in_process(example, tmp_path,
                                                   bfloat16_convolutions):
    cifar10 = example("cifar10")
    folder = _photo_folder(tmp_path / "photos")
    # In bfloat16, so that fit, evaluate and saving under a mixed policy are covered too.
    config = cifar10.Config(dataset=str(folder), augment="crop", epochs=1,
                            dtype_policy="mixed_bfloat16", **TINY)
    with pytest.warns(UserWarning, match="1 of"):
        metrics = cifar10.train_and_evaluate(config, str(tmp_path / "run"))
    assert metrics["image_shape"] == [32, 32, 3] and metrics["dtype_policy"] == "mixed_bfloat16"
    assert metrics["steps"] == 3 and np.isfinite(metrics["test"]["mse"])
    assert metrics["test_split"] == "train[-4:]" and metrics["train_split"] == "train[:-4]"
    for name in ("metrics.json", "reconstructions.png", "model.keras"):
        assert (tmp_path / "run" / name).stat().st_size > 0, name


@pytest.mark.slow
def test_train_and_evaluate_writes_outputs_and_resumes(example, tmp_path):
    cifar10 = example("cifar10")
    folder = _photo_folder(tmp_path / "photos")
    workdir = tmp_path / "run"

    def run(epochs):
        config = cifar10.Config(dataset=str(folder), epochs=epochs, **TINY)
        return cifar10.train_and_evaluate(config, str(workdir))

    metrics = run(epochs=1)
    for name in ("metrics.json", "reconstructions.png", "training_curves.png", "model.keras",
                 "history.csv"):
        assert (workdir / name).stat().st_size > 0, name
    assert (workdir / "logs").is_dir() and not (workdir / "backup").exists()
    assert metrics["steps"] == 3
    for key in ("mse", "normalized_mse", "psnr", "perplexity", "usage"):
        assert key in metrics["test"]
    assert metrics["test"]["normalized_mse"] == pytest.approx(
        metrics["test"]["mse"] / metrics["data_variance"], rel=1e-4)

    # A second run with more epochs continues from the saved state instead of starting over.
    metrics = run(epochs=2)
    assert metrics["steps"] == 6
    assert _lines(workdir / "history.csv") == 3  # header + one row per epoch across both runs

    # Asked for no more epochs than it has done, a finished run is not trained again.
    again = run(epochs=2)
    assert again["steps"] == 6 and again["images_per_s_this_run"] is None
    assert again["weights_sha256"] == metrics["weights_sha256"]
    assert _lines(workdir / "history.csv") == 3


def _lines(path):
    return len(path.read_text().strip().splitlines())


def test_the_dtype_policy_reaches_every_layer_and_no_further(example, bfloat16_convolutions):
    import keras

    cifar10 = example("cifar10")
    model = cifar10.build_model(cifar10.Config(dtype_policy="mixed_bfloat16"), (8, 8, 3), 0.1)
    assert {layer.dtype_policy.name for layer in model._flatten_layers()} == {"mixed_bfloat16"}
    assert model.quantizer.cluster_size.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize("requested, expected", [("false", False), (False, False), ("true", True),
                                                 ("auto", "timed")])
def test_jit_compile_auto_is_timed_and_the_others_are_taken_as_given(example, monkeypatch,
                                                                      requested, expected):
    import tensorflow as tf

    import tfvq

    cifar10 = example("cifar10")
    calls = []
    monkeypatch.setattr(tfvq.training, "choose_jit_compile",
                        lambda build, batch: calls.append(batch.shape) or "timed")
    train = tf.data.Dataset.from_tensors(tf.zeros((4, 8, 8, 3)))
    config = cifar10.Config(jit_compile=requested)
    strategy = tf.distribute.get_strategy()
    got = cifar10.choose_jit_compile(config, strategy, lambda jit: pytest.fail("built"), train)
    assert got == expected
    assert calls == ([(4, 8, 8, 3)] if requested == "auto" else [])
