"""Tests for tfvq.plots: every figure saves a readable PNG of the documented size and is freed."""

import gc
import math
import weakref

import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from tfvq import plots

RNG = np.random.default_rng(0)


def _check_png(fig, path):
    """The PNG exists, matplotlib reads it back, and it is figsize * dpi pixels."""
    assert isinstance(fig, Figure)
    assert path.is_file() and path.stat().st_size > 0
    pixels = matplotlib.image.imread(str(path))
    width, height = fig.get_size_inches() * fig.dpi
    assert pixels.shape[:2] == (round(height), round(width))
    # Not a blank canvas: something was drawn.
    assert pixels[..., :3].std() > 0


def _check_freed(make_figure):
    """Figures never enter pyplot's registry and are garbage once the caller drops them."""
    open_before = plt.get_fignums()
    fig = make_figure()
    ref = weakref.ref(fig)
    assert plt.get_fignums() == open_before
    del fig
    gc.collect()
    assert ref() is None


# ----------------------------------------------------------------------------------------------
# image_grid


@pytest.mark.parametrize(
    "images",
    [
        RNG.random((7, 12, 10, 1)),
        RNG.random((5, 12, 10)),  # grayscale without a channel axis
        (RNG.random((6, 8, 8, 3)) * 255).astype(np.uint8),
        tf.random.uniform((4, 8, 8, 3)),
    ],
    ids=["gray", "gray-no-channel", "uint8-rgb", "tensor-rgb"],
)
def test_image_grid_writes_png_of_figure_size(tmp_path, images):
    path = tmp_path / "sub" / "grid.png"
    fig = plots.image_grid(images, cell_size=1.0, dpi=50, path=path)
    _check_png(fig, path)
    count = len(images)
    ncols = math.ceil(math.sqrt(count))
    np.testing.assert_allclose(fig.get_size_inches(), (ncols, math.ceil(count / ncols)))


def test_image_grid_layout_and_titles(tmp_path):
    fig = plots.image_grid(RNG.random((6, 8, 8, 3)), nrows=2, titles=list("abcdef"))
    np.testing.assert_allclose(fig.get_size_inches(), (3 * 1.5, 2 * 1.5))
    assert [ax.get_title() for ax in fig.axes] == list("abcdef")


def test_image_grid_maps_value_range():
    images = np.linspace(-1.0, 1.0, 4 * 2 * 2).reshape(4, 2, 2, 1)
    fig = plots.image_grid(images, value_range=(-1.0, 1.0))
    shown = np.stack([ax.images[0].get_array() for ax in fig.axes])
    np.testing.assert_allclose(shown, (images[..., 0] + 1.0) / 2.0, atol=1e-6)


