"""Data-parallel training gives the one-device result: MirroredStrategy, multi-worker, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from ._common import images, tiny_vqvae

ROOT = Path(__file__).resolve().parents[2]


def _compiled(strategy):
    with strategy.scope():
        model = tiny_vqvae()
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    return model


@pytest.mark.slow
def test_mirrored_two_cpus_match_one_device(mirrored_strategy):
    """2 replicas on halves of each global batch == 1 device on the global batch.

    Covers the trainable weights (gradients averaged over the global batch) and the EMA
    codebook statistics (summed over replicas before the update).
    """
    assert mirrored_strategy.num_replicas_in_sync == 2
    keras.utils.set_random_seed(0)
    single = _compiled(tf.distribute.get_strategy())
    mirrored = _compiled(mirrored_strategy)
    mirrored.set_weights(single.get_weights())

    data = tf.data.Dataset.from_tensor_slices(images(32)).batch(8)  # 4 global batches of 8
    single.fit(data, epochs=1, verbose=0)
    mirrored.fit(data, epochs=1, verbose=0)

    names = [w.path for w in single.weights]
    assert any("codebook" in n for n in names) and any("ema_dw" in n for n in names)
    for name, a, b in zip(names, single.get_weights(), mirrored.get_weights()):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=1e-5, err_msg=name)


def _command(module, *args):
    """`python -m tests.training.<module> args...`: to run with cwd=ROOT, the repository root."""
    return [sys.executable, "-m", f"tests.training.{module}", *map(str, args)]


def _env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", **extra)


def _stop(process):
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_multiworker_processes_end_with_identical_weights(tmp_path, run_workers):
    run_workers(lambda index: _command("mwms_worker", tmp_path / f"w{index}.npz"), cwd=ROOT,
                env=_env(), timeout=150)

    first, second = (np.load(tmp_path / f"w{i}.npz") for i in range(2))
    keras.utils.set_random_seed(0)
    initial = tiny_vqvae().get_weights()
    changed = False
    for i, start in enumerate(initial):
        np.testing.assert_array_equal(first[f"arr_{i}"], second[f"arr_{i}"], err_msg=f"weight {i}")
        changed |= not np.allclose(first[f"arr_{i}"], start)
    assert changed, "training under MultiWorkerMirroredStrategy left the weights unchanged"
    assert np.all(np.isfinite(first["loss"]))


def _train(output_dir, epochs=3, timeout=120):
    return subprocess.run(
        _command("resumable_train", output_dir, epochs), cwd=ROOT, env=_env(),
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.mark.slow
def test_killed_run_resumes_from_backup_to_the_same_weights(tmp_path):
    interrupted, uninterrupted = tmp_path / "interrupted", tmp_path / "uninterrupted"
    interrupted.mkdir()
    uninterrupted.mkdir()
    process = subprocess.Popen(
        _command("resumable_train", interrupted, 3), cwd=ROOT, env=_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        metadata = interrupted / "backup" / "training_metadata.json"  # written after the weights
        deadline = time.monotonic() + 90
        while not metadata.exists():
            assert process.poll() is None, f"training died early:\n{process.stderr.read()[-4000:]}"
            assert time.monotonic() < deadline, "no backup appeared within 90 s"
            time.sleep(0.05)
        time.sleep(0.3)  # into the second epoch (about 1 s long), well before its backup
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        _stop(process)
    assert not (interrupted / "final.npz").exists()
    assert json.loads(metadata.read_text())["epoch"] == 1  # epochs completed

    resumed = _train(interrupted)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    # Epochs 0 and 1 started before the kill; the rerun starts again at 1, not 0.
    assert (interrupted / "epochs.txt").read_text().split() == ["0", "1", "1", "2"]

    reference = _train(uninterrupted)
    assert reference.returncode == 0, reference.stderr[-4000:]
    a, b = np.load(interrupted / "final.npz"), np.load(uninterrupted / "final.npz")
    assert a.files == b.files
    for key in a.files:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6, err_msg=key)
