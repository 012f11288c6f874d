"""faces_vae.py at a tiny setting, on scikit-image's LFW subset and on a folder of face PNGs: its
numbers are recomputed from the arrays it saves, and its interpolations checked end to end."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "experiments" / "faces_vae.py"
TINY = ("--steps=30", "--batch_size=16", "--hidden_channels=8", "--latent_dim=4",
        "--elbo_samples=2", "--interpolation_pairs=2", "--interpolation_steps=5")
# tfvq.plots draws one 1.5-inch cell per image at 100 dpi.
CELL = 150


def _run(output_dir, *args, check=True):
    # A process of its own, as in test_experiments.py: absl flags are global to a process.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, str(SCRIPT), f"--output_dir={output_dir}", *args],
                          capture_output=True, text=True, env=env)
    if not check:
        return done
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((Path(output_dir) / "results.json").read_text())
    assert results["command"].startswith("python examples/experiments/faces_vae.py")
    return results


def _lfw_subset():
    import skimage.data

    return np.round(skimage.data.lfw_subset() * 255.0).astype(np.uint8)[..., None]


def _knn(train_z, train_y, test_z, test_y, k=5):
    # Brute force, ties to the smallest label, as the script's common.knn_accuracy documents.
    distances = np.linalg.norm(test_z[:, None] - train_z[None], axis=-1)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
    votes = np.stack([np.bincount(train_y[row], minlength=2) for row in nearest])
    return float(np.mean(votes.argmax(axis=1) == test_y))


def _image(path):
    from matplotlib.image import imread

    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.size > 0, path
    assert pixels[..., :3].std() > 0, f"{path} is blank"
    return pixels


def _check_outputs(out, results, images, labels):
    """What any run must satisfy, given the images (uint8) and labels it was run on."""
    for key in ("test_bce_nats_per_pixel", "train_bce_nats_per_pixel", "test_mse", "test_psnr",
                "test_ssim", "test_kl_nats", "test_elbo_nats", "final_train_loss"):
        assert isinstance(results[key], float) and math.isfinite(results[key]), key
    assert results["test_bce_nats_per_pixel"] > 0 and 0 < results["test_mse"] < 1
    # Mean PSNR is at least the PSNR of the mean MSE (Jensen: -log is convex).
    assert results["test_psnr"] >= 10 * math.log10(1 / results["test_mse"]) - 1e-4 > 0
    assert -1 <= results["test_ssim"] <= 1 and results["test_kl_nats"] >= 0
    assert results["test_elbo_nats"] < -results["test_kl_nats"]
    assert results["data"]["model_input_shape"] == [28, 28, 1]

    arrays = np.load(out / "latents.npz")
    means, train_idx, test_idx = arrays["means"], arrays["train_indices"], arrays["test_indices"]
    np.testing.assert_array_equal(arrays["labels"], labels)
    assert len(np.intersect1d(train_idx, test_idx)) == 0
    assert len(train_idx) + len(test_idx) == len(images) == results["data"]["num_examples"]
    # Metrics are on the original 25x25 region, from the saved reconstructions.
    recon = arrays["test_reconstructions"]
    assert recon.shape == (len(test_idx), 25, 25, 1)
    mse = np.mean((images[test_idx] / 255.0 - np.clip(recon, 0, 1)) ** 2)
    assert results["test_mse"] == pytest.approx(mse, rel=1e-4)

    knn = results["knn_accuracy"]
    spaces = {"latent": means, "pca_2d": arrays["pca"], "tsne_2d": arrays["tsne"],
              "pixels": images.reshape(len(images), -1) / 255.0}
    for name, z in spaces.items():
        assert 0 <= knn[name] <= 1, name
        assert knn[name] == pytest.approx(_knn(z[train_idx], labels[train_idx], z[test_idx],
                                               labels[test_idx]), abs=1e-6), name
    centred = means - means.mean(axis=0)
    variance = np.linalg.svd(centred, compute_uv=False) ** 2
    ratio = results["pca_explained_variance_ratio"]
    np.testing.assert_allclose(ratio, variance[:2] / variance.sum(), rtol=1e-4, atol=1e-6)
    assert sum(ratio) <= 1 + 1e-6

    # Interpolation: two test images of class 0 per row, their posterior means at the ends, the
    # straight line between, and the end points decoding to the images' own reconstructions.
    path = np.load(out / "interpolation.npz")
    pairs, weights, latents, decoded = (path[k] for k in ("pairs", "weights", "latents",
                                                          "decoded"))
    assert pairs.shape == (2, 2) and len(np.unique(pairs)) == 4
    assert np.all(np.isin(pairs, test_idx)) and np.all(labels[pairs] == 0)
    np.testing.assert_array_equal(path["originals"], images[pairs])
    np.testing.assert_allclose(weights, np.linspace(0, 1, 5), atol=1e-7)
    np.testing.assert_allclose(latents[:, 0], means[pairs[:, 0]], atol=1e-6)
    np.testing.assert_allclose(latents[:, -1], means[pairs[:, 1]], atol=1e-6)
    t = weights[None, :, None]
    line = (1 - t) * latents[:, :1] + t * latents[:, -1:]
    np.testing.assert_allclose(latents, line, atol=1e-5)
    position = {index: i for i, index in enumerate(test_idx)}
    for end, column in ((0, 0), (1, -1)):
        rows = [position[i] for i in pairs[:, end]]
        np.testing.assert_allclose(decoded[:, column], recon[rows], atol=1e-4)
    # Distinct end points (30 steps decode nearly mid-gray, so the images may not differ yet).
    assert not np.allclose(latents[:, 0], latents[:, -1], atol=1e-4)

    assert set(results["figures"]) == {"reconstructions.png", "interpolation.png",
                                       "latents_pca.png", "latents_tsne.png", "samples.png"}
    pixels = {name: _image(out / name) for name in results["figures"]}
    # Two rows (pairs) of 5 decoded points between the two real images.
    assert pixels["interpolation.png"].shape[:2] == (2 * CELL, (5 + 2) * CELL)
    return arrays


@pytest.mark.slow
def test_lfw_subset(tmp_path):
    results = _run(tmp_path, *TINY)
    images = _lfw_subset()
    labels = np.repeat([0, 1], 100)
    assert results["data"]["class_names"] == ["face", "non-face"]
    assert results["data"]["image_shape"] == [25, 25, 1]
    assert results["data"]["padding"] == {"top": 1, "bottom": 2, "left": 1, "right": 2}
    arrays = _check_outputs(tmp_path, results, images, labels)
    # 20 + 20 held out, the same for the same seed.
    test_idx = arrays["test_indices"]
    assert len(test_idx) == 40 and np.sum(labels[test_idx] == 0) == 20
    assert results["tsne"]["perplexity"] == 20.0


@pytest.mark.slow
def test_folder_with_class_subfolders(tmp_path):
    from PIL import Image

    # Faces stored gray, non-faces as RGB: the folder is colour, and --channels=1 (the default)
    # turns it gray again.
    images, folder = _lfw_subset(), tmp_path / "data"
    chosen = np.r_[0:12, 100:112]
    for i in chosen:
        kind, pixels = ("faces", images[i, ..., 0]) if i < 100 else \
            ("nonfaces", np.repeat(images[i], 3, axis=-1))
        (folder / kind).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / kind / f"{i:03d}.png")
    out = tmp_path / "out"
    results = _run(out, f"--dataset={folder}", "--test_per_class=4", *TINY)
    assert results["data"]["class_names"] == ["faces", "nonfaces"]
    assert results["data"]["image_shape"] == [25, 25, 1]
    assert results["data"]["test_examples"] == 8
    # Sorted path order: faces/ then nonfaces/, each as written (gray -> RGB -> gray is exact).
    _check_outputs(out, results, images[chosen], np.repeat([0, 1], 12))
    # 24 points: t-SNE's perplexity is capped at (24 - 1) / 3.
    assert results["tsne"]["perplexity"] == pytest.approx(23 / 3)


@pytest.mark.slow
def test_unprepared_tfds_lfw_is_not_downloaded(tmp_path):
    done = _run(tmp_path / "out", "--dataset=lfw", f"--data_dir={tmp_path / 'tfds'}", *TINY,
                check=False)
    assert done.returncode != 0
    assert "No prepared 'lfw'" in done.stderr
    assert not (tmp_path / "out" / "results.json").exists()