@pytest.mark.parametrize(
    "images, kwargs, message",
    [
        (np.zeros((2, 8, 8, 2)), {}, "C in"),
        (np.zeros((8, 8)), {}, r"\(N, H, W, C\)"),
        (np.zeros((0, 8, 8, 3)), {}, "at least one image"),
        (np.full((2, 8, 8, 1), np.nan), {}, "NaN"),
        (np.full((2, 8, 8, 1), 300, np.int32), {}, r"\[0, 255\]"),
        (np.zeros((2, 8, 8, 1)), {"nrows": 3}, "nrows"),
        (np.zeros((2, 8, 8, 1)), {"titles": ["a"]}, "titles"),
        (np.zeros((2, 8, 8, 1)), {"value_range": (1, 0)}, "value_range"),
        (None, {}, "None"),
    ],
)
def test_image_grid_rejects_bad_inputs(images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plots.image_grid(images, **kwargs)


# ----------------------------------------------------------------------------------------------
# reconstruction_grid, interpolation_strip


def test_reconstruction_grid(tmp_path):
    originals = RNG.random((10, 8, 8, 3)).astype(np.float32)
    recon = np.clip(originals + 0.1, 0, 1)
    path = tmp_path / "recon.png"
    fig = plots.reconstruction_grid(originals, recon, n=4, path=path)
    _check_png(fig, path)
    np.testing.assert_allclose(fig.get_size_inches(), (4 * 1.5, 2 * 1.5))
    top, bottom = fig.axes[0], fig.axes[4]  # axes are laid out row by row
    np.testing.assert_allclose(top.images[0].get_array(), originals[0])
    np.testing.assert_allclose(bottom.images[0].get_array(), recon[0])
    assert top.get_ylabel() == "original" and bottom.get_ylabel() == "reconstruction"


def test_reconstruction_grid_shows_at_most_n_available():
    fig = plots.reconstruction_grid(np.zeros((3, 4, 4, 1)), np.zeros((3, 4, 4, 1)), n=8)
    assert len(fig.axes) == 6


def test_reconstruction_grid_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        plots.reconstruction_grid(np.zeros((3, 4, 4, 1)), np.zeros((3, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"reconstruction_grid expects n >= 1 \(an int\); got 0"):
        plots.reconstruction_grid(np.zeros((3, 4, 4, 1)), np.zeros((3, 4, 4, 1)), n=0)


@pytest.mark.parametrize("shape, grid", [((5, 8, 8, 1), (1, 5)), ((3, 6, 8, 8, 3), (3, 6))])
def test_interpolation_strip(tmp_path, shape, grid):
    path = tmp_path / "interp.png"
    fig = plots.interpolation_strip(RNG.random(shape), cell_size=1.0, path=path)
    _check_png(fig, path)
    rows, steps = grid
    np.testing.assert_allclose(fig.get_size_inches(), (steps, rows))
    assert len(fig.axes) == rows * steps


def test_interpolation_strip_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"\(R, S, H, W, C\)"):
        plots.interpolation_strip(np.zeros((8, 8, 3)))


# ----------------------------------------------------------------------------------------------
# latent_scatter


def _scattered_points(fig):
    return np.concatenate([c.get_offsets() for c in fig.axes[0].collections])


def test_latent_scatter_2d_draws_latents_as_they_are(tmp_path):
    latents = RNG.normal(size=(50, 2))
    labels = np.arange(50) % 3
    path = tmp_path / "scatter.png"
    fig = plots.latent_scatter(latents, labels, class_names=["a", "b", "c"], path=path)
    _check_png(fig, path)
    # One collection per class, in label order.
    order = np.concatenate([np.flatnonzero(labels == k) for k in range(3)])
    np.testing.assert_allclose(_scattered_points(fig), latents[order])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["a", "b", "c"]


def test_latent_scatter_pca_matches_covariance_eigenvectors():
    # Anisotropic data so the principal axes are well separated.
    latents = RNG.normal(size=(200, 5)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1])
    latents = latents @ np.linalg.qr(RNG.normal(size=(5, 5)))[0]
    fig = plots.latent_scatter(tf.constant(latents, tf.float32), method="auto")
    points = _scattered_points(fig)

    centred = latents - latents.mean(0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(centred, rowvar=False))
    expected = centred @ eigenvectors[:, ::-1][:, :2]
    for axis in range(2):  # principal axes are defined up to sign
        sign = np.sign(points[:, axis] @ expected[:, axis])
        np.testing.assert_allclose(points[:, axis], sign * expected[:, axis], atol=1e-4)
    explained = eigenvalues[::-1] / eigenvalues.sum()
    assert f"{100 * explained[0]:.1f}%" in fig.axes[0].get_xlabel()


def test_latent_scatter_many_classes_uses_colorbar():
    fig = plots.latent_scatter(RNG.normal(size=(60, 3)), np.arange(60) % 30)
    assert len(fig.axes) == 2  # scatter and colour bar


def test_latent_scatter_tsne():
    fig = plots.latent_scatter(RNG.normal(size=(20, 4)), method="tsne")
    assert _scattered_points(fig).shape == (20, 2)


@pytest.mark.parametrize(
    "latents, labels, kwargs, message",
    [
        (np.zeros((10, 1)), None, {}, "D >= 2"),
        (np.zeros((10,)), None, {}, r"\(N, D\)"),
        (np.zeros((10, 3)), np.zeros(9, int), {}, "one per latent"),
        (np.zeros((10, 3)), np.full(10, 0.5), {}, "integer class"),
        (np.zeros((10, 3)), np.full(10, -1), {}, "non-negative"),
        (np.zeros((10, 3)), np.arange(10), {"class_names": ["a"]}, "class_names"),
        (np.zeros((10, 3)), None, {"method": "umap"}, "method"),
        (np.full((10, 3), np.inf), None, {}, "NaN or infinite"),
    ],
)
def test_latent_scatter_rejects_bad_inputs(latents, labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plots.latent_scatter(latents, labels, **kwargs)


# ----------------------------------------------------------------------------------------------
# training_curves


def _toy_history():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x = RNG.normal(size=(16, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    return model.fit(x, y, validation_data=(x, y), epochs=3, batch_size=8, verbose=0)


def test_training_curves_from_keras_history(tmp_path):
    history = _toy_history()
    path = tmp_path / "curves.png"
    fig = plots.training_curves(history, path=path)
    _check_png(fig, path)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "loss" and "mae" in titles
    loss_ax = fig.axes[0]
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    assert set(lines) == {"train", "validation"}
    np.testing.assert_allclose(lines["train"].get_ydata(), history.history["loss"])
    np.testing.assert_allclose(lines["validation"].get_ydata(), history.history["val_loss"])
    np.testing.assert_array_equal(lines["train"].get_xdata(), [1, 2, 3])


def test_training_curves_from_dict_with_chosen_metrics():
    logs = {"loss": [3.0, 2.0], "psnr": [10.0, 12.0], "val_psnr": [9.0, 11.0]}
    fig = plots.training_curves(logs, metrics="psnr")
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "psnr"
    assert len(fig.axes[0].get_lines()) == 2


@pytest.mark.parametrize(
    "history, metrics, message",
    [
        ({}, None, "empty"),
        ([1, 2], None, "History or a dict"),
        ({"loss": [1.0]}, ["psnr"], r"not in the history.*available: \['loss'\]"),
        ({"loss": [1.0]}, [], "at least one"),
    ],
)
def test_training_curves_rejects_bad_inputs(history, metrics, message):
    with pytest.raises(ValueError, match=message):
        plots.training_curves(history, metrics)


# ----------------------------------------------------------------------------------------------
# codebook_usage


def _reference_perplexity(counts):
    p = counts / counts.sum()
    p = p[p > 0]
    return np.exp(-(p * np.log(p)).sum())


def test_codebook_usage_from_indices(tmp_path):
    num_embeddings = 32
    indices = RNG.integers(0, 20, size=(8, 4, 4))  # codes 20..31 never used
    path = tmp_path / "usage.png"
    fig = plots.codebook_usage(tf.constant(indices, tf.int32), num_embeddings, path=path)
    _check_png(fig, path)
    counts = np.bincount(indices.ravel(), minlength=num_embeddings)
    title = fig.axes[0].get_title()
    assert f"perplexity {_reference_perplexity(counts):.1f} of 32" in title
    assert f"dead codes {np.sum(counts == 0)}" in title
    heights = [patch.get_height() for patch in fig.axes[0].patches]
    np.testing.assert_allclose(heights, np.sort(counts)[::-1] / counts.sum())


def test_codebook_usage_from_counts_uniform_and_collapsed():
    uniform = plots.codebook_usage(np.full(16, 5.0), 16)
    assert "perplexity 16.0 of 16, dead codes 0 (0.0%)" in uniform.axes[0].get_title()
    collapsed = plots.codebook_usage(np.eye(16, dtype=np.int64)[3] * 7, 16, log_scale=True)
    assert "perplexity 1.0 of 16, dead codes 15 (93.8%)" in collapsed.axes[0].get_title()


def test_codebook_usage_kind_indices_overrides_auto():
    indices = np.zeros(16, dtype=np.int32)  # 16 indices, all code 0, for a 16-code book
    fig = plots.codebook_usage(indices, 16, kind="indices")
    assert "dead codes 15" in fig.axes[0].get_title()


@pytest.mark.parametrize(
    "values, num_embeddings, kwargs, message",
    [
        (np.array([0, 5, 8]), 8, {}, r"\[0, 8\); got values in \[0, 8\]"),
        (np.array([-1, 2]), 8, {}, r"\[0, 8\)"),
        (np.array([0.5, 1.0]), 8, {}, "integers"),
        (np.zeros(8), 8, {}, "sum to zero"),
        (-np.ones(8), 8, {}, "non-negative"),
        (np.ones(5), 8, {"kind": "counts"}, r"\(8,\)"),
        (np.ones(8), 0, {}, r"num_embeddings >= 1 \(an int\); got 0"),
        (np.ones(8), 8, {"kind": "histogram"}, "kind"),
    ],
)
def test_codebook_usage_rejects_bad_inputs(values, num_embeddings, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plots.codebook_usage(values, num_embeddings, **kwargs)


# ----------------------------------------------------------------------------------------------
# No leaks


@pytest.mark.parametrize(
    "make_figure",
    [
        lambda: plots.image_grid(np.zeros((4, 4, 4, 1))),
        lambda: plots.reconstruction_grid(np.zeros((2, 4, 4, 1)), np.zeros((2, 4, 4, 1))),
        lambda: plots.interpolation_strip(np.zeros((3, 4, 4, 1))),
        lambda: plots.latent_scatter(RNG.normal(size=(10, 3)), np.arange(10) % 2),
        lambda: plots.training_curves({"loss": [1.0, 0.5]}),
        lambda: plots.codebook_usage(np.arange(8), 8),
    ],
    ids=["image_grid", "reconstruction", "interpolation", "scatter", "curves", "codebook"],
)
def test_figures_are_not_kept_alive(make_figure):
    _check_freed(make_figure)
