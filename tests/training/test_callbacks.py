"""Tests of tfvq.training.callbacks on a tiny VQ-VAE and a stand-in model without a quantizer."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ._common import IMAGE_SHAPE, images, tiny_vqvae
import tfvq
from tfvq.training import CodebookMonitor, ReconstructionImages, default_callbacks


def _events(log_dir):
    """tag -> list of (step, value proto) from every event file under `log_dir`."""
    found = {}
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value))
    return found


def _fitted(model, callbacks, epochs=2):
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    data = tf.data.Dataset.from_tensor_slices(images(16)).batch(8)
    return model.fit(data, epochs=epochs, callbacks=callbacks, verbose=0)


@pytest.mark.slow
def test_codebook_monitor_matches_numpy_reference(tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_vqvae()
    sample = images(12, seed=3)
    monitor = CodebookMonitor(sample, log_dir=str(tmp_path))
    history = _fitted(model, [monitor])
    for key in CodebookMonitor.KEYS:
        assert len(history.history[key]) == 2

    # Reference: code counts from encode_to_indices, entropy and usage by NumPy.
    indices = keras.ops.convert_to_numpy(model.encode_to_indices(sample)).ravel()
    counts = np.bincount(indices, minlength=16)
    probs = counts / counts.sum()
    nonzero = probs[probs > 0]
    assert history.history["codebook_perplexity"][-1] == pytest.approx(
        np.exp(-np.sum(nonzero * np.log(nonzero))), rel=1e-4)
    assert history.history["codebook_usage"][-1] == pytest.approx(np.mean(counts > 0))
    assert history.history["dead_codes"][-1] == int(np.sum(counts == 0))

    scalars = _events(str(tmp_path))
    for key in CodebookMonitor.KEYS:
        assert [step for step, _ in scalars[key]] == [0, 1]


def test_codebook_monitor_needs_a_quantizer():
    model = keras.Sequential([keras.Input(IMAGE_SHAPE), keras.layers.Conv2D(1, 1)])
    monitor = CodebookMonitor(images(2))
    monitor.set_model(model)
    with pytest.raises(ValueError, match="quantizer"):
        monitor.on_epoch_end(0, {})


@pytest.mark.slow
def test_reconstruction_images_grid_and_png(tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_vqvae()
    sample = images(5, seed=1)
    callback = ReconstructionImages(sample, str(tmp_path / "tb"), every=2, max_images=4,
                                    png_dir=str(tmp_path / "png"))
    _fitted(model, [callback], epochs=4)

    written = _events(str(tmp_path / "tb"))["reconstructions"]
    assert [step for step, _ in written] == [1, 3]  # every 2nd epoch
    grid = tf.io.decode_image(written[-1][1].tensor.string_val[2]).numpy()
    h, w, c = IMAGE_SHAPE
    assert grid.shape == (2 * h, 4 * w, c)
    # Top row: the originals side by side (8-bit); bottom row: the model's reconstructions.
    originals = np.concatenate(list(sample[:4]), axis=1)
    np.testing.assert_allclose(grid[:h] / 255.0, originals, atol=1 / 255 + 1e-6)
    recon = np.clip(keras.ops.convert_to_numpy(model(sample[:4])), 0, 1)
    np.testing.assert_allclose(grid[h:] / 255.0, np.concatenate(list(recon), axis=1),
                               atol=1 / 255 + 1e-6)
    assert sorted(os.listdir(tmp_path / "png")) == [
        "reconstructions_epoch002.png", "reconstructions_epoch004.png"]


def test_reconstruction_images_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"ReconstructionImages expects every >= 1 \(an int\)"):
        ReconstructionImages(images(2), str(tmp_path), every=0)
    with pytest.raises(ValueError, match=r"expects max_images >= 1 \(an int\); got True"):
        ReconstructionImages(images(2), str(tmp_path), max_images=True)
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        ReconstructionImages(np.zeros((8, 8)), str(tmp_path))


def _kinds(callbacks):
    return [type(c).__name__ for c in callbacks]


@pytest.mark.slow
def test_default_callbacks_for_the_chief(tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_vqvae()
    callbacks = default_callbacks(str(tmp_path), model, images(4))
    assert _kinds(callbacks) == [
        "CodebookMonitor", "TensorBoard", "ReconstructionImages", "ModelCheckpoint",
        "BackupAndRestore", "TerminateOnNaN"]
    history = _fitted(model, callbacks)
    assert "codebook_perplexity" in history.history
    assert (tmp_path / "model.keras").is_file()
    assert sorted(os.listdir(tmp_path / "images")) == [
        "reconstructions_epoch001.png", "reconstructions_epoch002.png"]
    scalars = _events(str(tmp_path / "logs" / "train"))
    # The TensorBoard callback sees the codebook statistics because the monitor runs first.
    assert "epoch_codebook_perplexity" in scalars and "epoch_loss" in scalars
    assert "reconstructions" in _events(str(tmp_path / "logs" / "images"))
    assert not (tmp_path / "backup").exists()  # BackupAndRestore cleans up after a finished fit
    restored = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(images(2))),
        keras.ops.convert_to_numpy(model(images(2))), atol=1e-6)


def test_default_callbacks_for_another_worker(tmp_path):
    model = tiny_vqvae()
    callbacks = default_callbacks(str(tmp_path), model, images(4), worker_index=2)
    assert _kinds(callbacks) == ["CodebookMonitor", "BackupAndRestore", "TerminateOnNaN"]
    assert callbacks[1].backup_dir == str(tmp_path / "backup_worker2")


def test_default_callbacks_without_quantizer(tmp_path):
    model = keras.Sequential([keras.Input(IMAGE_SHAPE), keras.layers.Conv2D(1, 1)])
    callbacks = default_callbacks(str(tmp_path), model, images(4), png=False)
    assert "CodebookMonitor" not in _kinds(callbacks)
    assert callbacks[-2].backup_dir == str(tmp_path / "backup")
    with pytest.raises(ValueError, match="checkpoint_name"):
        default_callbacks(str(tmp_path), model, images(4), checkpoint_name="model.h5")
    with pytest.raises(ValueError, match=r"default_callbacks expects worker_index >= 0 \(an int\)"):
        default_callbacks(str(tmp_path), model, images(4), worker_index=-1)


def test_codebook_monitor_on_residual_codes():
    # Q levels per position: perplexity averaged over levels, dead codes over all Q * K.
    model = tfvq.VQVAE(IMAGE_SHAPE, quantizer="rvq", num_embeddings=8, embedding_dim=4,
                       quantizer_options={"num_quantizers": 2}, hidden_channels=8,
                       residual_channels=4, num_residual_layers=1, downsample_stages=1)
    sample = images(6, seed=4)
    monitor = CodebookMonitor(sample)
    monitor.set_model(model)
    values = monitor.measure()
    codes = keras.ops.convert_to_numpy(model.encode_to_indices(sample)).reshape(-1, 2)
    counts = np.stack([np.bincount(codes[:, q], minlength=8) for q in range(2)])
    probs = counts / counts.sum(1, keepdims=True)
    perplexities = [np.exp(-np.sum(p[p > 0] * np.log(p[p > 0]))) for p in probs]
    assert values["codebook_perplexity"] == pytest.approx(np.mean(perplexities), rel=1e-4)
    assert values["codebook_usage"] == pytest.approx(np.mean(counts > 0))
    assert values["dead_codes"] == int(np.sum(counts == 0))
